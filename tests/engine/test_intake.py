"""Intake (DESIGN §1): what a CSR must be to be queued, and what a refusal leaves.

Refusals are checked against the real store files: a refused CSR must leave
every byte under the home as it was (no request, no burnt ID, no audit line).
The same refusals through the command line are in tests/cli/test_refusals.py.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from helpers import (
    csr_der,
    csr_pem,
    make_csr,
    make_key,
    refused_inputs,
    snapshot_home,
    spki_sha256,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tui_ca.engine import (
    CAError,
    CertStatus,
    InputError,
    RequestStatus,
    RevocationReason,
    RuleError,
)
from tui_ca.engine.csr_policy import check_and_describe, load_csr

REFUSED = refused_inputs()


@pytest.mark.parametrize("case", sorted(REFUSED))
def test_refused_input_stores_nothing(ca, home, case):
    data, code, fragment = REFUSED[case]
    before = snapshot_home(home)
    with pytest.raises((RuleError, InputError)) as caught:
        ca.submit(data, requester="someone")
    assert isinstance(caught.value, InputError if code == 2 else RuleError)
    assert fragment in str(caught.value)
    assert "\n" not in str(caught.value)
    assert snapshot_home(home) == before


@pytest.mark.parametrize("kind", ["ec-p256", "ec-p384", "ec-p521", "rsa-2048", "rsa-3072"])
def test_allowed_keys_are_queued_with_their_details(ca, kind):
    key = make_key(kind)
    csr = make_csr(key, cn=f"host-{kind}", sans=["DNS:host.example", "IP:192.0.2.7"])
    result = ca.submit(csr_pem(csr))
    assert result.created
    details = result.request.details
    assert details.common_name == f"host-{kind}"
    assert details.sans == ("DNS:host.example", "IP:192.0.2.7")
    assert details.spki_sha256 == spki_sha256(csr)
    assert details.key_size == (key.key_size if kind.startswith("rsa") else key.curve.key_size)
    assert details.key_type == {"ec-p256": "EC P-256", "ec-p384": "EC P-384", "ec-p521": "EC P-521",
                                "rsa-2048": "RSA 2048", "rsa-3072": "RSA 3072"}[kind]  # fmt: skip
    assert ca.request(result.request.id).status is RequestStatus.QUEUED


def test_der_and_new_pem_header_and_san_only_are_accepted(ca):
    der = ca.submit(csr_der(make_csr(cn="der-client")))
    assert der.request.requester == "der-client"
    legacy = csr_pem(make_csr(cn="legacy")).replace(b"CERTIFICATE REQUEST", b"NEW CERTIFICATE REQUEST")
    assert ca.submit(legacy).request.requester == "legacy"
    # Without a CN the requester defaults to the first SAN's value.
    san_only = ca.submit(csr_pem(make_csr(cn=None, sans=["DNS:only-san.example"])))
    assert san_only.request.requester == "only-san.example"
    assert [r.id for r in ca.requests()] == [1, 2, 3]


def test_identical_csr_while_queued_returns_same_request(ca, home):
    data = csr_pem(make_csr(cn="poller"))
    first = ca.submit(data)
    snapshot = snapshot_home(home)
    again = ca.submit(data)
    assert (again.created, again.request.id) == (False, first.request.id)
    # DER of the same CSR is the same request too.
    assert ca.submit(x509.load_pem_x509_csr(data).public_bytes(serialization_der())).request.id == first.request.id
    assert snapshot_home(home) == snapshot  # polling records nothing


def serialization_der():
    from cryptography.hazmat.primitives.serialization import Encoding

    return Encoding.DER


def test_requester_with_queued_request_is_refused(ca, home):
    first = ca.submit(csr_pem(make_csr(cn="desk-phone")))
    before = snapshot_home(home)
    with pytest.raises(RuleError, match=rf"already has request {first.request.id} in the queue"):
        ca.submit(csr_pem(make_csr(cn="desk-phone")))
    # The requester name decides, not the CN, and case does not matter.
    with pytest.raises(RuleError):
        ca.submit(csr_pem(make_csr(cn="other-cn")), requester="DESK-PHONE")
    assert snapshot_home(home) == before


def test_active_certificate_blocks_until_revoked(ca, home):
    first = ca.submit(csr_pem(make_csr(cn="kiosk")))
    cert = ca.approve([first.request.id])[0].certificate
    before = snapshot_home(home)
    with pytest.raises(RuleError) as caught:
        ca.submit(csr_pem(make_csr(cn="kiosk")))
    message = str(caught.value)
    assert f"certificate {cert.id}" in message and cert.serial_hex in message
    assert snapshot_home(home) == before
    ca.revoke(cert.id, RevocationReason.SUPERSEDED)
    again = ca.submit(csr_pem(make_csr(cn="kiosk")))
    assert again.created and again.request.id == first.request.id + 1


def test_expired_certificate_does_not_block(ca, clock):
    from datetime import timedelta

    request = ca.submit(csr_pem(make_csr(cn="old-phone"))).request
    cert = ca.approve([request.id], days=1)[0].certificate
    clock.now = cert.not_after + timedelta(seconds=1)
    assert [c.id for c in ca.certificates(CertStatus.EXPIRED)] == [cert.id]
    assert ca.certificates(CertStatus.VALID) == []
    assert ca.submit(csr_pem(make_csr(cn="old-phone"))).created


def test_rejected_ids_are_burnt(ca):
    first = ca.submit(csr_pem(make_csr(cn="a"))).request.id
    ca.reject(first, "caller could not confirm the fingerprint")
    second = ca.submit(csr_pem(make_csr(cn="a"))).request.id
    assert second > first
    # Refused intakes do not consume IDs either way: the next one is contiguous.
    with pytest.raises(RuleError):
        ca.submit(REFUSED["dsa"][0])
    assert ca.submit(csr_pem(make_csr(cn="b"))).request.id == second + 1


def test_rejected_csr_resent_is_refused_with_the_reason(ca, home):
    data = csr_pem(make_csr(cn="resend"))
    request_id = ca.submit(data).request.id
    ca.reject(request_id, "unknown device")
    before = snapshot_home(home)
    with pytest.raises(RuleError, match=rf"rejected as request {request_id}: unknown device"):
        ca.submit(data)
    assert snapshot_home(home) == before


@pytest.mark.parametrize(
    ("requester", "fragment"),
    [("   ", "empty"), ("x" * 129, "longer than"), ("bad\x1b[31mname", "control characters")],
)
def test_bad_requester_names_are_refused(ca, home, requester, fragment):
    before = snapshot_home(home)
    with pytest.raises(InputError, match=fragment):
        ca.submit(csr_pem(make_csr(cn="fine")), requester=requester)
    assert snapshot_home(home) == before


def test_given_requester_overrides_cn_and_subject_is_kept(ca):
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Acme"),
        x509.NameAttribute(NameOID.COMMON_NAME, "sip-0042"),
    ])  # fmt: skip
    request = ca.submit(csr_pem(make_csr(subject=subject)), requester="Reception desk").request
    assert request.requester == "Reception desk"
    assert request.details.subject == "CN=sip-0042,O=Acme,C=DE"
    assert request.details.subject_fields.country == "DE"


def test_submit_is_audited(ca):
    request = ca.submit(csr_pem(make_csr(cn="audited")), requester="Front door").request
    record = ca.audit_records()[-1]
    assert (record.action, record.target, record.outcome) == ("submit", f"request {request.id}", "queued")
    assert (record.user, record.address) == ("alice", "192.0.2.10")
    assert record.extra["requester"] == "Front door"
    assert record.extra["spki_sha256"] == request.details.spki_sha256


_FUZZ_BASE = csr_der(make_csr("ec-p256", cn="fuzz", sans=["DNS:fuzz.example"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=st.lists(st.tuples(st.integers(0, len(_FUZZ_BASE) - 1), st.integers(0, 255)), min_size=1, max_size=3))
def test_damaged_csr_is_refused_cleanly_never_crashes(edits):
    """Any damaged CSR is either still acceptable or refused with an engine
    error (a one-line message), never another exception (a traceback)."""
    data = bytearray(_FUZZ_BASE)
    for position, value in edits:
        data[position] = value
    try:
        check_and_describe(load_csr(bytes(data)))
    except CAError as exc:
        assert "\n" not in str(exc)

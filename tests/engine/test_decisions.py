"""Decisions (approve, reject, revoke) and the certificate profile they produce.

``assert_is_leaf`` checks every extension of an issued certificate and its
criticality against DESIGN §1, in the manner of trustme's ``assert_is_ca``:
an extension that is missing, extra, or of the wrong criticality fails.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.x509.oid import (
    AuthorityInformationAccessOID,
    ExtendedKeyUsageOID,
    ExtensionOID,
    NameOID,
)
from helpers import CA_NAMES, csr_pem, make_csr, snapshot_home

from tui_ca.engine import (
    CertificateAuthority,
    CertStatus,
    InputError,
    NotFoundError,
    RequestStatus,
    RevocationReason,
    RuleError,
)

BASE = "http://127.0.0.1:8080"


def assert_is_leaf(cert: x509.Certificate, issuing: x509.Certificate, csr: x509.CertificateSigningRequest,
                   base_url: str | None) -> None:  # fmt: skip
    """The issued profile of DESIGN §1, extension by extension."""
    ext = {e.oid: e for e in cert.extensions}
    expected = {ExtensionOID.BASIC_CONSTRAINTS, ExtensionOID.KEY_USAGE, ExtensionOID.EXTENDED_KEY_USAGE,
                ExtensionOID.SUBJECT_KEY_IDENTIFIER, ExtensionOID.AUTHORITY_KEY_IDENTIFIER}  # fmt: skip
    try:
        csr_san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        expected.add(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        csr_san = None
    if csr.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS):
        expected.add(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    if base_url:
        expected |= {ExtensionOID.CRL_DISTRIBUTION_POINTS, ExtensionOID.AUTHORITY_INFORMATION_ACCESS}
    assert set(ext) == expected

    assert cert.version is x509.Version.v3
    assert cert.subject == csr.subject
    assert cert.issuer == issuing.subject
    assert cert.public_key() == csr.public_key()
    assert 2**63 <= cert.serial_number < 2**159  # positive, at least 64 random bits
    cert.verify_directly_issued_by(issuing)

    assert ext[ExtensionOID.BASIC_CONSTRAINTS].critical
    assert ext[ExtensionOID.BASIC_CONSTRAINTS].value == x509.BasicConstraints(ca=False, path_length=None)
    usage = ext[ExtensionOID.KEY_USAGE]
    assert usage.critical
    is_rsa = isinstance(csr.public_key(), rsa.RSAPublicKey)
    assert usage.value == x509.KeyUsage(
        digital_signature=True, content_commitment=False, key_encipherment=is_rsa, data_encipherment=False,
        key_agreement=False, key_cert_sign=False, crl_sign=False, encipher_only=False, decipher_only=False,
    )  # fmt: skip
    eku = ext[ExtensionOID.EXTENDED_KEY_USAGE]
    assert not eku.critical
    assert list(eku.value) == [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    ski = ext[ExtensionOID.SUBJECT_KEY_IDENTIFIER]
    assert not ski.critical and ski.value == x509.SubjectKeyIdentifier.from_public_key(csr.public_key())
    aki = ext[ExtensionOID.AUTHORITY_KEY_IDENTIFIER]
    issuing_ski = issuing.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert not aki.critical and aki.value.key_identifier == issuing_ski.digest
    # RFC 5280 §4.1.2.6: an e-mail address in the subject is also in the SAN.
    emails = [x509.RFC822Name(a.value) for a in csr.subject.get_attributes_for_oid(NameOID.EMAIL_ADDRESS)]
    wanted = list(csr_san or []) + [e for e in emails if e not in list(csr_san or [])]
    if wanted:
        san = ext[ExtensionOID.SUBJECT_ALTERNATIVE_NAME]
        assert list(san.value) == wanted
        assert san.critical == (len(cert.subject) == 0)
    if base_url:
        cdp = ext[ExtensionOID.CRL_DISTRIBUTION_POINTS]
        assert not cdp.critical
        assert [p.full_name for p in cdp.value] == [[x509.UniformResourceIdentifier(f"{base_url}/ca.crl")]]
        aia = ext[ExtensionOID.AUTHORITY_INFORMATION_ACCESS]
        assert not aia.critical
        assert [(d.access_method, d.access_location.value) for d in aia.value] == [
            (AuthorityInformationAccessOID.OCSP, f"{base_url}/ocsp"),
            (AuthorityInformationAccessOID.CA_ISSUERS, f"{base_url}/ca.crt"),
        ]


def _issue(ca, csr, **approve):
    request = ca.submit(csr_pem(csr)).request
    outcome = ca.approve([request.id], **approve)[0]
    assert outcome.error is None, outcome.error
    return outcome.certificate, x509.load_pem_x509_certificate(ca.certificate_pem(request.id))


@pytest.mark.parametrize("kind", ["ec-p256", "rsa-2048"])
def test_issued_profile(ca, clock, kind):
    csr = make_csr(kind, cn=f"phone-{kind}", sans=["DNS:phone.example", "IP:192.0.2.44", "email:ops@example.net"])
    model, cert = _issue(ca, csr)
    assert_is_leaf(cert, ca.issuing_cert(), csr, BASE)
    assert cert.not_valid_before_utc == clock.now - timedelta(minutes=5)
    assert cert.not_valid_after_utc == clock.now + timedelta(days=365)
    assert (model.serial, model.not_after) == (cert.serial_number, cert.not_valid_after_utc)
    assert model.status_at(clock.now) is CertStatus.VALID


def test_only_the_san_is_copied_from_the_csr(ca):
    asked = [
        (x509.ExtendedKeyUsage([ExtendedKeyUsageOID.OCSP_SIGNING, ExtendedKeyUsageOID.CODE_SIGNING]), False),
        (x509.KeyUsage(digital_signature=True, content_commitment=True, key_encipherment=True,
                       data_encipherment=True, key_agreement=True, key_cert_sign=False, crl_sign=False,
                       encipher_only=False, decipher_only=False), True),
        (x509.OCSPNoCheck(), False),
        (x509.BasicConstraints(ca=False, path_length=None), True),
        (x509.UnrecognizedExtension(x509.ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"), False),
    ]
    csr = make_csr("ec-p256", cn="greedy", sans=["DNS:greedy.example"], extensions=asked)
    _, cert = _issue(ca, csr)
    assert_is_leaf(cert, ca.issuing_cert(), csr, BASE)
    with pytest.raises(x509.ExtensionNotFound):
        cert.extensions.get_extension_for_class(x509.OCSPNoCheck)


def test_multi_attribute_subject_and_san_only_subject(ca):
    subject = x509.Name([
        x509.NameAttribute(NameOID.COUNTRY_NAME, "FR"), x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Cie"),
        x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Voice"), x509.NameAttribute(NameOID.COMMON_NAME, "p1"),
    ])  # fmt: skip
    csr = make_csr(subject=subject)
    _, cert = _issue(ca, csr)
    assert cert.subject == subject
    assert_is_leaf(cert, ca.issuing_cert(), csr, BASE)
    # An empty subject: the SAN must then be critical (RFC 5280 §4.2.1.6).
    empty = make_csr(cn=None, sans=["DNS:anonymous.example"])
    _, cert = _issue(ca, empty)
    assert len(cert.subject) == 0
    assert_is_leaf(cert, ca.issuing_cert(), empty, BASE)


def test_subject_email_is_added_to_the_san(ca):
    def subject(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn),
                          x509.NameAttribute(NameOID.EMAIL_ADDRESS, "ops@example.net")])  # fmt: skip

    for csr in (make_csr(subject=subject("m1")), make_csr(subject=subject("m2"), sans=["DNS:mailer.example"]),
                make_csr(subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "listed"),
                                            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "l@example.net")]),
                         sans=["email:l@example.net"])):  # fmt: skip
        _, cert = _issue(ca, csr)
        assert_is_leaf(cert, ca.issuing_cert(), csr, BASE)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert len(san.get_values_for_type(x509.RFC822Name)) == 1


def test_no_base_url_means_no_cdp_or_aia(tmp_path, clock):
    authority = CertificateAuthority(tmp_path / "plain", clock=clock)
    authority.init(CA_NAMES)
    csr = make_csr(cn="plain")
    _, cert = _issue(authority, csr)
    assert_is_leaf(cert, authority.issuing_cert(), csr, None)


def test_not_after_is_clipped_to_the_issuing_ca(tmp_path, clock):
    authority = CertificateAuthority(tmp_path / "short", clock=clock)
    authority.init(CA_NAMES, days=30)
    _, cert = _issue(authority, make_csr(cn="long"), days=365)
    assert cert.not_valid_after_utc == authority.issuing_cert().not_valid_after_utc
    _, short = _issue(authority, make_csr(cn="short"), days=2)
    assert short.not_valid_after_utc == clock.now + timedelta(days=2)


def test_approve_several_in_one_pass(ca, home):
    ids = [ca.submit(csr_pem(make_csr(cn=f"bulk-{n}"))).request.id for n in range(5)]
    ca.reject(ids[2], "duplicate device")
    outcomes = ca.approve([*ids, 999], days=30)
    assert [o.id for o in outcomes] == [*ids, 999]
    issued = [o for o in outcomes if o.certificate]
    assert [o.id for o in issued] == [ids[0], ids[1], ids[3], ids[4]]
    assert len({o.certificate.serial for o in issued}) == 4
    refused = {o.id: (o.refusal, o.error) for o in outcomes if o.certificate is None}
    assert refused[ids[2]][0] is RuleError and "rejected, not queued" in refused[ids[2]][1]
    assert refused[999][0] is NotFoundError and "no request with Certificate ID 999" in refused[999][1]
    assert [r.id for r in ca.requests(RequestStatus.QUEUED)] == []
    assert [c.id for c in ca.certificates(CertStatus.VALID)] == [o.id for o in issued]
    # Approving again changes nothing.
    before = snapshot_home(home)
    again = ca.approve([ids[0]])
    assert again[0].certificate is None and "approved, not queued" in again[0].error
    assert snapshot_home(home) == before


@pytest.mark.parametrize("days", [0, -1, 3651])
def test_approve_days_out_of_range_is_refused(ca, home, days):
    request_id = ca.submit(csr_pem(make_csr(cn="d"))).request.id
    before = snapshot_home(home)
    with pytest.raises(InputError, match="--days"):
        ca.approve([request_id], days=days)
    assert snapshot_home(home) == before


def test_reject_records_reason_and_who(ca, home, clock):
    request_id = ca.submit(csr_pem(make_csr(cn="r"))).request.id
    rejected = ca.reject(request_id, "  not one of ours  ")
    assert (rejected.status, rejected.reason) == (RequestStatus.REJECTED, "not one of ours")
    assert rejected.decided_at == clock.now and rejected.decided_by.user == "alice"
    before = snapshot_home(home)
    with pytest.raises(RuleError, match="rejected, not queued"):
        ca.reject(request_id, "again")
    with pytest.raises(InputError, match="needs a reason"):
        ca.reject(request_id, "   ")
    with pytest.raises(InputError, match="no request"):
        ca.reject(4242, "nothing")
    assert snapshot_home(home) == before


def test_revocation_publishes_crl_with_every_reason(ca, clock):
    issuing = ca.issuing_cert()
    number = ca.info().crl_number
    revoked: dict[int, RevocationReason] = {}
    for n, reason in enumerate(RevocationReason):
        cert, _ = _issue(ca, make_csr(cn=f"rev-{n}"))
        clock.now += timedelta(seconds=1)
        result = ca.revoke(cert.id, reason)
        assert result.status_at(clock.now) is CertStatus.REVOKED and result.revocation_reason is reason
        revoked[cert.serial] = reason
        number += 1
        crl = x509.load_der_x509_crl(ca.crl(republish_if_stale=False))
        assert crl.is_signature_valid(issuing.public_key())
        assert crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == number
        assert ca.info().crl_number == number
        assert crl.last_update_utc == clock.now and crl.next_update_utc == clock.now + timedelta(days=7)
        assert {e.serial_number for e in crl} == set(revoked)
        entry = crl.get_revoked_certificate_by_serial_number(cert.serial)
        assert entry.revocation_date_utc == clock.now
        codes = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
        assert codes == ([] if reason is RevocationReason.UNSPECIFIED else [reason.flag])
    assert len(revoked) == 8


def test_revoke_by_serial_in_any_spelling(ca):
    certs = [_issue(ca, make_csr(cn=f"s{n}"))[0] for n in range(3)]
    plain = certs[0].serial_hex
    colons = ":".join(f"{certs[1].serial:040x}"[i : i + 2] for i in range(0, 40, 2)).upper()
    assert ca.revoke(plain).id == certs[0].id
    assert ca.revoke(colons, RevocationReason.KEY_COMPROMISE).id == certs[1].id
    assert ca.revoke("0x" + certs[2].serial_hex.upper()).id == certs[2].id
    with pytest.raises(RuleError, match="already revoked"):
        ca.revoke(certs[0].id)
    with pytest.raises(InputError, match="no certificate with serial"):
        ca.revoke("abcdef0123456789abcdef")
    with pytest.raises(InputError):
        ca.revoke("not-an-id")


def test_revoke_unknown_leaves_store_alone(ca, home):
    before = snapshot_home(home)
    with pytest.raises(InputError):
        ca.revoke(77)
    assert snapshot_home(home) == before


def test_every_change_is_audited_in_order(ca, clock):
    request_id = ca.submit(csr_pem(make_csr(cn="trail"))).request.id
    ca.approve([request_id])
    ca.revoke(request_id, RevocationReason.CESSATION_OF_OPERATION)
    other = ca.submit(csr_pem(make_csr(cn="trail-2"))).request.id
    ca.reject(other, "no")
    actions = [(r.action, r.target, r.outcome) for r in ca.audit_records()]
    assert actions == [
        ("init", "root and issuing CA", "created"), ("crl", "CRL 1", "published"),
        ("crl", "root CRL 1", "published"),
        ("submit", f"request {request_id}", "queued"), ("approve", f"request {request_id}", "issued"),
        ("revoke", f"certificate {request_id}", "revoked (cessationOfOperation)"), ("crl", "CRL 2", "published"),
        ("submit", f"request {other}", "queued"), ("reject", f"request {other}", "rejected"),
    ]  # fmt: skip
    assert all((r.user, r.address, r.at) == ("alice", "192.0.2.10", clock.now) for r in ca.audit_records())
    assert ca.verify_audit() == []


def test_a_serial_already_used_is_never_issued_twice(tmp_path, clock):
    # Injected serials: root, issuing, then the first leaf's serial offered again.
    offered = iter([0x1000, 0x1001, 0x5EED0001, 0x5EED0001, 0x5EED0002])
    authority = CertificateAuthority(tmp_path / "h", clock=clock, serials=lambda: next(offered))
    authority.init(CA_NAMES)
    first, second = (authority.submit(csr_pem(make_csr(cn=f"u{n}"))).request.id for n in range(2))
    serials = [o.certificate.serial for o in authority.approve([first, second])]
    assert serials == [0x5EED0001, 0x5EED0002]


def test_expired_queue_entries_are_audited_and_free_the_requester(ca, clock):
    stale = ca.submit(csr_pem(make_csr(cn="sleepy"))).request.id
    clock.now += timedelta(days=31)
    assert ca.expire_queue(timedelta(days=30)) == [stale]
    assert ca.request(stale).status is RequestStatus.EXPIRED
    record = ca.audit_records()[-1]
    assert (record.action, record.target, record.outcome, record.at) == (
        "expire", f"request {stale}", "expired", clock.now)  # fmt: skip
    again = ca.submit(csr_pem(make_csr(cn="sleepy"))).request.id
    assert again == stale + 1

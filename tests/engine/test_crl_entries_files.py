"""The pre-encoded CRL entries can never drift from the revoked set.

A fresh CertificateAuthority (a new process, nothing in memory) publishes
from the per-shard entry files; these tests change the revoked shards in
every way the engine can and compare the published CRL with the store.
"""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority, RevocationReason

KEY = ec.generate_private_key(ec.SECP256R1())


def issue_many(ca, count: int, prefix: str) -> list:
    csrs = [
        (x509.CertificateSigningRequestBuilder()
         .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{prefix}-{i}")]))
         .sign(KEY, hashes.SHA256()).public_bytes(serialization.Encoding.PEM), None)
        for i in range(count)
    ]  # fmt: skip
    requests = ca.submit_many(csrs)
    return [o.certificate for o in ca.approve([r.request.id for r in requests])]


def published_serials(home, clock) -> dict[int, x509.ReasonFlags | None]:
    fresh = CertificateAuthority(home, clock=clock)
    fresh.publish_crl()
    crl = x509.load_der_x509_crl(fresh.crl(republish_if_stale=False))
    assert crl.is_signature_valid(fresh.issuing_cert().public_key())
    found = {}
    for entry in crl:
        try:
            found[entry.serial_number] = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
        except x509.ExtensionNotFound:
            found[entry.serial_number] = None
    return found


def expected_serials(ca) -> dict[int, x509.ReasonFlags | None]:
    return {
        c.serial: (None if c.revocation_reason is RevocationReason.UNSPECIFIED else c.revocation_reason.flag)
        for c in ca.certificates()
        if c.revoked_at is not None
    }


def test_fresh_process_publishes_exactly_the_revoked_set(ca, home, clock):
    certs = issue_many(ca, 300, "spread")  # spans two ID shards
    for cert, reason in zip(certs[::7], [RevocationReason.KEY_COMPROMISE, RevocationReason.UNSPECIFIED] * 50):
        ca.revoke(cert.id, reason)
    assert published_serials(home, clock) == expected_serials(ca)


def test_revocation_committed_without_a_publish_still_reaches_the_next_crl(ca, home, clock):
    certs = issue_many(ca, 3, "quiet")
    ca.revoke(certs[0].id, RevocationReason.SUPERSEDED)  # entries file for the shard now exists
    # A path that changes the revoked set but does not publish in the same
    # transaction (as a bulk seeding or a future operation might).
    with ca._operation() as op:
        ca._revoke_doc(op, certs[1].id, RevocationReason.KEY_COMPROMISE)
    assert set(published_serials(home, clock)) == {certs[0].serial, certs[1].serial}


@pytest.mark.tinydb_only
def test_home_without_entry_files_heals_on_publish(ca, home, clock):
    certs = issue_many(ca, 2, "old")
    ca.revoke(certs[0].id, RevocationReason.CESSATION_OF_OPERATION)
    for path in (home / "crl" / "entries").iterdir():
        path.unlink()
    assert published_serials(home, clock) == expected_serials(ca)
    assert list((home / "crl" / "entries").iterdir())

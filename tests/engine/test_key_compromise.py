"""A key revoked for keyCompromise is never certified again, whoever asks."""

from __future__ import annotations

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import RevocationReason, RuleError


def csr_for(key, cn: str) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.PEM)


def issue(ca, key, cn):
    request = ca.submit(csr_for(key, cn)).request
    [outcome] = ca.approve([request.id])
    return outcome.certificate


def test_key_revoked_for_compromise_is_refused_at_intake_for_any_requester(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(ca, key, "phone-7")
    ca.revoke(cert.id, RevocationReason.KEY_COMPROMISE)
    queued_before = ca.requests()
    for requester in ("phone-7", "someone-else"):
        with pytest.raises(RuleError, match=rf"keyCompromise \(certificate {cert.id}\)"):
            ca.submit(csr_for(key, requester))
    assert ca.requests() == queued_before


def test_key_revoked_for_another_reason_may_be_certified_again(ca):
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(ca, key, "phone-8")
    ca.revoke(cert.id, RevocationReason.AFFILIATION_CHANGED)
    again = issue(ca, key, "phone-8")
    assert again.id != cert.id and again.spki_sha256 == cert.spki_sha256

"""Checks that the openssl baseline really drives openssl and produces valid
certificates and CRLs, so benchmark numbers compare like with like."""

import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

# bench/ is a plain directory (not an installed package) and pytest only puts
# tests/engine on sys.path, so make the repository root importable.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from bench.openssl_baseline import (
    gencrl_with_openssl,
    issue_with_openssl_ca,
    make_csrs,
    make_openssl_ca_dir,
    write_revoked_index,
)

pytestmark = pytest.mark.skipif(not Path("/usr/bin/openssl").exists(), reason="needs the openssl binary")


@pytest.fixture
def ca(tmp_path):
    """A throwaway self-signed EC P-256 CA laid out for `openssl ca`."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Baseline Test CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=3650))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    config = make_openssl_ca_dir(tmp_path / "ca dir", cert.public_bytes(serialization.Encoding.PEM), key_pem)
    return config, cert


def test_issue_three_certificates(ca, tmp_path):
    config, ca_cert = ca
    csrs = make_csrs(tmp_path / "csrs", 3)
    out = tmp_path / "issued"

    elapsed = issue_with_openssl_ca(config, csrs, out)

    assert elapsed > 0
    pems = sorted(out.glob("*.pem"))
    assert len(pems) == 3
    serials = set()
    for n, pem in enumerate(pems):
        cert = x509.load_pem_x509_certificate(pem.read_bytes())
        cert.verify_directly_issued_by(ca_cert)  # raises if the signature is bad
        bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert bc.critical and bc.value.ca is False
        cn = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value
        assert cn == f"bench-client-{n}"
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
        assert san.value.get_values_for_type(x509.DNSName) == [f"bench-client-{n}.bench.test"]
        serials.add(cert.serial_number)
    assert len(serials) == 3


def test_gencrl_lists_every_revoked_serial(ca, tmp_path):
    config, ca_cert = ca
    # Include small serials (odd hex length, leading zero) and 159-bit ones.
    serials = [1, 0xABC, 0x10] + [x509.random_serial_number() for _ in range(47)]
    now = datetime.now(UTC).replace(microsecond=0)
    write_revoked_index(config.parent, serials, now - timedelta(days=1), now + timedelta(days=300))
    out = tmp_path / "crl.pem"

    elapsed = gencrl_with_openssl(config, out)

    assert elapsed > 0
    crl = x509.load_pem_x509_crl(out.read_bytes())
    assert len(crl) == 50
    assert {entry.serial_number for entry in crl} == set(serials)
    assert crl.is_signature_valid(ca_cert.public_key())
    assert crl.issuer == ca_cert.subject
    with_reason = [e for e in crl if any(isinstance(ext.value, x509.CRLReason) for ext in e.extensions)]
    assert len(with_reason) == 25
    assert all(
        e.extensions.get_extension_for_class(x509.CRLReason).value.reason == x509.ReasonFlags.key_compromise
        for e in with_reason
    )
    assert crl[1].revocation_date_utc == now - timedelta(days=1)


def test_bad_config_raises(tmp_path):
    csrs = make_csrs(tmp_path / "csrs", 1)
    with pytest.raises(RuntimeError, match="Can.t open"):
        issue_with_openssl_ca(tmp_path / "missing.cnf", csrs, tmp_path / "out")


def test_revocation_date_must_fit_utctime(tmp_path):
    far = datetime(2051, 1, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        write_revoked_index(tmp_path, [1], far, far)

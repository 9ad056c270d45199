"""Keys generated in a real SoftHSM2 token sign certificates, CSRs and CRLs."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import NameOID

from tests.hsm.softhsm import USER_PIN, make_token
from tui_ca.engine.errors import InputError, KeyLockedError
from tui_ca.engine.signing import sign_builder
from tui_ca.engine.token_keys import TokenConfig, TokenError, TokenSession

NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)


@pytest.fixture
def token(tmp_path, monkeypatch):
    soft = make_token(tmp_path / "hsm")
    monkeypatch.setenv("SOFTHSM2_CONF", str(soft.conf))
    return soft


@pytest.fixture
def session(token):
    opened = TokenSession(TokenConfig(token.module, token.label), USER_PIN)
    yield opened
    opened.close()


def _self_signed(key, algorithm):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Token Root")])
    builder = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(0x1234_5678_9ABC_DEF1).not_valid_before(NOW).not_valid_after(NOW + timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )  # fmt: skip
    return sign_builder(builder, key, algorithm)


@pytest.mark.parametrize(("key_type", "algorithm"), [("ec-p256", hashes.SHA256()), ("ec-p384", hashes.SHA384()),
                                                     ("rsa-2048", hashes.SHA256())])  # fmt: skip
def test_token_key_signs_a_certificate_that_openssl_verifies(session, tmp_path, key_type, algorithm):
    key = session.generate(key_type, f"root-{key_type}")
    cert = _self_signed(key, algorithm)
    cert.verify_directly_issued_by(cert)
    assert cert.public_key() == key.public_key()
    pem = tmp_path / "root.pem"
    pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    result = subprocess.run(["openssl", "verify", "-CAfile", pem, "-attime", str(int(NOW.timestamp()) + 60), pem],
                            capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey)


def test_token_key_signs_csr_and_crl(session):
    key = session.generate("ec-p256", "issuing")
    csr = sign_builder(
        x509.CertificateSigningRequestBuilder().subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "x")])),
        key, hashes.SHA256(),
    )  # fmt: skip
    assert csr.is_signature_valid
    crl = sign_builder(
        x509.CertificateRevocationListBuilder().issuer_name(csr.subject).last_update(NOW)
        .next_update(NOW + timedelta(days=7)), key, hashes.SHA256(),
    )  # fmt: skip
    assert crl.is_signature_valid(key.public_key())


def test_the_private_key_cannot_leave_the_token(session):
    key = session.generate("ec-p256", "sealed")
    with pytest.raises(TokenError, match="cannot be exported"):
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    with session.calls() as raw:
        from pkcs11 import Attribute, ObjectClass

        private = raw.get_key(label="sealed", object_class=ObjectClass.PRIVATE_KEY)
        assert private[Attribute.SENSITIVE] is True
        assert private[Attribute.EXTRACTABLE] is False


def test_an_imported_file_key_signs_and_matches(session):
    file_key = ec.generate_private_key(ec.SECP384R1())
    key = session.import_key(file_key, "moved")
    assert key.public_key() == file_key.public_key()
    cert = _self_signed(key, hashes.SHA384())
    file_key.public_key().verify(cert.signature, cert.tbs_certificate_bytes, ec.ECDSA(hashes.SHA384()))


def test_wrong_pin_is_one_line_then_the_right_one_works(token):
    config = TokenConfig(token.module, token.label)
    with pytest.raises(KeyLockedError, match="PIN .* is wrong"):
        TokenSession(config, "000000")
    opened = TokenSession(config, USER_PIN)
    try:
        assert opened.generate("ec-p256", "after-retry").public_key() is not None
    finally:
        opened.close()


def test_unknown_token_module_and_taken_label_are_one_line(token, session):
    with pytest.raises(TokenError, match="no token labelled 'absent'"):
        TokenSession(TokenConfig(token.module, "absent"), USER_PIN)
    with pytest.raises(InputError, match="cannot load the PKCS#11 module"):
        TokenSession(TokenConfig("/nonexistent/libnothing.so", token.label), USER_PIN)
    session.generate("ec-p256", "once")
    with pytest.raises(InputError, match="already holds a key labelled 'once'"):
        session.generate("ec-p256", "once")


def test_a_closed_session_refuses_to_sign_in_one_line(session):
    key = session.generate("ec-p256", "gone")
    session.close()
    with pytest.raises(TokenError, match="removed or stopped answering|refused"):
        key.sign(b"tbs", ec.ECDSA(hashes.SHA256()))

"""A CA whose keys are generated in a real SoftHSM2 token: the whole life of a CA, judged by pkilint and openssl.

The CAs run on the real clock, as in tests/e2e/test_lint_verify.py: openssl
checks validity and CRL freshness against the wall clock.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from helpers import CA_NAMES, csr_pem, make_csr

from tests.hsm.softhsm import USER_PIN, SoftToken
from tui_ca.engine import CertificateAuthority, RevocationReason
from tui_ca.engine.home import ISSUING_KEY, OCSP_KEY, ROOT_KEY, SCEP_RA_CERT, SCEP_RA_KEY, TLS_KEY
from tui_ca.engine.service_certs import setup_service_certs
from tui_ca.engine.token_keys import TokenConfig, TokenError, TokenSession

OPENSSL = "/usr/bin/openssl"
_SPKI = (serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def token_ca(home: Path, soft: SoftToken, key_type: str = "ec-p256", **kwargs) -> CertificateAuthority:
    ca = CertificateAuthority(home, pin=USER_PIN.encode())
    ca.init(CA_NAMES, key_type=key_type, base_url="http://ca.example.net:8080",
            pkcs11=TokenConfig(soft.module, soft.label), **kwargs)  # fmt: skip
    return ca


def private_key_files(home: Path) -> list[str]:
    """Files under the home that hold private key material (PEM or DER PKCS#8 / traditional)."""
    found = []
    for path in sorted(home.rglob("*")):
        if path.is_file() and (b"PRIVATE KEY" in path.read_bytes() or b"ENCRYPTED" in path.read_bytes()):
            found.append(str(path.relative_to(home)))
    return found


def _lint_all(jobs: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    running = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for name, cmd in jobs.items()}  # fmt: skip
    return {name: (proc.wait(timeout=120), proc.stdout.read().decode()) for name, proc in running.items()}


@pytest.mark.parametrize("key_type", ["ec-p256", "ec-p384", "rsa-2048"])
def test_token_ca_issues_revokes_and_publishes_what_pkilint_and_openssl_accept(tmp_path, soft, key_type):
    home, out = tmp_path / "home", tmp_path / "out"
    out.mkdir()
    ca = token_ca(home, soft, key_type)
    # No key file was written; the configuration names the token and its labels.
    assert not (home / ISSUING_KEY).exists() and not (home / ROOT_KEY).exists()
    assert private_key_files(home) == []
    settings = ca.config()["pkcs11"]
    assert settings == {"module": soft.module, "token": soft.label,
                        "keys": {ISSUING_KEY: "tui-ca-issuing", ROOT_KEY: "tui-ca-root"}}  # fmt: skip
    assert ca.key_in_token() and ca.key_is_encrypted()
    # The token's keys are the certificates' keys, and the token will not let them out.
    from pkcs11 import Attribute

    for label, cert in (("tui-ca-root", ca.root_cert()), ("tui-ca-issuing", ca.issuing_cert())):
        key = ca._token.key(label)
        assert key.public_key().public_bytes(*_SPKI) == cert.public_key().public_bytes(*_SPKI)
        assert key._private[Attribute.SENSITIVE] is True
        assert key._private[Attribute.EXTRACTABLE] is False
        assert key._private[Attribute.NEVER_EXTRACTABLE] is True
        with pytest.raises(TokenError, match="cannot be exported"):
            key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption())  # fmt: skip

    for n, kind in enumerate(["rsa-2048", "ec-p256"], start=1):
        ca.submit(csr_pem(make_csr(kind, cn=f"device-{n}.example.net", sans=[f"DNS:device-{n}.example.net"])))
    assert all(o.certificate for o in ca.approve([1, 2]))
    ca.revoke(2, RevocationReason.KEY_COMPROMISE)
    ca.publish_crl()
    setup_service_certs(ca, ["ca.example.net"])
    # Only the server's own keys are files (made by server-setup, as with file keys); the CA's are not.
    assert private_key_files(home) == sorted([OCSP_KEY, SCEP_RA_KEY, TLS_KEY])
    ca_spkis = {c.public_key().public_bytes(*_SPKI) for c in (ca.root_cert(), ca.issuing_cert())}
    for rel in (OCSP_KEY, SCEP_RA_KEY, TLS_KEY):
        server_key = serialization.load_pem_private_key((home / rel).read_bytes(), None)
        assert server_key.public_key().public_bytes(*_SPKI) not in ca_spkis

    files = {"root": out / "root.pem", "issuing": out / "issuing.pem", "leaf-good": out / "leaf-good.pem",
             "leaf-revoked": out / "leaf-revoked.pem", "crl": out / "crl.pem", "root-crl": out / "root-crl.pem",
             "tls": out / "tls.pem", "ocsp": out / "ocsp.pem", "scep-ra": out / "scep-ra.pem"}  # fmt: skip
    files["root"].write_bytes(ca.root_cert().public_bytes(serialization.Encoding.PEM))
    files["issuing"].write_bytes(ca.ca_cert_pem())
    files["leaf-good"].write_bytes(ca.certificate_pem(1))
    files["leaf-revoked"].write_bytes(ca.certificate_pem(2))
    files["crl"].write_bytes(ca.crl(der=False))
    root_crl = x509.load_der_x509_crl(ca.published_root_crl())
    files["root-crl"].write_bytes(root_crl.public_bytes(serialization.Encoding.PEM))
    files["tls"].write_bytes((home / "server/tls.crt").read_bytes().split(b"-----END CERTIFICATE-----")[0]
                             + b"-----END CERTIFICATE-----\n")  # fmt: skip
    files["ocsp"].write_bytes((home / "server/ocsp.crt").read_bytes())
    files["scep-ra"].write_bytes((home / SCEP_RA_CERT).read_bytes())
    certs = ("root", "issuing", "leaf-good", "leaf-revoked", "tls", "ocsp", "scep-ra")
    jobs = {name: ["lint_pkix_cert", "lint", "-s", "WARNING", str(files[name])] for name in certs}
    jobs |= {name: ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(files[name])]
             for name in ("crl", "root-crl")}  # fmt: skip
    findings = {name: output for name, (code, output) in _lint_all(jobs).items() if code != 0 or output.strip()}
    assert findings == {}

    crls = out / "crls.pem"
    crls.write_bytes(files["crl"].read_bytes() + files["root-crl"].read_bytes())

    def verify(name: str) -> subprocess.CompletedProcess:
        return subprocess.run([OPENSSL, "verify", "-crl_check_all", "-CAfile", str(files["root"]),
                               "-untrusted", str(files["issuing"]), "-CRLfile", str(crls), str(files[name])],
                              capture_output=True, text=True)  # fmt: skip

    for name in ("leaf-good", "tls", "ocsp", "scep-ra"):
        good = verify(name)
        assert good.returncode == 0, (name, good.stdout, good.stderr)
    revoked = verify("leaf-revoked")
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr


def test_init_uses_existing_token_keys_by_label(tmp_path, soft):
    session = TokenSession(TokenConfig(soft.module, soft.label), USER_PIN)
    try:
        root = session.generate("ec-p384", "hsm-root-2026")
        issuing = session.generate("ec-p384", "hsm-issuing-2026")
        spkis = (root.public_key().public_bytes(*_SPKI), issuing.public_key().public_bytes(*_SPKI))
    finally:
        session.close()
    ca = token_ca(tmp_path / "home", soft, "ec-p256", pkcs11_keys=["hsm-root-2026", "hsm-issuing-2026"])
    assert ca.root_cert().public_key().public_bytes(*_SPKI) == spkis[0]
    assert ca.issuing_cert().public_key().public_bytes(*_SPKI) == spkis[1]
    # The key type is the token keys' own, whatever --key-type said.
    assert ca.config()["key_type"] == "ec-p384"
    ca.submit(csr_pem(make_csr("ec-p256", cn="one.example.net", sans=["DNS:one.example.net"])))
    (outcome,) = ca.approve([1])
    assert outcome.certificate is not None
    x509.load_pem_x509_certificate(ca.certificate_pem(1)).verify_directly_issued_by(ca.issuing_cert())


def test_external_root_csr_carries_the_token_key_and_verifies(tmp_path, soft):
    ca = CertificateAuthority(tmp_path / "home", pin=USER_PIN.encode())
    pem = ca.init(CA_NAMES, external_root=True, pkcs11=TokenConfig(soft.module, soft.label))
    csr = x509.load_pem_x509_csr(pem)
    assert csr.is_signature_valid
    assert not (tmp_path / "home" / ISSUING_KEY).exists()
    assert ca.signing_key().public_key().public_bytes(*_SPKI) == csr.public_key().public_bytes(*_SPKI)
    assert ca.config()["pkcs11"]["keys"] == {ISSUING_KEY: "tui-ca-issuing"}

"""Output judged by others: pkilint's RFC 5280 linters and ``openssl verify``.

The CAs run on the real clock (openssl checks validity and CRL freshness
against the wall clock). pkilint runs as
its own command, several at once, because each start costs about a second.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from helpers import csr_pem, make_csr

from tui_ca.engine import CertificateAuthority, NameFields, RevocationReason

OPENSSL = "/usr/bin/openssl"


def _lint_all(jobs: dict[str, list[str]]) -> dict[str, tuple[int, str]]:
    """Run pkilint commands concurrently: name -> (exit code, stdout+stderr)."""
    running = {name: subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
               for name, cmd in jobs.items()}  # fmt: skip
    return {name: (proc.wait(timeout=120), proc.stdout.read().decode()) for name, proc in running.items()}


def _cert_lint(path: Path) -> list[str]:
    return ["lint_pkix_cert", "lint", "-s", "WARNING", str(path)]


def _crl_lint(path: Path) -> list[str]:
    return ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(path)]


def _assert_clean(results: dict[str, tuple[int, str]]) -> None:
    findings = {name: out for name, (code, out) in results.items() if code != 0 or out.strip()}
    assert findings == {}


def _make_ca(home: Path, out: Path, key_type: str) -> dict[str, Path]:
    """A CA with an RSA and an EC leaf, two revoked; every artefact as a file.

    Made through the engine in this process (the command's own outputs are
    tested in tests/cli); the files are exactly what ``export``/``crl`` print.
    """
    out.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority(home)
    ca.init(NameFields(country="GB", state="England", locality="London", organization="Example Networks",
                       org_unit="PKI", common_name=f"Lint {key_type} CA", email="pki@example.net"),
            key_type=key_type, base_url="http://ca.example.net:8080")  # fmt: skip
    files = {"root": out / "root.pem", "issuing": out / "issuing.pem", "crl-empty": out / "crl-empty.pem"}
    files["root"].write_bytes(ca.ca_cert_pem(chain=True)[len(ca.ca_cert_pem()) :])
    files["issuing"].write_bytes(ca.ca_cert_pem())
    files["crl-empty"].write_bytes(ca.crl(der=False))
    for n, kind in enumerate(["rsa-2048", "ec-p256", "ec-p384"], start=1):
        csr = make_csr(kind, cn=f"device-{n}.example.net", sans=[f"DNS:device-{n}.example.net"])
        ca.submit(csr_pem(csr))
    # A subject with an e-mail address and no SAN (RFC 5280 wants it in the SAN).
    ca.submit(csr_pem(make_csr(subject=x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailer"),
                                                  x509.NameAttribute(NameOID.EMAIL_ADDRESS, "m@example.net")]))))  # fmt: skip
    assert all(o.certificate for o in ca.approve([1, 2, 3, 4]))
    files["leaf-email"] = out / "leaf-email.pem"
    files["leaf-email"].write_bytes(ca.certificate_pem(4))
    for n, name in [(1, "leaf-rsa"), (2, "leaf-ec")]:
        (out / f"{name}.chain.pem").write_bytes(ca.certificate_pem(n, chain=True))
        files[name] = out / f"{name}.pem"
        files[name].write_bytes(ca.certificate_pem(n))
    ca.revoke(3, RevocationReason.KEY_COMPROMISE)
    ca.revoke(2, RevocationReason.UNSPECIFIED)
    files["crl"] = out / "crl.pem"
    files["crl"].write_bytes(ca.crl(der=False))
    return files


@pytest.fixture(scope="module")
def ec_ca(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("lint-ec")
    return _make_ca(base / "home", base / "out", "ec-p256")


def test_pkilint_finds_nothing_in_ec_ca_output(ec_ca):
    jobs = {name: _cert_lint(ec_ca[name]) for name in ("root", "issuing", "leaf-rsa", "leaf-ec", "leaf-email")}
    jobs |= {name: _crl_lint(ec_ca[name]) for name in ("crl-empty", "crl")}
    _assert_clean(_lint_all(jobs))


@pytest.mark.parametrize("key_type", ["rsa-2048", "ec-p384"])
def test_pkilint_finds_nothing_for_other_ca_keys(tmp_path, key_type):
    files = _make_ca(tmp_path / "home", tmp_path / "out", key_type)
    jobs = {name: _cert_lint(files[name]) for name in ("root", "issuing", "leaf-ec")}
    jobs["crl"] = _crl_lint(files["crl"])
    _assert_clean(_lint_all(jobs))
    # The chain must also hold up for these key types, and the CRL be honoured.
    crl = ["-crl_check", "-CRLfile", str(files["crl"])]
    assert _verify(files["root"], tmp_path / "out/leaf-rsa.chain.pem", *crl).returncode == 0
    revoked = _verify(files["root"], tmp_path / "out/leaf-ec.chain.pem", *crl)
    assert revoked.returncode != 0 and "certificate revoked" in revoked.stdout + revoked.stderr


def test_pkilint_does_report_a_flawed_certificate(tmp_path):
    """Control: the lint check above can fail (no SKI/AKI, no KeyUsage on a CA)."""
    from helpers import make_key

    key = make_key("ec-p256")
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Flawed CA")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(1).not_valid_before(now).not_valid_after(now + timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=False)
        .sign(key, hashes.SHA256())
    )  # fmt: skip
    path = tmp_path / "flawed.pem"
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    _code, out = _lint_all({"flawed": _cert_lint(path)})["flawed"]
    assert out.strip() != ""


def _verify(root: Path, chain: Path, *extra: str) -> subprocess.CompletedProcess:
    """``openssl verify`` of the first certificate of an exported chain."""
    text = chain.read_text()
    first_end = text.index("-----END CERTIFICATE-----") + len("-----END CERTIFICATE-----\n")
    leaf, intermediates = chain.with_suffix(".leaf"), chain.with_suffix(".untrusted")
    leaf.write_text(text[:first_end])
    intermediates.write_text(text[first_end:])
    return subprocess.run([OPENSSL, "verify", "-CAfile", str(root), "-untrusted", str(intermediates), *extra,
                           str(leaf)], capture_output=True, text=True, check=False)  # fmt: skip


@pytest.mark.parametrize("purpose", [None, "sslclient", "sslserver"])
def test_openssl_verifies_exported_chain(ec_ca, purpose):
    chain = ec_ca["leaf-rsa"].with_name("leaf-rsa.chain.pem")
    # The exported chain is leaf, issuing CA, root, in that order.
    pems = x509.load_pem_x509_certificates(chain.read_bytes())
    assert [c.subject.rfc4514_string() for c in pems[1:]] == [
        x509.load_pem_x509_certificate(ec_ca["issuing"].read_bytes()).subject.rfc4514_string(),
        x509.load_pem_x509_certificate(ec_ca["root"].read_bytes()).subject.rfc4514_string(),
    ]
    result = _verify(ec_ca["root"], chain, *(["-purpose", purpose] if purpose else []))
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip().endswith(": OK")


def test_openssl_crl_check_accepts_valid_and_reports_revoked(ec_ca):
    crl = ["-crl_check", "-CRLfile", str(ec_ca["crl"])]
    good = _verify(ec_ca["root"], ec_ca["leaf-rsa"].with_name("leaf-rsa.chain.pem"), *crl)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = _verify(ec_ca["root"], ec_ca["leaf-ec"].with_name("leaf-ec.chain.pem"), *crl)
    assert bad.returncode != 0
    assert "certificate revoked" in bad.stdout + bad.stderr

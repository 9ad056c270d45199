"""Whole-chain revocation, judged by Java's CertPathValidator (PKIX, revocation on).

The CRLs are fetched by Java itself over HTTP, from the URLs the certificates
name, served by a small HTTP server over the home's files.
"""

from __future__ import annotations

import http.server
import shutil
import subprocess
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from helpers import assert_refused, csr_pem, make_csr, run_cli

from tui_ca.engine import CertificateAuthority, NameFields, RevocationReason, RuleError
from tui_ca.engine.chain import IssuingRevokedError, revoke_issuing_ca, root_crl_der

# Where a TinyDB home keeps what it published (served here as static files,
# as a plain web server in front of the home would).
CRL_DER, ROOT_CRL_DER, ROOT_CRL_PEM = "crl/ca.crl", "crl/root.crl", "crl/root.crl.pem"

pytestmark = pytest.mark.e2e
JAVA_SOURCE = Path(__file__).parent / "java" / "PathCheck.java"


@pytest.fixture(scope="module")
def java_classes(tmp_path_factory) -> Path:
    if shutil.which("javac") is None:
        pytest.fail("javac (Debian's default-jdk-headless) is needed for the whole-chain test")
    out = tmp_path_factory.mktemp("java")
    subprocess.run(["javac", "-d", str(out), str(JAVA_SOURCE)], check=True, timeout=300)
    return out


class _Files(http.server.BaseHTTPRequestHandler):
    routes: dict[str, Path] = {}
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.seen.append(self.path)
        path = self.routes.get(self.path)
        if path is None or not path.exists():
            self.send_error(404)
            return
        body = path.read_bytes()
        if path.suffix == ".pem":
            body = x509.load_pem_x509_certificate(body).public_bytes(serialization.Encoding.DER)
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def crl_server(tmp_path) -> Iterator[tuple[str, type[_Files]]]:
    handler = type("Files", (_Files,), {"routes": {}, "seen": []})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _serve_home(handler: type[_Files], home: Path) -> None:
    handler.routes.update({"/ca.crl": home / CRL_DER, "/crl/root.crl": home / ROOT_CRL_DER,
                           "/root.crt": home / "ca/root.crt.pem", "/ca.crt": home / "ca/issuing.crt.pem"})  # fmt: skip


def _java(classes: Path, root: Path, *chain: Path) -> tuple[int, str]:
    done = subprocess.run(["java", "-cp", str(classes), "PathCheck", str(root), *map(str, chain)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    return done.returncode, (done.stdout + done.stderr).strip()


def _leaf(ca: CertificateAuthority, out: Path, cn: str) -> tuple[int, Path]:
    request = ca.submit(csr_pem(make_csr(cn=cn))).request
    (outcome,) = ca.approve([request.id])
    assert outcome.certificate is not None, outcome.error
    path = out / f"{cn}.pem"
    path.write_bytes(ca.certificate_pem(request.id))
    return request.id, path


def test_java_pkix_accepts_the_chain_then_sees_the_leaf_and_the_issuing_ca_revoked(java_classes, crl_server, tmp_path):
    base, handler = crl_server
    home = tmp_path / "home"
    run_cli(home, "init", "--cn", "Java Issuing CA", "--org", "Example Networks", "--base-url", base, check=True)
    _serve_home(handler, home)
    ca = CertificateAuthority(home)
    root, issuing = tmp_path / "root.pem", tmp_path / "issuing.pem"
    root.write_bytes(home.joinpath("ca/root.crt.pem").read_bytes())
    issuing.write_bytes(ca.ca_cert_pem())
    cert = ca.issuing_cert()
    cdp = cert.extensions.get_extension_for_class(x509.CRLDistributionPoints).value
    assert [n.value for dp in cdp for n in dp.full_name] == [f"{base}/crl/root.crl"]
    aia = cert.extensions.get_extension_for_class(x509.AuthorityInformationAccess).value
    assert [d.access_location.value for d in aia] == [f"{base}/root.crt"]

    good_id, good = _leaf(ca, tmp_path, "good.example.net")
    code, out = _java(java_classes, root, good, issuing)
    assert (code, out) == (0, "VALID")
    # Java fetched both CRLs: the issuing CA's (for the leaf) and the root's (for the issuing CA).
    assert {"/ca.crl", "/crl/root.crl"} <= set(handler.seen)

    bad_id, bad = _leaf(ca, tmp_path, "bad.example.net")
    run_cli(home, "revoke", str(bad_id), "--reason", "keyCompromise", check=True)
    code, out = _java(java_classes, root, bad, issuing)
    assert code == 1 and out.startswith("INVALID 0 REVOKED"), out
    assert _java(java_classes, root, good, issuing) == (0, "VALID")

    result = run_cli(home, "revoke-issuing-ca", "--reason", "cACompromise")
    assert result.returncode == 0, result.stderr
    code, out = _java(java_classes, root, good, issuing)
    assert code == 1 and out.startswith("INVALID 1 REVOKED"), out
    # The root's CRL lists the issuing CA, signed by the root key, with a long life.
    crl = x509.load_der_x509_crl(root_crl_der(ca))
    assert crl.is_signature_valid(ca.root_cert().public_key())
    assert crl.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
    assert crl.next_update_utc - crl.last_update_utc >= timedelta(days=365)
    # Nothing more is signed with a revoked issuing CA.
    ca = CertificateAuthority(home)
    ca.submit(csr_pem(make_csr(cn="late.example.net")))
    with pytest.raises(IssuingRevokedError, match="revoked by the root"):
        ca.approve([3])
    assert_refused(run_cli(home, "approve", "3"), 1, "revoked by the root")
    assert ca.request(3).status.value == "queued"
    assert_refused(run_cli(home, "revoke-issuing-ca", "--reason", "keyCompromise"), 1, "already revoked")


def test_the_root_crl_is_published_at_init_and_refreshed_by_crl_publish(ca, clock):
    first = x509.load_der_x509_crl(root_crl_der(ca))
    assert first.issuer == ca.root_cert().subject
    assert first.is_signature_valid(ca.root_cert().public_key())
    clock.now += timedelta(days=300)  # into the last quarter of its year
    ca.publish_crl()
    second = x509.load_der_x509_crl(root_crl_der(ca))
    assert second.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number == 2
    ca.publish_crl()  # not due again: unchanged
    assert root_crl_der(ca) == second.public_bytes(serialization.Encoding.DER)


def test_revoke_issuing_ca_refuses_a_leaf_reason(ca):
    with pytest.raises(RuleError, match="not a reason to revoke a CA"):
        revoke_issuing_ca(ca, RevocationReason.CERTIFICATE_HOLD)
    revoke_issuing_ca(ca, RevocationReason.KEY_COMPROMISE)
    with pytest.raises(IssuingRevokedError):
        revoke_issuing_ca(ca, RevocationReason.KEY_COMPROMISE)


def _external_root(tmp_path: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Other Root")])
    now = datetime.now(UTC)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(days=1))
            .not_valid_after(now + timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .add_extension(ski, critical=False).sign(key, hashes.SHA256()))  # fmt: skip
    return key, cert


def test_an_external_root_keeps_working_and_cannot_be_used_to_revoke(tmp_path):
    home = tmp_path / "ext"
    ca = CertificateAuthority(home)
    csr = x509.load_pem_x509_csr(ca.init(NameFields(common_name="Branch CA"), external_root=True,
                                         base_url="http://127.0.0.1:9"))  # fmt: skip
    root_key, root = _external_root(tmp_path)
    now = datetime.now(UTC)
    issuing = (x509.CertificateBuilder().subject_name(csr.subject).issuer_name(root.subject)
               .public_key(csr.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - timedelta(minutes=5)).not_valid_after(now + timedelta(days=1000))
               .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
               .add_extension(x509.SubjectKeyIdentifier.from_public_key(csr.public_key()), critical=False)
               .sign(root_key, hashes.SHA256()))  # fmt: skip
    pem = serialization.Encoding.PEM
    ca.import_ca_cert(root.public_bytes(pem), issuing.public_bytes(pem))
    assert root_crl_der(ca) is None
    ca.publish_crl()  # no root key here: only the issuing CA's CRL
    assert root_crl_der(ca) is None
    ca.submit(csr_pem(make_csr(cn="ext.example.net")))
    assert ca.approve([1])[0].certificate is not None
    assert_refused(run_cli(home, "revoke-issuing-ca", "--reason", "keyCompromise"), 1, "external")


def test_the_issuing_ca_with_cdp_and_aia_and_the_root_crl_pass_pkilint(ca, tmp_path):
    issuing = tmp_path / "issuing.pem"
    issuing.write_bytes(ca.ca_cert_pem())
    revoke_issuing_ca(ca, RevocationReason.KEY_COMPROMISE)
    root_crl = tmp_path / "root-crl.pem"
    root_crl.write_bytes((ca.home / ROOT_CRL_PEM).read_bytes())
    jobs = [["lint_pkix_cert", "lint", "-s", "WARNING", str(issuing)],
            ["lint_crl", "lint", "-t", "CRL", "-p", "PKIX", "-s", "WARNING", str(root_crl)]]  # fmt: skip
    for job in jobs:
        done = subprocess.run(job, capture_output=True, text=True, timeout=120)
        assert (done.returncode, (done.stdout + done.stderr).strip()) == (0, ""), job

"""strongSwan's ``pki --scepca`` and ``pki --scep`` against the SCEP routes, polling until an admin decides."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from scep_support import scep_ca, scep_requests, serving

from tests.server.live import require, run, wait_for
from tui_ca.engine import CertStatus, RequestStatus, RevocationReason
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import Challenges

DEADLINE = 90


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    require("pki", "openssl")
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


def scepca(url: str, work: Path) -> dict[str, Path]:
    """Fetch RA and CA certificates as strongSwan does; returns the files it wrote."""
    run(["pki", "--scepca", "--url", url, "--caout", str(work / "ca.der"), "--raout", str(work / "ra.der")])
    return {"root": work / "ca.der", "issuing": work / "ca-1.der", "ra": work / "ra.der"}


class Enrollment:
    """A running ``pki --scep``; its output goes to files (a pipe nobody reads could fill while it polls)."""

    def __init__(self, args: list[str], out: Path) -> None:
        self.err_path = out.with_suffix(".err")
        with out.open("wb") as stdout, self.err_path.open("wb") as stderr:  # the child keeps its own copies
            self.process = subprocess.Popen(args, stdout=stdout, stderr=stderr)

    def poll(self) -> int | None:
        return self.process.poll()

    def wait(self, timeout: float) -> int:
        return self.process.wait(timeout)

    @property
    def stderr(self) -> str:
        return self.err_path.read_text(errors="replace")


def start_enroll(url: str, work: Path, cas: dict[str, Path], key: Path, out: Path, *extra: str) -> Enrollment:
    args = ["pki", "--scep", "--url", url, "--in", str(key), "--dn", "CN=vpn-gw-1", "--cacert-enc", str(cas["ra"]),
            "--cacert-sig", str(cas["ra"]), "--cacert", str(cas["root"]), "--cacert", str(cas["issuing"]),
            "--interval", "1", "--maxpolltime", str(DEADLINE), "--outform", "pem", *extra]  # fmt: skip
    return Enrollment(args, out)


def rsa_key(work: Path, name: str) -> Path:
    path = work / name
    path.write_bytes(run(["pki", "--gen", "--type", "rsa", "--size", "2048", "--outform", "pem"]).stdout)
    return path


def openssl_verify(cas: dict[str, Path], cert: Path, work: Path) -> str:
    pems = {}
    for label in ("root", "issuing"):
        pems[label] = work / f"{label}.pem"
        run(["openssl", "x509", "-inform", "DER", "-in", str(cas[label]), "-out", str(pems[label])])
    return run(["openssl", "verify", "-CAfile", str(pems["root"]), "-untrusted", str(pems["issuing"]),
                str(cert)]).stdout.decode()  # fmt: skip


def test_scepca_writes_root_issuing_and_ra(ca, served, tmp_path):
    cas = scepca(served.url, tmp_path)
    assert {p.name for p in tmp_path.glob("*.der")} == {"ca.der", "ca-1.der", "ra.der"}
    from cryptography import x509

    assert x509.load_der_x509_certificate(cas["ra"].read_bytes()) == served.service.ra.cert
    assert x509.load_der_x509_certificate(cas["issuing"].read_bytes()) == ca.issuing_cert()


def test_enroll_polls_until_approved_and_verifies_then_renews(ca, served, tmp_path):
    cas = scepca(served.url, tmp_path)
    key, cert = rsa_key(tmp_path, "gw.key"), tmp_path / "gw.crt"
    client = start_enroll(served.url, tmp_path, cas, key, cert)
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    assert request.source == "scep" and request.requester == "vpn-gw-1"
    # Still polling: the client has had PENDING at least once and waits.
    assert client.poll() is None
    ca.approve([request.id])
    assert client.wait(DEADLINE) == 0, client.stderr
    assert openssl_verify(cas, cert, tmp_path).strip() == f"{cert}: OK"

    # Renewal: signed with the current certificate, a new key; approving it supersedes the old one.
    new_key, new_cert = rsa_key(tmp_path, "gw2.key"), tmp_path / "gw2.crt"
    renewal = start_enroll(served.url, tmp_path, cas, new_key, new_cert, "--cert", str(cert), "--key", str(key))
    queued = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    assert queued[0].renewal_of == request.id
    ca.approve([queued[0].id])
    assert renewal.wait(DEADLINE) == 0, renewal.stderr
    assert openssl_verify(cas, new_cert, tmp_path).strip() == f"{new_cert}: OK"
    old = ca.certificate(request.id)
    assert old.status_at(ca.now()) is CertStatus.REVOKED and old.revocation_reason is RevocationReason.SUPERSEDED


def test_rejection_ends_the_client_with_failure(ca, served, tmp_path):
    cas = scepca(served.url, tmp_path)
    key, cert = rsa_key(tmp_path, "gw.key"), tmp_path / "gw.crt"
    client = start_enroll(served.url, tmp_path, cas, key, cert)
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    ca.reject(request.id, "unknown device")
    assert client.wait(DEADLINE) != 0
    err = client.stderr
    assert "badRequest" in err and "reply status is not 'SUCCESS'" in err
    assert cert.read_bytes() == b""


def test_required_challenge_password_from_strongswan(ca, served, tmp_path):
    challenges = Challenges(ca.home)
    challenges.set_required(True)
    cas = scepca(served.url, tmp_path)
    key = rsa_key(tmp_path, "gw.key")
    refused = start_enroll(served.url, tmp_path, cas, key, tmp_path / "none.crt")
    assert refused.wait(DEADLINE) != 0 and "badRequest" in refused.stderr
    assert scep_requests(ca) == []
    password = challenges.mint(ca.now(), requester="vpn-gw-1").password
    client = start_enroll(served.url, tmp_path, cas, key, tmp_path / "gw.crt", "--password", password)
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    assert [r.extra.get("challenge") for r in ca.audit_records() if r.action == "submit"] == ["matched"]
    ca.approve([request.id])
    assert client.wait(DEADLINE) == 0, client.stderr

"""certmonger (its daemon and its ``scep-submit`` helper) against the SCEP routes.

The daemon runs confined to the test's folder: its CA and request stores,
lock, config and temporary files are redirected by certmonger's own
environment variables, and getcert reaches it on a private socket, so no
D-Bus and nothing of the system's certmonger is touched. The daemon builds
the PKCSReq and CertPoll itself and decrypts the answer; ``getcert refresh``
is the client asking again (what its own timer does, sooner).
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from scep_support import scep_ca, scep_requests, serving

from tests.server.live import require, run, wait_for
from tui_ca.engine import RequestStatus
from tui_ca.server.scep.service import ScepService
from tui_ca.server.scep.state import Challenges

CERTMONGER = "/usr/sbin/certmonger"
DEADLINE = 90


@pytest.fixture
def ca(tmp_path):
    return scep_ca(tmp_path)


@pytest.fixture
def served(ca):
    with serving(ScepService(ca, log=lambda line: None)) as running:
        yield running


@pytest.fixture
def getcert(tmp_path):
    """``getcert`` bound to a certmonger daemon of this test's own."""
    require("getcert", "openssl", CERTMONGER)
    state = tmp_path / "certmonger"
    env = {**os.environ, "HOME": str(state)}
    for name, sub in (("CAS_DIR", "cas"), ("REQUESTS_DIR", "requests"), ("LOCAL_CA_DIR", "local"),
                      ("CONFIG_DIR", "config"), ("TMPDIR", "tmp")):  # fmt: skip
        (state / sub).mkdir(parents=True)
        env[f"CERTMONGER_{name}"] = str(state / sub)
    env["CERTMONGER_SYSTEM_LOCK_FILE"] = str(state / "lock")
    socket = state / "certmonger.sock"
    env["CERTMONGER_PVT_ADDRESS"] = f"unix:path={socket}"
    log = state / "certmonger.log"
    with log.open("wb") as handle:
        daemon = subprocess.Popen([CERTMONGER, "-L", "-P", str(socket), "-n"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=handle, start_new_session=True)  # fmt: skip
    try:
        wait_for(lambda: socket.exists() or daemon.poll() is not None, timeout=DEADLINE)
        assert daemon.poll() is None, log.read_text()

        def call(*args: str, check: bool = True) -> str:
            result = subprocess.run(["getcert", *args], env=env, capture_output=True, timeout=DEADLINE)
            assert not check or result.returncode == 0, result.stderr.decode() + result.stdout.decode()
            return result.stdout.decode()

        yield call
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
            daemon.wait()


def status(getcert, request: str) -> str:
    for line in getcert("list", "-i", request).splitlines():
        if line.strip().startswith("status:"):
            return line.split(":", 1)[1].strip()
    return ""


def refresh_until(getcert, request: str, wanted: str) -> None:
    """``getcert refresh`` until the request reaches ``wanted``.

    certmonger ignores a refresh while it is still submitting, and then polls
    again only after minutes: so wait for the pending answer to be understood
    (CA_WORKING) first, and ask again now and then.
    """
    wait_for(lambda: status(getcert, request) == "CA_WORKING", timeout=DEADLINE)
    asked = [0.0]

    def reached() -> bool:
        if status(getcert, request) == wanted:
            return True
        if time.monotonic() - asked[0] > 5:
            getcert("refresh", "-i", request)
            asked[0] = time.monotonic()
        return False

    wait_for(reached, timeout=DEADLINE)


def add_ca(getcert, served) -> None:
    getcert("add-scep-ca", "-c", "tuica", "-u", served.url)
    # certmonger fetches GetCACaps and GetCACert through scep-submit and shows what it understood.
    wait_for(lambda: "SCEP CA certificate thumbprint" in getcert("list-cas", "-c", "tuica"), timeout=DEADLINE)


def test_certmonger_enrolls_after_approval_and_the_certificate_verifies(ca, served, getcert, tmp_path):
    add_ca(getcert, served)
    key, cert = tmp_path / "host.key", tmp_path / "host.crt"
    getcert("request", "-c", "tuica", "-I", "host", "-k", str(key), "-f", str(cert), "-N", "CN=cm-host-1",
            "-G", "rsa", "-g", "2048")  # fmt: skip
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    assert (request.requester, request.source) == ("cm-host-1", "scep")
    # The first answer was PENDING: certmonger keeps the request open, with no error.
    wait_for(lambda: status(getcert, "host") == "CA_WORKING", timeout=DEADLINE)
    assert "ca-error" not in getcert("list", "-i", "host")
    ca.approve([request.id])
    refresh_until(getcert, "host", "MONITORING")
    chain = tmp_path / "chain"
    chain.mkdir()
    (chain / "issuing.pem").write_bytes(ca.ca_cert_pem())
    (chain / "root.pem").write_bytes(ca.root_cert().public_bytes(Encoding.PEM))
    verified = run(["openssl", "verify", "-CAfile", str(chain / "root.pem"), "-untrusted", str(chain / "issuing.pem"),
                    str(cert)]).stdout.decode()  # fmt: skip
    assert verified.strip() == f"{cert}: OK"
    assert len(scep_requests(ca)) == 1


def test_certmonger_sees_a_rejection_as_rejected(ca, served, getcert, tmp_path):
    add_ca(getcert, served)
    getcert("request", "-c", "tuica", "-I", "host", "-k", str(tmp_path / "h.key"), "-f", str(tmp_path / "h.crt"),
            "-N", "CN=cm-host-2", "-G", "rsa", "-g", "2048")  # fmt: skip
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    ca.reject(request.id, "not in the inventory")
    refresh_until(getcert, "host", "CA_REJECTED")
    assert not (tmp_path / "h.crt").exists()


def test_certmonger_carries_a_required_challenge_password(ca, served, getcert, tmp_path):
    challenges = Challenges(ca.home)
    challenges.set_required(True)
    password = challenges.mint(ca.now(), requester="cm-host-3").password
    add_ca(getcert, served)
    getcert("request", "-c", "tuica", "-I", "host", "-k", str(tmp_path / "h.key"), "-f", str(tmp_path / "h.crt"),
            "-N", "CN=cm-host-3", "-G", "rsa", "-g", "2048", "-L", password)  # fmt: skip
    [request] = wait_for(lambda: ca.requests(RequestStatus.QUEUED), timeout=DEADLINE)
    assert [r.extra.get("challenge") for r in ca.audit_records() if r.action == "submit"] == ["matched"]
    ca.approve([request.id])
    refresh_until(getcert, "host", "MONITORING")

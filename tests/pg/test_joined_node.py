"""A node that joined the CA's database serves it: intake there, approval on the admin host,
collection, the CRL and OCSP back on the node. Real `tui-ca serve`, curl and openssl.

(The two-node test of the issue, with SIGKILL of a node, waits for the server rewrite.)
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import time
from pathlib import Path

from tests.helpers import TUI_CA, csr_der, make_csr, run_cli
from tests.pg_support import _free_port

DEADLINE = 120.0


def _wait_for_port(port: int, server: subprocess.Popen) -> None:
    end = time.monotonic() + DEADLINE
    while True:
        assert server.poll() is None, server.communicate()[1]
        try:
            socket.create_connection(("127.0.0.1", port), 1).close()
            return
        except OSError:
            assert time.monotonic() < end, f"port {port} not listening after {DEADLINE} s"
            time.sleep(0.05)


def _enroll(port: int, der: bytes) -> tuple[str, bytes]:
    result = subprocess.run(
        ["curl", "-sk", "-w", "\n%{http_code}", "--data-binary", "@-", "-H", "Content-Type: application/pkcs10",
         f"https://127.0.0.1:{port}/.well-known/est/simpleenroll"],
        input=base64.b64encode(der), capture_output=True, timeout=DEADLINE, check=True,
    )  # fmt: skip
    body, _, status = result.stdout.rpartition(b"\n")
    return status.decode(), body


def test_a_joined_node_takes_requests_and_answers_for_the_shared_records(tmp_path: Path, pg_url: str) -> None:
    admin, node = tmp_path / "admin", tmp_path / "node"
    run_cli(admin, "--database", pg_url, "init", "--cn", "Shared CA", "--base-url", "http://127.0.0.1:1", check=True)
    run_cli(admin, "server-setup", check=True)
    run_cli(node, "join", pg_url, check=True)
    # The node's service certificates are issued on the admin host (it holds the CA key).
    shutil.copytree(admin / "server", node / "server")
    assert not list((node / "ca").glob("*.key"))
    https, http = _free_port(), _free_port()
    server = subprocess.Popen([*TUI_CA, "--home", str(node), "serve", "--port", str(https), "--http-port", str(http)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        _wait_for_port(https, server)
        _wait_for_port(http, server)
        der = csr_der(make_csr(cn="node-device"))
        assert _enroll(https, der)[0] == "202"
        listed = run_cli(admin, "list", "--json", check=True).stdout
        assert b"node-device" in listed
        [device] = [r["id"] for r in json.loads(listed) if r["requester"] == "node-device"]
        run_cli(admin, "approve", str(device), check=True)
        status, body = _enroll(https, der)
        assert status == "200" and body
        run_cli(admin, "revoke", str(device), "--reason", "keyCompromise", check=True)
        crl = subprocess.run(["curl", "-sf", f"http://127.0.0.1:{http}/ca.crl"], capture_output=True,
                             timeout=DEADLINE, check=True).stdout  # fmt: skip
        assert crl == run_cli(admin, "crl", "--der", check=True).stdout
        (tmp_path / "cert.pem").write_bytes(run_cli(admin, "export", str(device), check=True).stdout)
        (tmp_path / "ca.pem").write_bytes(run_cli(admin, "ca-cert", check=True).stdout)
        ocsp = subprocess.run(
            ["openssl", "ocsp", "-issuer", str(tmp_path / "ca.pem"), "-cert", str(tmp_path / "cert.pem"),
             "-url", f"http://127.0.0.1:{http}/ocsp", "-noverify"],
            capture_output=True, text=True, timeout=DEADLINE,
        )  # fmt: skip
        assert ": revoked" in ocsp.stdout and "keyCompromise" in ocsp.stdout, ocsp.stdout + ocsp.stderr
    finally:
        server.terminate()
        server.communicate(timeout=DEADLINE)

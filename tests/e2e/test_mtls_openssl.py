"""Mutual TLS with an EST-issued certificate: accepted, then refused once revoked (CRL from its CDP URL)."""

from __future__ import annotations

import socket
import subprocess
import time

from tests.server.live import curl_enroll, free_port, make_home, openssl_csr, pkcs7_to_pem, run, serve


def handshake(home, leaf, key, crl) -> subprocess.CompletedProcess:
    port = free_port()
    server = subprocess.Popen(
        ["openssl", "s_server", "-accept", str(port), "-cert", str(home.path / "server/tls.crt"),
         "-key", str(home.path / "server/tls.key"), "-Verify", "2", "-verify_return_error",
         "-CAfile", str(home.chain), "-crl_check", "-CRL", str(crl), "-CRLform", "DER", "-www"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and server.poll() is None, "s_server did not start"
                time.sleep(0.05)
        return subprocess.run(
            ["openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-cert", str(leaf), "-key", str(key),
             "-CAfile", str(home.chain), "-verify_return_error", "-quiet"],
            input=b"GET / HTTP/1.0\r\n\r\n", capture_output=True, timeout=20)  # fmt: skip
    finally:
        server.kill()
        server.wait()


def fetch_crl(home, leaf, out) -> None:
    text = run(["openssl", "x509", "-in", str(leaf), "-noout", "-ext", "crlDistributionPoints"]).stdout.decode()
    url = next(part.strip()[4:] for part in text.split() if part.startswith("URI:"))
    assert url == f"http://127.0.0.1:{home.http_port}/ca.crl"
    run(["curl", "-sS", "-f", "-o", str(out), url])


def test_s_server_accepts_then_refuses_once_revoked(tmp_path):
    home = make_home(tmp_path)
    with serve(home) as serving:
        key, csr = openssl_csr(tmp_path, "phone-mtls")
        curl_enroll(serving, home, csr, tmp_path / "q.txt")
        home.cli("approve", home.request_id(1))
        curl_enroll(serving, home, csr, tmp_path / "c.b64")
        leaf = tmp_path / "leaf.pem"
        pkcs7_to_pem(home, tmp_path / "c.b64", leaf)

        crl = tmp_path / "crl-1.der"
        fetch_crl(home, leaf, crl)
        accepted = handshake(home, leaf, key, crl)
        assert accepted.stdout.startswith(b"HTTP/1.0 200 ok"), accepted.stderr.decode()

        home.cli("revoke", home.request_id(1), "--reason", "keyCompromise")
        crl = tmp_path / "crl-2.der"
        fetch_crl(home, leaf, crl)
        refused = handshake(home, leaf, key, crl)
        assert not refused.stdout.startswith(b"HTTP/1.0 200")
        assert b"certificate revoked" in refused.stderr

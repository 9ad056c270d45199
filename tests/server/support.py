"""Helpers for server tests: CSRs, a client over real sockets, a server with changed options."""

from __future__ import annotations

import base64
import http.client
import socket
import ssl
from contextlib import contextmanager
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tui_ca.engine import CertificateAuthority
from tui_ca.server.main import Options, start


def make_csr(cn: str, key=None) -> tuple[bytes, object]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
        .sign(key, hashes.SHA256())
    )
    return csr.public_bytes(serialization.Encoding.DER), key


def b64(der: bytes) -> bytes:
    return base64.b64encode(der)


@dataclass
class Reply:
    status: int
    headers: dict
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


class Client:
    """Talks to a running server over real sockets (TLS for EST)."""

    def __init__(self, ca: CertificateAuthority, running) -> None:
        self.ca = ca
        self.running = running
        self.context = ssl.create_default_context(cadata=ca.ca_cert_pem(chain=True).decode())

    def est(self, method: str, op: str, body: bytes | None = None, headers: dict | None = None,
            context: ssl.SSLContext | None = None) -> Reply:  # fmt: skip
        conn = http.client.HTTPSConnection("127.0.0.1", self.running.https_port, context=context or self.context,
                                           timeout=20)  # fmt: skip
        return self._do(conn, method, f"/.well-known/est/{op}", body, headers)

    def plain(self, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> Reply:
        conn = http.client.HTTPConnection("127.0.0.1", self.running.http_port, timeout=20)
        return self._do(conn, method, path, body, headers)

    @staticmethod
    def _do(conn, method, path, body, headers) -> Reply:
        try:
            conn.request(method, path, body=body, headers=headers or {})
            response = conn.getresponse()
            return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
        finally:
            conn.close()

    def enroll(self, der: bytes, **kwargs) -> Reply:
        return self.est("POST", "simpleenroll", b64(der), {"Content-Type": "application/pkcs10"}, **kwargs)


def assert_plain_line(reply: Reply) -> None:
    """A refusal: plain text, one line, with a matching Content-Length."""
    assert reply.headers["content-type"].startswith("text/plain")
    assert int(reply.headers["content-length"]) == len(reply.body)
    assert reply.body.endswith(b"\n") and reply.body.count(b"\n") == 1
    assert b"Traceback" not in reply.body and b"<html" not in reply.body.lower()


@contextmanager
def serving(ca, users_path=None, **overrides):
    """A server with some options changed, and a client for it."""
    settings = {"host": "127.0.0.1", "port": 0, "http_port": 0, "quiet": True, "retry_after": 7, "rate": 0.0}
    running = start(ca, Options(**{**settings, **overrides}), users_path)
    try:
        yield Client(ca, running)
    finally:
        running.stop()


def enrolled(ca: CertificateAuthority, status=None) -> list:
    """The CA's requests that clients sent (server-setup's TLS, SCEP RA and OCSP certificates are on record too)."""
    return [request for request in ca.requests(status) if request.source != "server-setup"]


def exchange(client: Client, data: bytes, *, tls: bool, wait: float = 20) -> bytes:
    """Send bytes as they are; read until the server closes (a TLS close must be a clean close_notify)."""
    port = client.running.https_port if tls else client.running.http_port
    sock = socket.create_connection(("127.0.0.1", port), timeout=wait)
    if tls:
        sock = client.context.wrap_socket(sock, server_hostname="127.0.0.1", suppress_ragged_eofs=False)
    with sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):  # SSLEOFError here would mean no close_notify
            chunks.append(chunk)
    return b"".join(chunks)

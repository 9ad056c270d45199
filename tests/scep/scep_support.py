"""SCEP test helpers: a CA home with its RA, the SCEP routes on a real aiohttp server, and a small client.

The client builds pkiMessages with the same CMS code the server answers with,
so the hostile tests can break one thing at a time; the interoperability
tests use strongSwan's ``pki`` and certmonger instead.
"""

from __future__ import annotations

import asyncio
import base64
import http.client
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from aiohttp import web
from asn1crypto import cms
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs7
from cryptography.x509.oid import AttributeOID, NameOID

from tui_ca.engine import Actor, CertificateAuthority, NameFields
from tui_ca.engine.service_certs import setup_service_certs
from tui_ca.server.scep import messages as msg
from tui_ca.server.scep.routes import MAX_REQUEST_LINE, scep_routes
from tui_ca.server.scep.service import ScepService

_KEYS: list[rsa.RSAPrivateKey] = []


def rsa_key(slot: int | None = None) -> rsa.RSAPrivateKey:
    """RSA keys are slow to make; tests that do not care share a few."""
    if slot is None:
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    while len(_KEYS) <= slot:
        _KEYS.append(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    return _KEYS[slot]


def scep_ca(tmp_path: Path) -> CertificateAuthority:
    """A CA on the real clock with TLS, OCSP and SCEP RA certificates from server-setup."""
    authority = CertificateAuthority(tmp_path / "home", actor=Actor("alice", "192.0.2.10"))
    authority.init(NameFields(common_name="SCEP Test CA", organization="Example"), base_url="http://127.0.0.1:1")
    setup_service_certs(authority)
    return authority


@dataclass
class Served:
    """The SCEP routes on 127.0.0.1, in a loop of their own."""

    service: ScepService
    port: int
    loop: asyncio.AbstractEventLoop
    runner: web.AppRunner
    thread: threading.Thread

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/scep"

    @property
    def ra_cert(self) -> x509.Certificate:
        return self.service.ra.cert


@dataclass
class Remote:
    """SCEP served by another process: where, and its RA certificate."""

    port: int
    ra_cert: x509.Certificate


@contextmanager
def serving(service: ScepService):
    """Run ``scep_routes`` in a real ``aiohttp.web.AppRunner`` on a free port (the main server is elsewhere)."""
    loop = asyncio.new_event_loop()
    executor = ThreadPoolExecutor(max_workers=4)
    ready = threading.Event()
    box: dict = {}

    async def start() -> None:
        app = web.Application()
        app.add_routes(scep_routes(service, executor))
        runner = web.AppRunner(app, access_log=None, max_line_size=MAX_REQUEST_LINE)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        box["runner"] = runner
        box["port"] = site._server.sockets[0].getsockname()[1]

    def main() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(30), "the SCEP test server did not start"
    served = Served(service, box["port"], loop, box["runner"], thread)
    try:
        yield served
    finally:
        asyncio.run_coroutine_threadsafe(box["runner"].cleanup(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)
        executor.shutdown()


@dataclass
class Answer:
    status: int
    content_type: str
    body: bytes


def http_get(port: int, path: str) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return Answer(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        conn.close()


def http_post(port: int, path: str, body: bytes, headers: dict | None = None) -> Answer:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers={"Content-Type": "application/x-pki-message", **(headers or {})})
        response = conn.getresponse()
        return Answer(response.status, response.getheader("Content-Type", ""), response.read())
    finally:
        conn.close()


def self_signed(key: rsa.RSAPrivateKey, cn: str) -> x509.Certificate:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - timedelta(minutes=5))
        .not_valid_after(now + timedelta(days=1)).sign(key, hashes.SHA256())
    )  # fmt: skip


def csr_der(key, cn: str, challenge: str | None = None) -> bytes:
    builder = x509.CertificateSigningRequestBuilder().subject_name(
        x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    )
    if challenge is not None:
        builder = builder.add_attribute(AttributeOID.CHALLENGE_PASSWORD, challenge.encode())
    return builder.sign(key, hashes.SHA256()).public_bytes(serialization.Encoding.DER)


@dataclass(frozen=True)
class Reply:
    """A CertRep, verified and opened by the client."""

    status: str
    fail_info: str | None
    transaction_id: str
    recipient_nonce: bytes
    certs: list[x509.Certificate] = field(default_factory=list)
    crl: bytes | None = None


@dataclass
class ScepClient:
    """One requester: a key, the certificate it signs with, and a transaction."""

    served: Served | Remote
    ra: x509.Certificate
    key: rsa.RSAPrivateKey
    cert: x509.Certificate
    transaction_id: str
    cipher: str = "aes128_cbc"
    last_nonce: bytes = b""

    @classmethod
    def new(cls, served: Served | Remote, cn: str, *, key=None, transaction_id: str | None = None) -> ScepClient:
        key = key or rsa_key()
        ra = served.ra_cert
        return cls(served, ra, key, self_signed(key, cn), transaction_id or msg.spki_sha256(self_signed(key, cn)))

    def message(self, kind: msg.MessageType, content: bytes, *, recipient: x509.Certificate | None = None,
                nonce: bytes | None = None) -> bytes:  # fmt: skip
        self.last_nonce = nonce or msg.new_nonce()
        envelope = msg.envelope(content, recipient or self.ra, self.cipher)
        attributes = {"scep_message_type": kind.value, "scep_transaction_id": self.transaction_id,
                      "scep_sender_nonce": self.last_nonce}  # fmt: skip
        return msg.sign_pki_message(envelope, attributes, self.cert, self.key)

    def send(self, der: bytes, *, get: bool = False) -> Answer:
        if get:
            query = quote(base64.b64encode(der).decode(), safe="")
            return http_get(self.served.port, f"/scep?operation=PKIOperation&message={query}")
        return http_post(self.served.port, "/scep?operation=PKIOperation", der)

    def ask(self, kind: msg.MessageType, content: bytes, **kwargs) -> Reply:
        answer = self.send(self.message(kind, content, **kwargs))
        assert answer.status == 200, answer.body
        assert answer.content_type == "application/x-pki-message"
        return self.open(answer.body)

    def open(self, der: bytes) -> Reply:
        """Verify a CertRep against the RA certificate and decrypt what it carries."""
        signed, signer, header = msg.read_header(der)
        assert header.message_type == msg.MessageType.CERT_REP.value
        ra = msg._signer_certificate(signed, signer, header)
        assert ra == self.ra, "the CertRep is not signed by the RA"
        msg._verify_signature(signer, ra, header)
        attrs = signer["signed_attrs"]
        status = msg._attribute(attrs, "scep_pki_status")
        reply = Reply(status, msg._attribute(attrs, "scep_fail_info"), header.transaction_id,
                      msg._attribute(attrs, "scep_recipient_nonce"))  # fmt: skip
        assert reply.recipient_nonce == self.last_nonce
        assert reply.transaction_id == self.transaction_id
        if status != msg.PkiStatus.SUCCESS:
            assert signed["encap_content_info"]["content"].native == b""
            return reply
        inner = pkcs7.pkcs7_decrypt_der(signed["encap_content_info"]["content"].native, self.cert, self.key, [])
        degenerate = cms.ContentInfo.load(inner)["content"]
        certs = [x509.load_der_x509_certificate(c.chosen.dump()) for c in degenerate["certificates"] or []]
        crls = [c.chosen.dump() for c in degenerate["crls"] or []]
        return Reply(status, None, reply.transaction_id, reply.recipient_nonce, certs, crls[0] if crls else None)

    def enroll(self, cn: str | None = None, *, csr: bytes | None = None) -> Reply:
        return self.ask(
            msg.MessageType.PKCS_REQ, csr or csr_der(self.key, cn or self.cert.subject.rfc4514_string()[3:])
        )

    def poll(self, ca: CertificateAuthority) -> Reply:
        content = msg.issuer_and_subject_der(ca.issuing_cert().subject, self.cert.subject)
        return self.ask(msg.MessageType.CERT_POLL, content)


def scep_requests(ca: CertificateAuthority) -> list:
    """The CA's requests that did not come from server-setup (its TLS and OCSP certificates are on record too)."""
    return [request for request in ca.requests() if request.source != "server-setup"]

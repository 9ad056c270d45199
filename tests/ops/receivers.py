"""Real receivers on 127.0.0.1 for notification tests: an SMTP server with
STARTTLS and AUTH (aiosmtpd), an HTTP endpoint (http.server in a thread), and
a command that appends its stdin to a file. Plus waiting without sleeps."""

from __future__ import annotations

import ipaddress
import json
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from contextlib import closing
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from tests.helpers import csr_pem
from tui_ca.engine import CertificateAuthority

DEADLINE = 30.0


def wait_for(condition: Callable[[], object], what: str, deadline: float = DEADLINE) -> object:
    """Poll ``condition`` until truthy (generous deadline, no fixed sleep)."""
    end = time.monotonic() + deadline
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def server_tls_files(ca: CertificateAuthority, folder: Path) -> tuple[Path, Path, Path]:
    """(cert chain, key, root) for a server on 127.0.0.1, issued by the test CA."""
    key = ec.generate_private_key(ec.SECP256R1())
    csr = (
        x509.CertificateSigningRequestBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")]))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .sign(key, hashes.SHA256())
    )
    request = ca.submit(csr_pem(csr), requester="smtp-test-server").request
    [outcome] = ca.approve([request.id])
    assert outcome.certificate is not None
    folder.mkdir(parents=True, exist_ok=True)
    chain, key_file, root = folder / "smtp.crt", folder / "smtp.key", folder / "root.crt"
    chain.write_bytes(ca.certificate_pem(request.id, chain=True))
    key_file.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))  # fmt: skip
    root.write_bytes(ca.ca_cert_pem(chain=True))
    return chain, key_file, root


class _MailBox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's hook name
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content))
        return "250 OK"


class SmtpServer:
    """aiosmtpd on 127.0.0.1 requiring STARTTLS before AUTH and mail."""

    def __init__(self, cert: Path, key: Path, user: str = "notifier", password: str = "s3cret pass") -> None:
        self.port = free_port()
        self.user, self.password = user, password
        self.box = _MailBox()
        self.logins: list[str] = []
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)

        def authenticate(server, session, envelope, mechanism, auth_data):
            ok = isinstance(auth_data, LoginPassword) and auth_data.login.decode() == self.user \
                and auth_data.password.decode() == self.password  # fmt: skip
            self.logins.append(auth_data.login.decode() if isinstance(auth_data, LoginPassword) else "?")
            return AuthResult(success=ok, handled=False)

        self._context, self._authenticate = context, authenticate
        self.controller: Controller | None = None

    def start(self) -> SmtpServer:
        """Listen (again: a stopped aiosmtpd Controller cannot restart, so each start makes one)."""
        self.controller = Controller(
            self.box, hostname="127.0.0.1", port=self.port, tls_context=self._context, require_starttls=True,
            authenticator=self._authenticate, auth_required=True, auth_require_tls=True,
        )  # fmt: skip
        self.controller.start()
        return self

    def stop(self) -> None:
        if self.controller is not None:
            self.controller.stop()
            self.controller = None

    @property
    def messages(self) -> list[tuple[str, list[str], bytes]]:
        return self.box.messages


class HttpReceiver:
    """Records JSON POSTs; answers ``status`` (settable, to make deliveries fail)."""

    def __init__(self) -> None:
        self.bodies: list[dict] = []
        self.headers: list[dict] = []
        self.gets: list[str] = []
        self.status = 204
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's hook name
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                if receiver.status < 300:
                    receiver.bodies.append(json.loads(body))
                    receiver.headers.append(dict(self.headers))
                self.send_response(receiver.status)
                if 300 <= receiver.status < 400:
                    self.send_header("Location", receiver.url + "/moved")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def do_GET(self) -> None:  # noqa: N802 - a followed redirect would arrive here
                receiver.gets.append(self.path)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> HttpReceiver:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def stdin_to_file_argv(path: Path) -> list[str]:
    """A command that appends its stdin (the event) to ``path``, one event a line."""
    script = "import sys; data = sys.stdin.buffer.read(); open(sys.argv[1], 'ab').write(data)"
    return [sys.executable, "-c", script, str(path)]


def events_in(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

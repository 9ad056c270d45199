"""``tui-ca serve``: start the EST (HTTPS) and status (HTTP) listeners.

The process reads only what ``server-setup`` prepared under ``server/`` plus
the store; it never opens the CA's keys (DESIGN §6). As defence in depth the
command installs an audit hook that refuses to open them at all.
"""

from __future__ import annotations

import os
import signal
import ssl
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from tui_ca.engine.errors import CAError, InputError, RuleError
from tui_ca.engine.ocsp import OcspResponder
from tui_ca.engine.reader import ISSUING_KEY, ROOT_KEY
from tui_ca.engine.service_certs import OCSP_CERT, OCSP_KEY, TLS_CERT, TLS_KEY
from tui_ca.server import http
from tui_ca.server.est import EstHandler
from tui_ca.server.limits import RateLimiter
from tui_ca.server.status import StatusHandler, status_paths
from tui_ca.server.users import Users, load_users

# What an EST client is told to wait before polling again. A person has to
# approve, so polling faster than this only costs both sides.
DEFAULT_RETRY_AFTER = 60


@dataclass(frozen=True)
class Options:
    """How the listeners behave (the ``serve`` flags)."""

    host: str = "127.0.0.1"
    """Address both listeners bind."""
    port: int = 8443
    """HTTPS port for EST (0: any free port)."""
    http_port: int = 8080
    """HTTP port for the CRL, CA certificates and OCSP (0: any free port)."""
    anonymous: bool = True
    """Whether EST enrollment without credentials is allowed."""
    rate: float = 1.0
    """New requests per client address per second (0: no limit)."""
    max_queued: int = 1000
    """Refuse new requests while this many wait."""
    timeout: float = http.DEFAULT_TIMEOUT
    """Seconds a client may take to send a request."""
    max_connections: int = http.DEFAULT_MAX_CONNECTIONS
    """Concurrent connections per listener before 503."""
    max_per_address: int = http.DEFAULT_MAX_PER_ADDRESS
    """Concurrent connections per listener from one client address before 503."""
    retry_after: int = DEFAULT_RETRY_AFTER
    """Retry-After for a queued request, in seconds."""
    housekeeping_every: float = 3600.0
    """Seconds between expiries of stale queued requests (run at start too)."""
    quiet: bool = False
    """No access log on stderr."""


@dataclass
class App:
    """What the handlers share."""

    ca: object
    reader: object
    options: Options
    users: Users | None
    limiter: RateLimiter
    responder: FreshResponder
    status_paths: dict[str, str]


def _server_file(home: Path, relpath: str, *, private: bool = False) -> bytes:
    path = home / relpath
    if not path.exists():
        raise RuleError(f"{path} is missing: run 'tui-ca server-setup' as the CA admin first")
    if private and os.stat(path).st_mode & 0o077:
        raise RuleError(f"refusing to use {path}: other users can read it; run chmod 600 on it")
    return path.read_bytes()


class FreshResponder:
    """The OCSP responder, re-read when cron's ``server-setup --ocsp-only`` renews the signer.

    The signer lives only days (it cannot be revoked), so picking up the new
    one without a restart keeps answers valid across renewals.
    """

    def __init__(self, ca) -> None:
        self._ca = ca
        self._lock = threading.Lock()
        self._stamp: tuple | None = None
        self._responder: OcspResponder | None = None
        self._load()

    def _load(self) -> None:
        home = self._ca.home
        try:
            stamp = tuple(
                (os.stat(home / rel).st_ino, os.stat(home / rel).st_mtime_ns) for rel in (OCSP_CERT, OCSP_KEY)
            )
        except FileNotFoundError:
            stamp = None
        if stamp is not None and stamp == self._stamp:
            return
        cert = x509.load_pem_x509_certificate(_server_file(home, OCSP_CERT))
        key = load_pem_private_key(_server_file(home, OCSP_KEY, private=True), None)
        if cert.public_key().public_numbers() != key.public_key().public_numbers():
            return  # caught between the two renames; the next request sees both
        self._responder, self._stamp = OcspResponder(self._ca, cert, key), stamp

    def respond(self, der: bytes) -> tuple[bytes, str]:
        with self._lock:
            try:
                self._load()
            except (OSError, ValueError, RuleError):
                pass  # keep answering with the signer already loaded
            responder = self._responder
        return responder.respond(der)


def build_app(ca, options: Options, users_path: Path | None = None) -> App:
    """Everything the listeners need, from the home; refuses with one line if setup is missing."""
    ca.require_ca()
    responder = FreshResponder(ca)
    if options.max_queued < 0 or options.rate < 0 or options.timeout <= 0:
        raise InputError("--max-queued and --rate must not be negative")
    if options.max_per_address < 1:
        raise InputError("--max-per-address must be at least 1")
    users = Users(load_users(users_path)) if users_path is not None else None
    if not options.anonymous and users is None:
        raise InputError("--no-anonymous needs --users FILE (EST users), or clients could only re-enroll")
    return App(ca=ca, reader=ca, options=options, users=users, limiter=RateLimiter(options.rate),
               responder=responder,
               status_paths=status_paths(ca.config().get("base_url")))  # fmt: skip


def tls_context(ca) -> ssl.SSLContext:
    """Server certificate from setup; client certificates (for re-enrollment) checked against this CA."""
    home = ca.home
    _server_file(home, TLS_CERT)
    _server_file(home, TLS_KEY, private=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(home / TLS_CERT, home / TLS_KEY)
    context.load_verify_locations(cadata=ca.ca_cert_pem(chain=True).decode())
    context.verify_mode = ssl.CERT_OPTIONAL
    return context


class Running:
    """Both listeners, serving in background threads until ``stop()``."""

    def __init__(self, app: App) -> None:
        opts = app.options
        self.app = app
        self.est = http.Server((opts.host, opts.port), EstHandler, opts, app, tls=tls_context(app.ca))
        try:
            self.status = http.Server((opts.host, opts.http_port), StatusHandler, opts, app)
        except OSError:
            self.est.server_close()
            raise
        self._threads = [threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
                         for s in (self.est, self.status)]  # fmt: skip
        self._stopping = threading.Event()
        self._threads.append(threading.Thread(target=self._housekeeping, daemon=True))
        for thread in self._threads:
            thread.start()

    def _housekeeping(self) -> None:
        """Expire requests that waited past the CA's queue age, so the queue never
        grows forever even where no admin set up cron (needs no CA key)."""
        while True:
            try:
                expired = self.app.ca.expire_queue()
            except CAError as exc:
                print(f"tui-ca serve: queue expiry: {exc}", file=sys.stderr, flush=True)
            else:
                if expired:
                    print(f"tui-ca serve: expired queued request(s) {', '.join(map(str, expired))}",
                          file=sys.stderr, flush=True)  # fmt: skip
            if self._stopping.wait(self.app.options.housekeeping_every):
                return

    @property
    def https_port(self) -> int:
        return self.est.server_address[1]

    @property
    def http_port(self) -> int:
        return self.status.server_address[1]

    def stop(self) -> None:
        self._stopping.set()
        for server in (self.est, self.status):
            server.shutdown()
            server.server_close()


def start(ca, options: Options, users_path: Path | None = None) -> Running:
    return Running(build_app(ca, options, users_path))


def guard_ca_keys(home: Path) -> None:
    """Refuse, process-wide and for good, any open() of the CA's private keys."""
    forbidden = {os.path.abspath(home / ISSUING_KEY), os.path.abspath(home / ROOT_KEY)}

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if os.path.abspath(path) in forbidden:
                raise PermissionError(f"the network server must not open the CA key {path}")

    sys.addaudithook(hook)


def serve(ca, args) -> int:
    """The ``serve`` command; returns when SIGTERM or SIGINT arrives."""
    options = Options(host=args.host, port=args.port, http_port=args.http_port, anonymous=not args.no_anonymous,
                      rate=args.rate, max_queued=args.max_queued,
                      max_per_address=getattr(args, "max_per_address", http.DEFAULT_MAX_PER_ADDRESS),
                      timeout=getattr(args, "timeout", None) or http.DEFAULT_TIMEOUT,
                      retry_after=getattr(args, "retry_after", None) or DEFAULT_RETRY_AFTER)  # fmt: skip
    guard_ca_keys(ca.home)
    app = build_app(ca, options, args.users)
    try:
        running = Running(app)
    except OSError as exc:
        raise InputError(f"cannot listen on {options.host}: {exc.strerror or exc}") from None
    host = f"[{options.host}]" if ":" in options.host else options.host
    print(f"EST on https://{host}:{running.https_port}/.well-known/est/", flush=True)
    print(f"CRL, CA certificates and OCSP on http://{host}:{running.http_port}/", flush=True)
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(0.5):
        pass
    running.stop()
    print("stopped", file=sys.stderr, flush=True)
    return 0

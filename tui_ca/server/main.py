"""``tui-ca serve``: the EST (HTTPS) and status (HTTP) listeners, on aiohttp.

The process reads only what ``server-setup`` prepared under ``server/`` plus
the store; it never opens the CA's keys (DESIGN §6). As defence in depth the
command installs an audit hook that refuses to open them at all.

Structure: ``prepare()`` checks the home and options and makes the shared
``Context``; ``build_app(context, est_routes=..., status_routes=...)`` returns
the two ``aiohttp.web.Application`` objects (HTTPS, HTTP). Another protocol
plugs in through those hooks: pass ``aiohttp.web.RouteTableDef`` (or any
iterable of ``RouteDef``) tables, e.g. a SCEP face adding ``/scep`` and
``/cgi-bin/pkiclient.exe`` to the plain-HTTP app (``status_routes``; SCEP
protects its own messages, and its clients speak http://), or to the HTTPS app
(``est_routes``). ``start(ca, options, est_routes=..., status_routes=...)``
passes them through. Its handlers find the shared context as
``request.app[CONTEXT]`` (``tui_ca.server.context``), call blocking engine
code with ``await context.run(...)``, read bodies with
``http.read_body(request, request[http.DEADLINE])``, raise ``http.HttpError``
for a one-line refusal, set ``request[http.REQUESTER]``/``request[http.REASON]``
for the access log, and get the same smuggling checks, deadlines and
connection caps as EST. ``Running`` serves both
apps on an event loop in a thread (``serve`` and the tests use it).
"""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
import sys
import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from tui_ca.engine.errors import CAError, InputError, RuleError
from tui_ca.engine.home import OCSP_CERT, OCSP_KEY, SCEP_RA_CERT, SCEP_RA_KEY, TLS_CERT, TLS_KEY
from tui_ca.engine.models import RequestStatus
from tui_ca.engine.reader import ISSUING_KEY, ROOT_KEY
from tui_ca.engine.sharing import Sharing
from tui_ca.server import http, status
from tui_ca.server.context import CONTEXT, Context, LoginGuard
from tui_ca.server.limits import RateLimiter
from tui_ca.server.listener import Listener, unbracketed
from tui_ca.server.paths import EST_PREFIX, SCEP_PATHS

# Only what the first CRL answer needs is imported above. EST's CSR checks, the
# engine's writer, OCSP's signing (all on cryptography) and SCEP are loaded by
# the first request that needs them, in the executor.
EST_MODULE = "tui_ca.server.est"

# What an EST client is told to wait before polling again. A person has to
# approve, so polling faster than this only costs both sides.
DEFAULT_RETRY_AFTER = 60
# Blocking engine work (store reads, commits, scrypt) shares this many threads.
DEFAULT_WORKERS = 8
# Failed logins: a few at once, then one per LOGIN_INTERVAL seconds per address and per user.
LOGIN_BURST, LOGIN_INTERVAL = 5, 10.0


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
    """Seconds a client may take to send a whole request; also how long an idle connection is kept."""
    max_connections: int = http.DEFAULT_MAX_CONNECTIONS
    """Concurrent connections per listener; past it the longest-waiting idle one is closed, or 503."""
    max_per_address: int = http.DEFAULT_MAX_PER_ADDRESS
    """Concurrent connections per listener from one client address before 503."""
    retry_after: int = DEFAULT_RETRY_AFTER
    """Retry-After for a queued request, in seconds."""
    login_interval: float = LOGIN_INTERVAL
    """Seconds for one more failed HTTP Basic login to be allowed, per address and per user, after the burst."""
    housekeeping_every: float = 3600.0
    """Seconds between expiries of stale queued requests (run at start too)."""
    quiet: bool = False
    """No access log on stderr."""
    trust_proxy: tuple[str, ...] = ()
    """Addresses of reverse proxies whose X-Forwarded-For names the client (none by default)."""
    workers: int = DEFAULT_WORKERS
    """Threads for blocking engine calls."""


def _server_file(home: Path, relpath: str, *, private: bool = False) -> bytes:
    path = home / relpath
    if not path.exists():
        raise RuleError(f"{path} is missing: run 'tui-ca server-setup' as the CA admin first")
    if private:
        Sharing.of(home).check(path)  # group access only for a shared home's admin group
    return path.read_bytes()


def prepare(ca, options: Options, users_path: Path | None = None) -> Context:
    """Everything the listeners share, from the home; refuses with one line if setup is missing.

    ``ca`` is a ``CAReader`` (what ``serve`` opens) or a ``CertificateAuthority``.
    """
    ca.require_ca()
    # The OCSP responder loads its signer with the first OCSP request; that it is there is checked now.
    _server_file(ca.home, OCSP_CERT)
    _server_file(ca.home, OCSP_KEY, private=True)
    if options.max_queued < 0 or options.rate < 0 or options.timeout <= 0:
        raise InputError("--max-queued and --rate must not be negative")
    if options.max_per_address < 1:
        raise InputError("--max-per-address must be at least 1")
    if options.max_connections < 1 or options.workers < 1:
        raise InputError("--max-connections and --workers must be at least 1")
    try:
        peer_of = http.PeerAddress(options.trust_proxy)
    except ValueError:
        raise InputError("--trust-proxy takes IP addresses") from None
    users = None
    if users_path is not None:
        from tui_ca.server.users import Users, load_user_file

        users = Users(*load_user_file(users_path, Sharing.of(ca.home)))
    if not options.anonymous and users is None:
        raise InputError("--no-anonymous needs --users FILE (EST users), or clients could only re-enroll")
    context = Context(reader=ca, options=options, users=users, limiter=RateLimiter(options.rate),
                      status_paths=status.status_paths(ca.config().get("base_url")),
                      executor=ThreadPoolExecutor(options.workers, thread_name_prefix="tui-ca-engine"),
                      peer_of=peer_of, log=http.access_logger(options.quiet))  # fmt: skip
    context.logins = LoginGuard(users, RateLimiter(1 / options.login_interval, LOGIN_BURST),
                                RateLimiter(1 / options.login_interval, 2 * LOGIN_BURST))  # fmt: skip
    return context


def _app(context: Context, routes: Iterable[Iterable[web.AbstractRouteDef]], hint: str) -> web.Application:
    log = context.log
    app = web.Application(middlewares=[http.error_middleware(context.peer_of, context.options.timeout,
                                                             lambda line: http.event(log, event=line))],
                          client_max_size=http.MAX_BODY)  # fmt: skip
    app[CONTEXT] = context
    app[http.NOT_FOUND_HINT] = hint
    app[http.RESPONSE_OBSERVERS] = context.response_observers
    app.on_response_prepare.append(http.name_server)
    for table in routes:
        app.add_routes(table)
    return app


def build_app(context: Context, *, est_routes: Iterable[Iterable[web.AbstractRouteDef]] = (),
              status_routes: Iterable[Iterable[web.AbstractRouteDef]] = ()) -> tuple[web.Application, web.Application]:  # fmt: skip
    """The HTTPS (EST) and HTTP (CRL, CA certificates, OCSP) applications, plus any extra route tables."""
    est_table = web.RouteTableDef()
    est_table.route("*", EST_PREFIX + "{tail:.*}")(_est)
    https = _app(context, [est_table, *est_routes], "")
    paths = context.status_paths
    plain_app = _app(context, [status.routes(paths), *status_routes], ", ".join(sorted(paths.values())))
    return https, plain_app


async def _est(request: web.Request) -> web.StreamResponse:
    """EST, with its module and the engine's writer loaded by the first EST request."""
    est = await request.app[CONTEXT].module(EST_MODULE, writer=True)
    return await est.handle(request)


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
    """Both listeners, serving on an event loop in a background thread until ``stop()``."""

    def __init__(self, context: Context, *, est_routes: Iterable[Iterable[web.AbstractRouteDef]] = (),
                 status_routes: Iterable[Iterable[web.AbstractRouteDef]] = ()) -> None:  # fmt: skip
        self.context = context
        self._tls = tls_context(context.reader)
        self._apps = build_app(context, est_routes=est_routes, status_routes=status_routes)
        self._loop = asyncio.new_event_loop()
        self._started = threading.Event()
        self._failure: BaseException | None = None
        self._runners: list[web.AppRunner] = []
        self._listeners: list[Listener] = []
        self._thread = threading.Thread(target=self._serve, name="tui-ca-serve", daemon=True)
        self._thread.start()
        self._started.wait()
        if self._failure is not None:
            self._thread.join()
            raise self._failure

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - handed to the starting thread
            self._failure = exc
            self._loop.run_until_complete(self._close())
            self._loop.close()
            self._started.set()
            return
        self._started.set()
        self._loop.run_forever()
        self._loop.close()

    async def _start(self) -> None:
        opts = self.context.options
        log = self.context.log
        exempt = self.context.peer_of.trusted
        for app, port, tls in ((self._apps[0], opts.port, self._tls), (self._apps[1], opts.http_port, None)):
            runner = http.Runner(app, access_log_class=http.AccessLog, access_log=log, keepalive_timeout=opts.timeout,
                                 lingering_time=2.0, shutdown_timeout=5.0)  # fmt: skip
            await runner.setup()
            self._runners.append(runner)
            assert isinstance(runner.server, http.Server)
            listener = Listener(runner.server, opts.host, port, tls=tls, timeout=opts.timeout,
                                max_connections=opts.max_connections, max_per_address=opts.max_per_address,
                                exempt=exempt, log=log)  # fmt: skip
            self._listeners.append(listener)
        # Before any request is answered, so none is decided on a request that should have expired.
        await self._expire(at_start=True)
        for listener in self._listeners:
            listener.start()
        self._housekeeping = self._loop.create_task(self._expire_forever())

    async def _expire(self, *, at_start: bool = False) -> None:
        ctx = self.context
        try:
            expired = await ctx.run(expire_stale, ctx, at_start=at_start)
        except (CAError, OSError) as exc:
            print(f"tui-ca serve: queue expiry: {exc}", file=sys.stderr, flush=True)
        else:
            if expired:
                print(f"tui-ca serve: expired queued request(s) {', '.join(map(str, expired))}",
                      file=sys.stderr, flush=True)  # fmt: skip

    async def _expire_forever(self) -> None:
        """Expire requests that waited past the CA's queue age, so the queue never
        grows forever even where no admin set up cron (needs no CA key)."""
        while True:
            await asyncio.sleep(self.context.options.housekeeping_every)
            await self._expire()

    async def _close(self) -> None:
        task = getattr(self, "_housekeeping", None)
        if task is not None:
            task.cancel()
        for listener in self._listeners:
            await listener.stop()
        for runner in self._runners:
            await runner.cleanup()

    @property
    def https_port(self) -> int:
        return self._listeners[0].port

    @property
    def http_port(self) -> int:
        return self._listeners[1].port

    def stop(self) -> None:
        if not self._loop.is_closed() and self._loop.is_running():
            asyncio.run_coroutine_threadsafe(self._close(), self._loop).result(timeout=30)
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self.context.executor.shutdown(wait=True)


def expire_stale(ctx: Context, *, at_start: bool = False) -> list[int]:
    """The engine's queue expiry; at start only when a queued request is past the queue age.

    The look is the reader's (the queue only, never the whole store), so a
    start with nothing stale does not load the writer and its signing code.
    The engine's ``expire_queue`` decides; this only skips calling it.
    """
    reader = ctx.reader
    days = reader.config().get("queue_days")
    if at_start and days is not None:
        cutoff = reader.now() - timedelta(days=days)
        queued = reader.iter_request_dicts(RequestStatus.QUEUED)
        if not any(datetime.fromisoformat(doc["submitted_at"]) < cutoff for doc in queued):
            return []
    return ctx.ca.expire_queue()


def start(
    ca, options: Options, users_path: Path | None = None, **routes: Iterable[Iterable[web.AbstractRouteDef]]
) -> Running:
    return Running(prepare(ca, options, users_path), **routes)


def guard_ca_keys(home: Path) -> None:
    """Refuse, process-wide and for good, any open() of the CA's private keys."""
    forbidden = {os.path.abspath(home / ISSUING_KEY), os.path.abspath(home / ROOT_KEY)}

    def hook(event: str, args: tuple) -> None:
        if event == "open" and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = os.fsdecode(args[0])
            if os.path.abspath(path) in forbidden:
                raise PermissionError(f"the network server must not open the CA key {path}")

    sys.addaudithook(hook)


def _flag(args: object, name: str, default: int) -> int:
    value = getattr(args, name, None)
    return default if value is None else value


class LazyScep:
    """SCEP's routes, with its modules, RA key and state loaded by the first SCEP request rather than at start.

    A server that is never asked for SCEP never parses the RA's RSA key; one
    that is pays for it once, in the executor, and every request waits for it.
    A damaged RA or SCEP state is named in the answer (503) and the log, and
    looked at again by the next request, so repairing it needs no restart.
    """

    def __init__(self, context: Context) -> None:
        self._context = context
        self._handlers: dict[str, http.Handler] | None = None
        self._loading: asyncio.Lock | None = None

    def _build(self) -> dict[str, http.Handler]:
        from tui_ca.server.scep.routes import scep_routes
        from tui_ca.server.scep.service import ScepService

        ctx = self._context
        reserved = ctx.users.reserved if ctx.users is not None else None
        service = ScepService(ctx.ca, max_queued=ctx.options.max_queued, admit=ctx.limiter.take, reserved=reserved)
        return {route.method: route.handler for route in scep_routes(service, ctx.executor)}

    async def _load(self) -> dict[str, http.Handler]:
        if self._loading is None:
            self._loading = asyncio.Lock()
        async with self._loading:
            if self._handlers is None:
                self._handlers = await self._context.run(self._build)
        return self._handlers

    async def handle(self, request: web.Request) -> web.StreamResponse:
        try:
            handlers = await self._load()
        except (CAError, OSError) as exc:
            print(f"tui-ca serve: SCEP unavailable: {exc}", file=sys.stderr, flush=True)
            raise http.HttpError(503, f"SCEP is unavailable: {exc}") from None
        return await handlers[request.method](request)

    def routes(self) -> list[web.RouteDef]:
        table: list[web.RouteDef] = []
        for path in SCEP_PATHS:
            table += [web.get(path, self.handle, allow_head=False), web.post(path, self.handle)]
        return table


def _optional_routes(ca: Any, context: Context, args: object) -> tuple[list[Any], list[Any]]:
    """SCEP on both listeners when server-setup issued its RA; /metrics on HTTP with --metrics."""
    est_routes: list[Any] = []
    status_routes: list[Any] = []
    missing = [path for path in (ca.home / SCEP_RA_CERT, ca.home / SCEP_RA_KEY) if not path.exists()]
    if missing:
        print(f"tui-ca serve: SCEP off: {missing[0]} is missing: run 'tui-ca server-setup' as the CA admin first",
              file=sys.stderr, flush=True)  # fmt: skip
    else:
        scep = LazyScep(context)
        est_routes.append(scep.routes())
        status_routes.append(scep.routes())
    if getattr(args, "metrics", False):
        from tui_ca.server.metrics import Metrics, metrics_routes

        metrics = Metrics(ca)
        status_routes.append(metrics_routes(metrics.registry, context.executor))
        context.response_observers.append(metrics.observe_response)
    return est_routes, status_routes


def serve(ca, args) -> int:
    """The ``serve`` command; returns when SIGTERM or SIGINT arrives."""
    options = Options(host=unbracketed(args.host), port=args.port, http_port=args.http_port,
                      anonymous=not args.no_anonymous, rate=args.rate, max_queued=args.max_queued,
                      max_per_address=getattr(args, "max_per_address", http.DEFAULT_MAX_PER_ADDRESS),
                      max_connections=_flag(args, "max_connections", http.DEFAULT_MAX_CONNECTIONS),
                      timeout=getattr(args, "timeout", None) or http.DEFAULT_TIMEOUT,
                      retry_after=getattr(args, "retry_after", None) or DEFAULT_RETRY_AFTER,
                      trust_proxy=tuple(getattr(args, "trust_proxy", None) or ()),
                      workers=_flag(args, "workers", DEFAULT_WORKERS))  # fmt: skip
    guard_ca_keys(ca.home)
    context = prepare(ca, options, args.users)
    est_routes, status_routes = _optional_routes(ca, context, args)
    try:
        running = Running(context, est_routes=est_routes, status_routes=status_routes)
    except OSError as exc:
        raise InputError(f"cannot listen on {options.host}: {exc.strerror or exc}") from None
    # Before the addresses are printed: a supervisor that stops the server as soon as it reads them
    # gets a clean stop, not the default SIGTERM death.
    stopping = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stopping.set())
    host = f"[{options.host}]" if ":" in options.host else options.host
    print(f"EST on https://{host}:{running.https_port}/.well-known/est/", flush=True)
    print(f"CRL, CA certificates and OCSP on http://{host}:{running.http_port}/", flush=True)
    while not stopping.wait(0.5):
        pass
    running.stop()
    print("stopped", file=sys.stderr, flush=True)
    return 0

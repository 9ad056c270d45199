"""HTTP plumbing shared by both listeners, on aiohttp.

aiohttp parses HTTP/1.1, keeps connections alive and writes the answers;
what is ours is the shape of a refusal (one ``text/plain`` line with a
Content-Length, never an HTML page or a traceback), the refusal of request
shapes that smuggle a second request past a proxy, the peer address (a proxy
is trusted only when named), and one structured access-log line per request.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import json
import logging
import sys
import time as _time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from email.utils import format_datetime
from http import HTTPStatus
from typing import Any

import orjson
from aiohttp import HttpVersion11, hdrs, web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_protocol import RequestHandler

from tui_ca.engine.errors import CAError
from tui_ca.engine.store.protocol import StoreUnavailableError

MAX_BODY = 64 * 1024
# Above RFC 7030 tooling's patience for a CSR upload; a connection that has
# not delivered its whole request by then is closed.
DEFAULT_TIMEOUT = 10.0
# Idle and slow connections cost a few KiB each under asyncio, so the global
# cap is about file descriptors, not threads; the oldest waiting ones are
# closed to make room (see listener.py).
DEFAULT_MAX_CONNECTIONS = 1024
# One address may hold this many; enough for a NAT of a few devices polling at once.
DEFAULT_MAX_PER_ADDRESS = 16
NO_STORE = {"Cache-Control": "no-store"}
# Not aiohttp's default, which names the Python and library versions.
SERVER_NAME = "tui-ca"
_BODYLESS = (hdrs.METH_GET, hdrs.METH_HEAD, hdrs.METH_DELETE, hdrs.METH_OPTIONS, hdrs.METH_TRACE)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
NOT_FOUND_HINT = web.AppKey("not_found_hint", str)
# Called with (path, status, seconds) for every answer the access log writes (the /metrics counters).
RESPONSE_OBSERVERS = web.AppKey("response_observers", list)


async def name_server(request: web.Request, response: web.StreamResponse) -> None:
    response.headers[hdrs.SERVER] = SERVER_NAME


# What a request carries for the handlers and the access log.
PEER = web.RequestKey("peer", str)
DEADLINE = web.RequestKey("deadline", float)
REQUESTER = web.RequestKey("requester", str)
REASON = web.RequestKey("reason", str)
OUTCOME = web.RequestKey("outcome", str)
REQUEST_ID = web.RequestKey("request", int)
# The listener's response observers, set on every request it makes (Runner), refused ones included.
OBSERVERS = web.RequestKey("observers", list)
_LOGGED = (("requester", REQUESTER), ("reason", REASON), ("outcome", OUTCOME), ("request", REQUEST_ID))


class HttpError(Exception):
    """A refusal: status, one-line reason, extra headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None, *, close: bool = False,
                 detail: str | None = None):  # fmt: skip
        super().__init__(reason)
        self.status = status
        self.reason = reason
        # For the access log only: what the client must not be told (another requester's IDs).
        self.detail = detail
        self.headers = headers or {}
        self.close = close


def one_line(text: str, limit: int = 400) -> str:
    """Client- or requester-supplied text made safe for a one-line plain-text answer."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def plain(status: int, text: str, headers: dict[str, str] | None = None, *, close: bool = False) -> web.Response:
    """A one-line text answer; never cached."""
    response = web.Response(status=status, body=(one_line(text) + "\n").encode(), content_type="text/plain",
                            charset="utf-8", headers={**NO_STORE, "Server": SERVER_NAME, **(headers or {})})  # fmt: skip
    if close:
        response.force_close()
    return response


@functools.lru_cache(maxsize=1024)
def http_date(moment: datetime) -> str:
    # Kept answers and the CRL ask for the same few moments on every request.
    return format_datetime(moment.astimezone(UTC), usegmt=True)


def etag_matches(request: web.Request, etag: str) -> bool:
    """If-None-Match names this entity (weak comparison, RFC 9110 §13.1.2)."""
    header = request.headers.get(hdrs.IF_NONE_MATCH)
    if header is None:
        return False
    wanted = {tag.strip().removeprefix("W/") for tag in header.split(",")}
    return "*" in wanted or etag in wanted


def not_modified(request: web.Request, etag: str, last_modified: datetime | None) -> bool:
    """A conditional GET that the cached copy answers (If-None-Match wins over If-Modified-Since)."""
    if hdrs.IF_NONE_MATCH in request.headers:
        return etag_matches(request, etag)
    since = request.if_modified_since
    return since is not None and last_modified is not None and last_modified <= since


async def read_body(request: web.Request, deadline: float) -> bytes:
    """The request body, refused before reading when too large or unbounded; bounded by ``deadline`` (loop time)."""
    if request.headers.get(hdrs.TRANSFER_ENCODING) is not None:
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked", close=True)
    length = request.content_length
    if length is None:
        raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required", close=True)
    if length > MAX_BODY:
        # Not closed at once: aiohttp reads and drops the rest for a moment
        # (lingering), so the client is not reset before it sees the 413.
        raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is {length} bytes; the limit is {MAX_BODY}",
                        close=True)  # fmt: skip
    try:
        if request.content.is_eof():
            body = await request.read()  # all arrived with the head (most requests): no timer to set and cancel
        else:
            async with asyncio.timeout_at(deadline):
                body = await request.read()
    except TimeoutError:
        raise HttpError(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive in time; closing", close=True) from None
    if len(body) != length:
        raise HttpError(HTTPStatus.BAD_REQUEST, "the body ended before Content-Length bytes", close=True)
    return body


def refuse_smuggling(request: web.Request) -> None:
    """Framing that two parsers could read differently is refused, whatever aiohttp's parser made of it."""
    headers = request.headers
    lengths, codings = headers.getall(hdrs.CONTENT_LENGTH, []), headers.getall(hdrs.TRANSFER_ENCODING, [])
    if len(lengths) > 1 or any("," in value for value in lengths):
        raise HttpError(HTTPStatus.BAD_REQUEST, "more than one Content-Length", close=True)
    if lengths and codings:
        raise HttpError(HTTPStatus.BAD_REQUEST, "both Content-Length and Transfer-Encoding", close=True)
    if len(codings) > 1 or (codings and codings[0].strip().lower() != "chunked"):
        raise HttpError(HTTPStatus.BAD_REQUEST, "an unsupported Transfer-Encoding", close=True)
    if request.method in _BODYLESS and (codings or (lengths and lengths[0].strip() != "0")):
        raise HttpError(HTTPStatus.BAD_REQUEST, f"a {request.method} request carries no body", close=True)


def plain_address(address: str) -> str:
    """An IPv4-mapped IPv6 address (a dual-stack listener's IPv4 peer) as IPv4; any other as given.

    So one client has one address in the per-address limits, the log and the
    proxies named by --trust-proxy, whichever socket family it arrived on.
    """
    if not address.startswith("::ffff:"):
        return address
    try:
        mapped = ipaddress.ip_address(address)
    except ValueError:
        return address
    ipv4 = mapped.ipv4_mapped if isinstance(mapped, ipaddress.IPv6Address) else None
    return str(ipv4) if ipv4 is not None else address


class PeerAddress:
    """The client's address: the TCP peer, or what a named reverse proxy says in X-Forwarded-For."""

    def __init__(self, trusted: tuple[str, ...] = ()) -> None:
        self.trusted = frozenset(plain_address(str(ipaddress.ip_address(a))) for a in trusted)

    def __call__(self, request: web.Request) -> str:
        peer = plain_address(request.remote) if request.remote else "-"
        if peer not in self.trusted:
            return peer
        # The rightmost entry not added by a trusted proxy is the one a client cannot forge.
        hops = [h.strip() for v in request.headers.getall("X-Forwarded-For", []) for h in v.split(",")]
        for hop in reversed(hops):
            try:
                address = plain_address(str(ipaddress.ip_address(hop)))
            except ValueError:
                return peer
            if address not in self.trusted:
                return address
        return peer


def error_middleware(peer_of: PeerAddress, timeout: float, log: Callable[[str], None]) -> Any:
    """Every answer a handler does not give itself: refusals, router misses, store errors."""

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        request[PEER] = peer_of(request)
        protocol = request.protocol
        started = getattr(protocol, "head_started", None)
        if isinstance(protocol, Connection):
            protocol.head_started = None
        # Head and body together must arrive within --timeout of the first byte.
        request[DEADLINE] = (started or asyncio.get_running_loop().time()) + timeout
        try:
            refuse_smuggling(request)
            return await handler(request)
        except HttpError as exc:
            request[REASON] = exc.detail or exc.reason
            return plain(exc.status, exc.reason, exc.headers, close=exc.close)
        except web.HTTPMethodNotAllowed as exc:
            allow = ", ".join(sorted(exc.allowed_methods))
            request[REASON] = "method not allowed"
            return plain(HTTPStatus.METHOD_NOT_ALLOWED, f"{one_line(request.method, 20)} is not allowed here; use {allow}",
                         {"Allow": allow}, close=True)  # fmt: skip
        except web.HTTPNotFound:
            paths = request.app.get(NOT_FOUND_HINT, "")
            return plain(HTTPStatus.NOT_FOUND, "nothing here" + (f"; see {paths}" if paths else ""))
        except web.HTTPException as exc:
            return plain(exc.status, exc.reason, close=True)
        except StoreUnavailableError as exc:
            # The database is restarting or out of reach: nothing was stored, and the
            # store reconnects on a later request, so the client is told to come back.
            log(f"store unavailable: {one_line(str(exc), 300)}")
            request[REASON] = "store unavailable"
            return plain(HTTPStatus.SERVICE_UNAVAILABLE, "the CA store is unavailable; nothing was stored, try again",
                         {"Retry-After": "5"}, close=True)  # fmt: skip
        except (OSError, CAError) as exc:
            # Not the socket but the store (a missing file, a damaged shard):
            # the client still deserves its one line.
            log(f"store error: {type(exc).__name__}: {one_line(str(exc), 300)}")
            request[REASON] = "store error"
            return plain(
                HTTPStatus.INTERNAL_SERVER_ERROR, "the CA store could not be read; try again later", close=True
            )
        except (asyncio.CancelledError, ConnectionError):
            raise
        except Exception as exc:  # noqa: BLE001 - the client gets one line; the log gets the rest
            log(f"internal error: {type(exc).__name__}: {one_line(str(exc), 300)}")
            return plain(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the request was not processed", close=True)

    return middleware


class AccessLog(AbstractAccessLogger):
    """One JSON object per request on stderr; json.dumps escapes every control character."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        entry = {
            "time": _Clock.stamp(), "peer": request.get(PEER) or plain_address(request.remote or "-"),
            "method": request.method, "path": request.raw_path, "status": response.status, "bytes": response.body_length,
            "ms": round(time * 1000, 1),
        }  # fmt: skip
        for name, key in _LOGGED:
            value = request.get(key)
            if value is not None:
                entry[name] = value
        write_line(self.logger, json_line(entry))
        # Not ``request.app``: a request the parser refused has no route, and
        # aiohttp asserts on its app; its answer is counted all the same.
        for observe in request.get(OBSERVERS, ()):
            observe(request.path, response.status, time)


class _Clock:
    """The log lines' UTC time to the millisecond; the part down to the second is formatted once a second."""

    _second = -1
    _prefix = ""

    @classmethod
    def stamp(cls) -> str:
        now = _time.time()
        second = int(now)
        if second != cls._second:
            cls._prefix = _time.strftime("%Y-%m-%dT%H:%M:%S", _time.gmtime(second))
            cls._second = second
        return f"{cls._prefix}.{int((now - second) * 1000):03d}Z"


def event(log: logging.Logger, **fields: object) -> None:
    """A connection-level line (refusal, failed handshake) in the access log's format."""
    fields = {"time": _Clock.stamp(), **fields}
    write_line(log, json_line(fields))


def json_line(entry: dict[str, object]) -> str:
    """One JSON object in ASCII: every control character and non-ASCII character escaped.

    orjson (a fraction of the stdlib's cost) escapes control characters as JSON
    requires; a line with other non-ASCII text (or a lone surrogate, which
    orjson refuses) is encoded by the stdlib, which escapes those too.
    """
    try:
        line = orjson.dumps(entry).decode()
    except TypeError:
        return _ASCII_JSON(entry)
    return line if line.isascii() else _ASCII_JSON(entry)


_ASCII_JSON = json.JSONEncoder(ensure_ascii=True, separators=(",", ":")).encode


def write_line(log: logging.Logger, line: str) -> None:
    """One line to the access log.

    When the logger is the one ``access_logger`` made, the line goes straight
    to its stream: a LogRecord and the caller lookup cost a tenth of an OCSP
    answer's CPU. A logger given other handlers goes through logging as usual.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    handlers = log.handlers
    if len(handlers) == 1 and type(handlers[0]) is _Stderr and not log.filters and not handlers[0].filters:
        handlers[0].write(line)
    else:
        log.info(line)


def access_logger(quiet: bool) -> logging.Logger:
    logger = logging.getLogger("tui_ca.server.access")
    logger.propagate = False
    logger.setLevel(logging.CRITICAL if quiet else logging.INFO)
    if not logger.handlers:
        logger.addHandler(_Stderr())
    return logger


class _Stderr(logging.Handler):
    """Writes to whatever sys.stderr is at the time (a redirected or captured stream included)."""

    def emit(self, record: logging.LogRecord) -> None:
        self.write(record.getMessage())

    def write(self, line: str) -> None:
        # One write and flush per line: a line is on its way before the next request, and a crash loses none.
        try:
            sys.stderr.write(line + "\n")
            sys.stderr.flush()
        except (OSError, ValueError):
            pass


class Connection(RequestHandler):
    """aiohttp's connection protocol with our refusals for what its parser rejects."""

    on_lost: Callable[[Connection], None] | None = None
    head_started: float | None = None
    """Loop time of the first byte of the request now arriving (the request deadline counts from it)."""

    def data_received(self, data: bytes) -> None:
        if self.head_started is None and not self._request_in_progress:
            self.head_started = self._loop.time()
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        if self.on_lost is not None:
            self.on_lost(self)
            self.on_lost = None

    @property
    def waiting(self) -> bool:
        """Between requests or still receiving a head: safe to close without losing an answer."""
        return not self._request_in_progress and not self._messages

    def handle_error(self, request: web.BaseRequest, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:  # fmt: skip
        if request.writer.output_size > 0:
            raise ConnectionError("the answer was already on its way")
        if status == HTTPStatus.INTERNAL_SERVER_ERROR:
            text = "internal error; the request was not processed"
        else:
            text = f"malformed request: {(message or HTTPStatus(status).phrase).splitlines()[0]}"
        request[REASON] = one_line(text, 200)
        # aiohttp stands an HTTP/1.0 placeholder in for a request it could not
        # parse; the answer is still HTTP/1.1, like every other.
        request._version = HttpVersion11
        return plain(status, text, close=True)

    def log_exception(self, *args: Any, **kw: Any) -> None:
        exc = kw.get("exc_info")
        name = type(exc).__name__ if isinstance(exc, BaseException) else "error"
        self.logger.warning("%s: %s", one_line(str(args[0] if args else "error"), 200), name)


class Server(web.Server):
    """aiohttp's protocol factory, making our Connection."""

    def __call__(self) -> Connection:
        return Connection(self, loop=self._loop, **self._kwargs)


class Runner(web.AppRunner):
    """An AppRunner whose protocol factory is our Server; the listener accepts itself (listener.py)."""

    async def _make_server(self) -> Server:
        made = await super()._make_server()
        make_request, observers = made.request_factory, self.app.get(RESPONSE_OBSERVERS, [])

        def observed(*args: Any) -> web.BaseRequest:
            # Every request, the ones the parser refused included (handle_error),
            # carries the observers, so the access log reaches them without the app.
            request = make_request(*args)
            request[OBSERVERS] = observers
            return request

        return Server(made.request_handler, request_factory=observed, handler_cancellation=made.handler_cancellation,
                      loop=asyncio.get_running_loop(), **made._kwargs)  # fmt: skip

"""HTTP/1.1 plumbing shared by the EST and the status listeners.

Built on ``http.server`` with one thread per connection, so a slow client only
ever holds its own thread. What the standard classes lack is added here:
every refusal is a one-line ``text/plain`` body with a Content-Length (never
the stock HTML error page, never a traceback); bodies are size- and
time-limited; the TLS handshake runs in the connection's thread rather than
the accepting one; and the number of connections is capped, past which a
client gets 503 instead of a thread.
"""

from __future__ import annotations

import socket
import ssl
import sys
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tui_ca.engine.store import StoreDamagedError, StoreUnavailableError

MAX_BODY = 64 * 1024
# Above RFC 7030 tooling's patience for a CSR upload, below what a thread
# held by a stalled client should cost.
DEFAULT_TIMEOUT = 10.0
DEFAULT_MAX_CONNECTIONS = 128
# One address may hold this many of the slots; without it a single client
# could take all of them for up to --timeout seconds. Enough for a NAT of a
# few devices polling at once.
DEFAULT_MAX_PER_ADDRESS = 16
# Refusing past the cap still takes a thread for a moment (TLS needs a
# handshake before a 503 can be read); these are capped too, then dropped.
_MAX_REFUSERS = 32
_REFUSE_TIMEOUT = 2.0
_DRAIN_LIMIT = 1024 * 1024


class HttpError(Exception):
    """A refusal: status, one-line reason, extra headers."""

    def __init__(self, status: int, reason: str, headers: dict[str, str] | None = None, *, close: bool = False):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or {}
        self.close = close


def one_line(text: str, limit: int = 400) -> str:
    """Client- or requester-supplied text made safe for a one-line plain-text answer."""
    flat = "".join(ch if ch.isprintable() else " " for ch in text)
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


class Handler(BaseHTTPRequestHandler):
    """Base handler: plain-text errors, bounded bodies, timeouts answered with 408."""

    protocol_version = "HTTP/1.1"

    def version_string(self) -> str:
        return "tui-ca"

    def setup(self) -> None:
        self.timeout = self.server.options.timeout
        super().setup()

    @property
    def peer(self) -> str:
        return self.client_address[0] if isinstance(self.client_address, tuple) else str(self.client_address)

    # ---------------------------------------------------------------- answers

    def reply(self, status: int, body: bytes | str, content_type: str = "text/plain; charset=utf-8",
              headers: dict[str, str] | None = None) -> None:  # fmt: skip
        if isinstance(body, str):
            body = (one_line(body) + "\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Replaces the stock HTML error page (used by the request-line parser)."""
        try:
            phrase = HTTPStatus(code).phrase
        except ValueError:
            phrase = "error"
        self.close_connection = True
        if not hasattr(self, "command") or self.command is None:
            self.command = "GET"
        # HTTP/0.9 answers have no status line; a garbage line is not worth one.
        self.request_version = self.protocol_version
        self.reply(code, message or phrase)

    def log_message(self, format: str, *args) -> None:
        if not self.server.options.quiet:
            sys.stderr.write(f"{self.peer} - {format % args}\n")

    # --------------------------------------------------------------- requests

    def handle_one_request(self) -> None:
        # The stock version treats a timeout as "close silently"; here the
        # client is told (408), and unexpected failures give a 500 line, not a traceback.
        self.command = None
        self._body_read = False
        self.requestline, self.request_version = "", self.protocol_version
        try:
            self.raw_requestline = self.rfile.readline(65537)
            if not self.raw_requestline:
                self.close_connection = True
                return
            if len(self.raw_requestline) > 65536:
                self.requestline = self.request_version = ""
                self.send_error(HTTPStatus.REQUEST_URI_TOO_LONG, "the request line is too long")
                return
            if not self.parse_request():
                return
            method = getattr(self, "do_" + self.command, None)
            if method is None:
                self.close_connection = True
                self.reply(HTTPStatus.METHOD_NOT_ALLOWED, f"method {one_line(self.command, 20)} is not supported",
                           headers={"Allow": "GET, POST"})  # fmt: skip
            else:
                try:
                    method()
                except HttpError as exc:
                    if exc.close:
                        self.close_connection = True
                    self._drain_unread()
                    self.reply(exc.status, exc.reason, headers=exc.headers)
                except (ConnectionError, ssl.SSLError, TimeoutError):
                    raise
                except (OSError, StoreDamagedError, StoreUnavailableError) as exc:
                    # Not the socket but the store (a missing file, a disk
                    # error): the client still deserves its one line.
                    self.close_connection = True
                    self.log_error("store error: %s: %s", type(exc).__name__, exc)
                    self._last_words(
                        HTTPStatus.INTERNAL_SERVER_ERROR, "the CA store could not be read; try again later"
                    )
            self.wfile.flush()
        except TimeoutError:
            self.close_connection = True
            self._last_words(HTTPStatus.REQUEST_TIMEOUT, "the request did not arrive in time; closing")
        except (ConnectionError, ssl.SSLError, OSError):
            self.close_connection = True
        except Exception as exc:  # noqa: BLE001 - the client gets one line; the log gets the rest
            self.close_connection = True
            self.log_error("internal error: %s: %s", type(exc).__name__, exc)
            self._last_words(HTTPStatus.INTERNAL_SERVER_ERROR, "internal error; the request was not processed")

    def _last_words(self, status: int, text: str) -> None:
        try:
            if self.command is None:
                self.command = "GET"
            self.reply(status, text)
            self.wfile.flush()
        except (OSError, ValueError):
            pass

    def _drain_unread(self) -> None:
        """Read a body the refusal left unread, so that closing does not reset the connection."""
        if self._body_read:
            return
        self._body_read = True
        text = (self.headers.get("Content-Length") or "").strip()
        if text.isascii() and text.isdigit() and int(text) <= _DRAIN_LIMIT:
            try:
                self._read_exactly(int(text), keep=False)
            except (HttpError, OSError):
                self.close_connection = True

    def read_body(self) -> bytes:
        """The request body, refused before reading when too large or unbounded."""
        self._body_read = True
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "send the body with a Content-Length, not chunked", close=True)
        length_text = self.headers.get("Content-Length")
        if length_text is None:
            raise HttpError(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required", close=True)
        # str.isdigit() also accepts '²' (latin-1 0xB2), which int() refuses: ASCII digits only.
        if not (length_text.strip().isascii() and length_text.strip().isdigit()):
            raise HttpError(HTTPStatus.BAD_REQUEST, "Content-Length is not a number", close=True)
        length = int(length_text)
        if length > MAX_BODY:
            # Closing on unread data makes the kernel reset the connection and
            # the client may never see the 413; modest excess is read and dropped.
            self._body_read = False
            raise HttpError(HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                            f"the body is {length} bytes; the limit is {MAX_BODY}", close=True)  # fmt: skip
        return self._read_exactly(length)

    def _read_exactly(self, length: int, *, keep: bool = True) -> bytes:
        deadline = time.monotonic() + self.server.options.timeout
        chunks, remaining = [], length
        while remaining:
            # The socket timeout bounds each read; the deadline bounds a client
            # that trickles one byte just inside it.
            if time.monotonic() > deadline:
                raise TimeoutError
            chunk = self.rfile.read1(min(remaining, 16384))
            if not chunk:
                raise HttpError(HTTPStatus.BAD_REQUEST, "the body ended before Content-Length bytes", close=True)
            if keep:
                chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)


class Server(ThreadingHTTPServer):
    """A listener with a connection cap and, for HTTPS, per-thread TLS handshakes."""

    daemon_threads = True
    block_on_close = False
    allow_reuse_address = True

    def __init__(self, address, handler, options, app, tls: ssl.SSLContext | None = None) -> None:
        self.options = options
        self.app = app
        self.tls = tls
        self._slots = threading.BoundedSemaphore(options.max_connections)
        self._refusers = threading.BoundedSemaphore(_MAX_REFUSERS)
        self._per_address: dict[str, int] = {}
        self._count_lock = threading.Lock()
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        super().__init__(address, handler)

    def _take_address(self, address: str) -> bool:
        with self._count_lock:
            held = self._per_address.get(address, 0)
            if held >= self.options.max_per_address:
                return False
            self._per_address[address] = held + 1
            return True

    def _release_address(self, address: str) -> None:
        with self._count_lock:
            held = self._per_address.pop(address, 1) - 1
            if held > 0:
                self._per_address[address] = held

    def process_request(self, request, client_address) -> None:
        address = client_address[0] if isinstance(client_address, tuple) else str(client_address)
        if not self._take_address(address):
            reason = b"too many connections from this address; close some and try again\n"
        elif self._slots.acquire(blocking=False):
            try:
                super().process_request(request, client_address)
            except Exception:
                self._slots.release()
                self._release_address(address)
                raise
            return
        else:
            self._release_address(address)
            reason = b"the server is busy; try again in a few seconds\n"
        if self._refusers.acquire(blocking=False):
            threading.Thread(target=self._refuse, args=(request, reason), daemon=True).start()
        else:
            self.shutdown_request(request)

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()
            self._release_address(client_address[0] if isinstance(client_address, tuple) else str(client_address))

    def _refuse(self, request, body: bytes) -> None:
        message = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                   b"Retry-After: 5\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s") % (len(body), body)  # fmt: skip
        try:
            request.settimeout(_REFUSE_TIMEOUT)
            sock = self.tls.wrap_socket(request, server_side=True) if self.tls else request
            try:
                sock.sendall(message)
                # Closing with the client's request unread makes the kernel reset the
                # connection, which can destroy the 503 before it is read: end our side
                # (the client sees the answer is complete), then read until it closes.
                sock.shutdown(socket.SHUT_WR)
                deadline = time.monotonic() + _REFUSE_TIMEOUT
                while time.monotonic() < deadline and sock.recv(16384):
                    pass
            finally:
                sock.close()
        except (OSError, ssl.SSLError):
            pass
        finally:
            self.shutdown_request(request)
            self._refusers.release()

    def finish_request(self, request, client_address) -> None:
        request.settimeout(self.options.timeout)
        if self.tls is None:
            self.RequestHandlerClass(request, client_address, self)
            return
        try:
            sock = self.tls.wrap_socket(request, server_side=True)
        except (OSError, ssl.SSLError) as exc:
            if not self.options.quiet:
                sys.stderr.write(f"{client_address[0]} - TLS handshake failed: {one_line(str(exc), 200)}\n")
            return
        try:
            self.RequestHandlerClass(sock, client_address, self)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def handle_error(self, request, client_address) -> None:
        # A client that vanished is not news; anything else is logged in one line.
        exc = sys.exc_info()[1]
        if not isinstance(exc, (OSError, ssl.SSLError)):
            sys.stderr.write(f"{client_address[0]} - unexpected error: {type(exc).__name__}: {one_line(str(exc))}\n")

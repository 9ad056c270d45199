"""Accepting connections: backlog, TCP_NODELAY, TLS, and who may hold a connection.

aiohttp's own sites accept with asyncio's server, which knows nothing of the
peer before the protocol exists. Accepting here lets every connection be
counted against a per-address and a global cap *before* its TLS handshake,
and lets a full server make room: the connection that has waited longest
without a request in progress (idle keep-alive, a head still trickling in, a
handshake not done) from the address holding the most is closed for the
newcomer, so slow clients from many addresses cannot starve a real one.
Only when every connection is busy with a request is the newcomer told 503.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import ssl
from collections import Counter
from dataclasses import dataclass, field

from tui_ca.server.http import Connection, Server, event, plain_address

BACKLOG = 1024
# Refusing takes a handshake for TLS; these are capped too, then simply dropped.
_MAX_REFUSERS = 32
_REFUSE_SECONDS = 2.0
_SHUTDOWN_SECONDS = 5.0
# Connections taken per wake-up of the listening socket; the rest wait for the next loop iteration.
_ACCEPT_BATCH = 64


def unbracketed(host: str) -> str:
    """An address to listen on as given, or an IPv6 literal without the brackets a URL puts around it."""
    return host[1:-1] if host.startswith("[") and host.endswith("]") else host


def _is_unspecified(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_unspecified
    except ValueError:
        return False  # not an address: binding it fails with the resolver's own words


def _handshake_error(exc: BaseException) -> str:
    """What the log says of a failed handshake: the exception, with OpenSSL's reason when it gives one.

    The reason (HTTP_REQUEST: plain HTTP on the TLS port; TLSV1_ALERT_UNKNOWN_CA:
    the client does not trust this server's chain) is what an admin needs to
    tell a misconfigured device from a scan.
    """
    reason = getattr(exc, "reason", None) if isinstance(exc, ssl.SSLError) else None
    return f"{type(exc).__name__}: {reason}" if isinstance(reason, str) and reason else type(exc).__name__


@dataclass(eq=False)
class Slot:
    """One accepted connection, counted from accept to close."""

    address: str
    started: float
    task: asyncio.Task | None = None
    protocol: Connection | None = None
    released: bool = field(default=False)

    @property
    def evictable(self) -> bool:
        return self.protocol is None or self.protocol.waiting


class _Refuser(asyncio.Protocol):
    """Says 503 and closes; reads what the client sent meanwhile so that closing does not reset it."""

    def __init__(self, body: bytes, done: asyncio.Future) -> None:
        self._message = (b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
                         b"Retry-After: 5\r\nCache-Control: no-store\r\nConnection: close\r\n"
                         b"Content-Length: %d\r\n\r\n%s") % (len(body), body)  # fmt: skip
        self._done = done

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(self._message)
        if transport.can_write_eof():
            transport.write_eof()
        self._transport = transport

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc: BaseException | None) -> None:
        if not self._done.done():
            self._done.set_result(None)


class Listener:
    """One listening socket feeding aiohttp's protocol, with the connection caps."""

    def __init__(self, server: Server, host: str, port: int, *, tls: ssl.SSLContext | None, timeout: float,
                 max_connections: int, max_per_address: int, exempt: frozenset[str],
                 log: logging.Logger) -> None:  # fmt: skip
        self.server = server
        self.tls = tls
        self.timeout = timeout
        self.max_connections = max_connections
        self.max_per_address = max_per_address
        self.exempt = exempt
        self.log = log
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        # "::" means every address, IPv4 ones too (as the kernel's own default has it);
        # their peers are then IPv4-mapped, and plain_address gives them back as IPv4.
        dualstack = family == socket.AF_INET6 and _is_unspecified(host) and socket.has_dualstack_ipv6()
        self.sock = socket.create_server((host, port), family=family, backlog=BACKLOG, dualstack_ipv6=dualstack)
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self._slots: dict[Slot, None] = {}
        self._per_address: Counter[str] = Counter()
        self._refusers = 0
        self._loop: asyncio.AbstractEventLoop
        self._reading = False
        self._resume: asyncio.TimerHandle | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._loop.add_reader(self.sock.fileno(), self._accept_ready)
        self._reading = True

    async def stop(self) -> None:
        if self._reading:
            self._loop.remove_reader(self.sock.fileno())
            self._reading = False
        if self._resume is not None:
            self._resume.cancel()
        self.sock.close()
        for slot in list(self._slots):
            if slot.task is not None and not slot.task.done():
                slot.task.cancel()

    def _accept_ready(self) -> None:
        """Accept what is queued (up to a batch): one wake-up of the loop for many clients arriving at once.

        A reader that stays registered, rather than a ``sock_accept`` future
        per connection, which added and removed the reader and made a future
        for every client.
        """
        for _ in range(_ACCEPT_BATCH):
            try:
                conn, peer = self.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # out of descriptors: let connections finish, then go on
                event(self.log, event="accept failed", error=type(exc).__name__)
                self._loop.remove_reader(self.sock.fileno())
                self._reading = False
                self._resume = self._loop.call_later(0.1, self._resume_accepting)
                return
            conn.setblocking(False)
            if self.tls is not None:
                # Before the handshake, whose flights would otherwise wait on Nagle; aiohttp sets it
                # itself once the connection is made, which for plain HTTP is at once.
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._admit(conn, plain_address(str(peer[0])))

    def _resume_accepting(self) -> None:
        self._resume = None
        if not self._reading and self.sock.fileno() >= 0:
            self._loop.add_reader(self.sock.fileno(), self._accept_ready)
            self._reading = True

    def _admit(self, conn: socket.socket, address: str) -> None:
        if address not in self.exempt and self._per_address[address] >= self.max_per_address:
            self._refuse(conn, address, b"too many connections from this address; close some and try again\n")
            return
        if len(self._slots) >= self.max_connections and not self._make_room():
            self._refuse(conn, address, b"the server is busy; try again in a few seconds\n")
            return
        loop = asyncio.get_running_loop()
        slot = Slot(address, loop.time())
        self._slots[slot] = None
        self._per_address[address] += 1
        slot.task = loop.create_task(self._connect(conn, slot))

    def _make_room(self) -> bool:
        candidates = [s for s in self._slots if s.evictable and not s.released]
        if not candidates:
            return False
        victim = min(candidates, key=lambda s: (-self._per_address[s.address], s.started))
        event(self.log, event="closed to make room", peer=victim.address)
        self._release(victim)
        if victim.protocol is not None:
            victim.protocol.force_close()
        elif victim.task is not None:
            victim.task.cancel()
        return True

    def _release(self, slot: Slot) -> None:
        if slot.released:
            return
        slot.released = True
        self._slots.pop(slot, None)
        self._per_address[slot.address] -= 1
        if self._per_address[slot.address] <= 0:
            del self._per_address[slot.address]

    def _protocol(self, slot: Slot) -> Connection:
        protocol = self.server()
        protocol.on_lost = lambda _: self._release(slot)
        slot.protocol = protocol
        return protocol

    async def _connect(self, conn: socket.socket, slot: Slot) -> None:
        loop = asyncio.get_running_loop()
        tls_args = (
            {"ssl_handshake_timeout": self.timeout, "ssl_shutdown_timeout": _SHUTDOWN_SECONDS} if self.tls else {}
        )
        try:
            await loop.connect_accepted_socket(lambda: self._protocol(slot), conn, ssl=self.tls, **tls_args)
        except asyncio.CancelledError:
            conn.close()
            self._release(slot)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            conn.close()
            self._release(slot)
            event(self.log, event="TLS handshake failed", peer=slot.address, error=_handshake_error(exc))

    def _refuse(self, conn: socket.socket, address: str, body: bytes) -> None:
        event(self.log, event="refused", peer=address, reason=body.decode().strip())
        if self._refusers >= _MAX_REFUSERS:
            conn.close()
            return
        self._refusers += 1
        asyncio.get_running_loop().create_task(self._say_busy(conn, body))

    async def _say_busy(self, conn: socket.socket, body: bytes) -> None:
        loop = asyncio.get_running_loop()
        done: asyncio.Future = loop.create_future()
        transport = None
        try:
            async with asyncio.timeout(_REFUSE_SECONDS):
                tls_args = {"ssl_handshake_timeout": _REFUSE_SECONDS} if self.tls else {}
                transport, _ = await loop.connect_accepted_socket(lambda: _Refuser(body, done), conn, ssl=self.tls,
                                                                  **tls_args)  # fmt: skip
                await done
        except (OSError, ssl.SSLError, TimeoutError):
            pass
        finally:
            if transport is not None:
                transport.close()
            else:
                conn.close()
            self._refusers -= 1

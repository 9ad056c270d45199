"""What the handlers of both listeners share, and the two pieces that pace blocking work.

Every engine call that blocks (store reads, commits, scrypt) runs in one
bounded thread pool, never on the event loop. Two things sit in front of it:
``Intake`` gathers the EST submissions that arrive while a commit is under
way into the next commit (group commit: one set of fsyncs for many devices),
and ``LoginGuard`` caps concurrent scrypt checks and throttles failed logins
per address and per user, so guessing neither succeeds fast nor slows OCSP.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

from aiohttp import web

from tui_ca.server.http import PeerAddress
from tui_ca.server.limits import RateLimiter, refusal_throttle

if TYPE_CHECKING:
    # The writer, EST's CSR checks and OCSP's signing pull in cryptography: they
    # are loaded by the first request that needs them (Context.ca, .responder, .module).
    from tui_ca.engine.ca import CertificateAuthority, Submission
    from tui_ca.engine.models import SubmitResult
    from tui_ca.engine.reader import CAReader
    from tui_ca.server.ocsp import Answer, Responder
    from tui_ca.server.users import Users

T = TypeVar("T")
# A commit's fsyncs are shared by at most this many submissions; more wait for the next.
MAX_BATCH = 64
# scrypt takes 16 MiB and tens of ms: two at a time leave the pool to OCSP and EST.
SCRYPT_CONCURRENCY = 2


class Intake:
    """Group commit of EST submissions into ``CertificateAuthority.submit_each``."""

    def __init__(self, ctx: Context) -> None:
        self._ctx = ctx
        self._waiting: list[tuple[Submission, asyncio.Future]] = []
        self._committing = False

    async def submit(self, entry: Submission) -> SubmitResult:
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._waiting.append((entry, future))
        if not self._committing:
            self._committing = True
            asyncio.get_running_loop().create_task(self._drain())
        outcome = await future
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    async def _drain(self) -> None:
        ctx = self._ctx
        try:
            while self._waiting:
                batch, self._waiting = self._waiting[:MAX_BATCH], self._waiting[MAX_BATCH:]
                try:
                    outcomes: list[Any] = await ctx.run(ctx.ca.submit_each, [entry for entry, _ in batch],
                                                        source="est", max_queued=ctx.options.max_queued)  # fmt: skip
                except Exception as exc:  # noqa: BLE001 - every waiting client gets the failure, not a hang
                    outcomes = [exc] * len(batch)
                for (_, future), outcome in zip(batch, outcomes, strict=True):
                    if not future.done():
                        future.set_result(outcome)
        finally:
            self._committing = False


class LoginGuard:
    """Failed HTTP Basic logins cost a token per address and per user; with none left, no check is made."""

    def __init__(self, users: Users | None, per_address: RateLimiter, per_user: RateLimiter) -> None:
        self.users = users
        self.per_address = per_address
        self.per_user = per_user
        self._scrypt = asyncio.Semaphore(SCRYPT_CONCURRENCY)

    def wait(self, address: str, name: str) -> float:
        """Seconds until another guess from this address or for this user is looked at (0: now)."""
        return max(self.per_address.wait(address), self.per_user.wait(name.casefold()))

    async def check(self, ctx: Context, address: str, name: str, password: str) -> bool:
        if self.users is None:
            return False
        async with self._scrypt:
            ok = await ctx.run(self.users.check, name, password)
        if not ok:
            self.per_address.take(address)
            self.per_user.take(name.casefold())
        return ok


@dataclass
class Context:
    """The CA, the options and the shared machinery of both listeners."""

    reader: CAReader
    """What ``serve`` opened the home with: a ``CAReader``, or a ``CertificateAuthority`` (then also the writer)."""
    options: Any
    users: Users | None
    limiter: RateLimiter
    status_paths: dict[str, str]
    executor: ThreadPoolExecutor
    peer_of: PeerAddress
    log: logging.Logger
    response_observers: list[Callable[[str, int, float], None]] = field(default_factory=list)
    """Told of every answer (path, status, seconds): the /metrics request counters."""
    refusal_records: RateLimiter = field(default_factory=refusal_throttle)
    """How many refusals made before intake are kept, per client address (limits.py)."""
    logins: LoginGuard = field(init=False)
    intake: Intake = field(init=False)
    _writer: Any = field(default=None, init=False, repr=False)
    _responder: Any = field(default=None, init=False, repr=False)
    _building: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)
    _modules: dict[str, ModuleType] = field(default_factory=dict, init=False, repr=False)
    """Modules ``module`` has finished importing (sys.modules holds one from the moment its import starts)."""

    def __post_init__(self) -> None:
        self.intake = Intake(self)

    @property
    def ca(self) -> CertificateAuthority:
        """The writer (intake, refusal records, expiry), made on first use over the reader's store.

        Opening the home as a reader keeps the engine's signing and CSR code
        (and cryptography) out of the start; the first request that writes
        loads it, in the executor (``Context.module`` loads EST that way).
        """
        if self._writer is None:
            with self._building:
                if self._writer is None:
                    given: Any = self.reader
                    if hasattr(given, "submit_each"):
                        self._writer = given
                    else:
                        from tui_ca.engine.ca import CertificateAuthority

                        self._writer = CertificateAuthority(given.home, store=given.store)
        return self._writer

    @property
    def responder(self) -> Responder:
        """The OCSP responder, made (signer loaded) by the first OCSP request; ``prepare`` checked its files."""
        if self._responder is None:
            with self._building:
                if self._responder is None:
                    from tui_ca.server.ocsp import Responder

                    self._responder = Responder(self.reader)
        return self._responder

    @property
    def loaded_responder(self) -> Responder | None:
        """The OCSP responder once the first OCSP request has made it; None before (never made here)."""
        return self._responder

    def respond(self, der: bytes) -> Answer:
        """One OCSP answer (blocking: call it through ``run``)."""
        return self.responder.respond(der)

    async def module(self, name: str, *, writer: bool = False) -> ModuleType:
        """A module first needed by a request, imported in the executor so the event loop never waits on it."""
        loaded = self._modules.get(name)
        if loaded is None or (writer and self._writer is None):
            # A second request during the first one's import waits in its own
            # _load on the import lock, never takes the half-made module.
            await self.run(self._load, name, writer)
            loaded = self._modules[name] = sys.modules[name]
        return loaded

    def _load(self, name: str, writer: bool) -> None:
        if writer:
            self.ca  # noqa: B018 - made here, off the event loop
        # An import statement (not importlib), so that ``-X importtime`` sees it.
        __import__(name)

    async def run(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A blocking call on the shared pool."""
        call = functools.partial(function, *args, **kwargs) if kwargs else function
        return await asyncio.get_running_loop().run_in_executor(self.executor, call, *(() if kwargs else args))


CONTEXT = web.AppKey("tui_ca_context", Context)

"""Shared pieces of the UI tests: fixed clock, fixed serials, checked-in keys.

No conftest.py here on purpose: the suite imports ``conftest`` by name from
tests/, and a second one would shadow it. Test modules import the fixtures.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from textual.css.query import NoMatches
from textual.widgets import Input

from tui_ca.demo import DEMO_CA as DEMO_CA_NAMES  # noqa: F401  (re-exported for tests)
from tui_ca.demo import create_demo_home
from tui_ca.engine import Actor
from tui_ca.tui.app import CAApp

FIXTURES = Path(__file__).parent / "fixtures"
# Same instant as tests/conftest.py: a fixed "now" for every artefact.
FIXED_NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
ADMIN = Actor("alice", "192.0.2.10")
# Serials are random in production; here they are a fixed sequence of 63-bit
# values that differ in their leading digits, as random ones do (the lists
# show the first eight hex digits).
SERIAL_STEP = 0x9E37_79B9_7F4A_7C15


class Clock:
    """A settable clock shared by the demo builder and the app."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pilot_test(test):
    """Run an async test on its own event loop (the suite has no async plugin)."""

    @functools.wraps(test)
    def run(*args, **kwargs):
        return asyncio.run(test(*args, **kwargs))

    return run


def serial_counter():
    numbers = itertools.count(1)
    return lambda: (next(numbers) * SERIAL_STEP) % 2**63 | 2**62


def fixture_keys() -> list:
    """The checked-in requester keys, in the order the demo uses them."""
    names = [f"requester-{n}.ec.key.pem" for n in range(1, 5)] + ["requester-rsa.key.pem"]
    names += [f"requester-{n}.ec.key.pem" for n in range(5, 9)]
    return [serialization.load_pem_private_key((FIXTURES / n).read_bytes(), None) for n in names]


def build_demo(home: Path, clock: Clock) -> Path:
    return create_demo_home(home, clock=clock, serials=serial_counter(), keys=fixture_keys())


def make_app(home: Path, clock: Clock, **kwargs) -> CAApp:
    kwargs.setdefault("poll_interval", 0.2)
    app = CAApp(home, clock=clock, actor=ADMIN, serials=serial_counter(), **kwargs)
    # Snapshots must not depend on where the tests run.
    app.export_dir = Path("/srv/exports")
    return app


async def settle(pilot) -> None:
    """Wait until the app has read the CA and every worker has finished."""
    app = pilot.app
    if app.ca.exists():
        await app.ready_event.wait()
    await app.workers.wait_for_complete()
    await pilot.pause()
    await app.workers.wait_for_complete()
    for field in app.screen.query(Input):
        field.cursor_blink = False
    await pilot.pause()


async def until(pilot, predicate, timeout: float = 30.0, step: float = 0.05) -> float:
    """Pause until ``predicate()`` holds; return how long it took (fails after a generous deadline)."""
    started = time.monotonic()
    while not _holds(predicate):
        if time.monotonic() - started >= timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await pilot.pause(step)
    return time.monotonic() - started


def _holds(predicate) -> bool:
    # A screen that is pushed but not yet composed has no widgets to query: not yet, rather than an error.
    try:
        return bool(predicate())
    except NoMatches:
        return False


async def polls(pilot, count: int) -> None:
    """Wait until the app has polled the store ``count`` more times (to see that nothing more happens)."""
    app = pilot.app
    seen = [0]
    original = app.watch_crl

    def counted() -> None:
        seen[0] += 1
        original()

    app.watch_crl = counted  # poll() calls it once per tick
    try:
        await until(pilot, lambda: seen[0] >= count)
    finally:
        app.watch_crl = original


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def demo_home(tmp_path: Path, clock: Clock) -> Path:
    return build_demo(tmp_path / "home", clock)


def text_of(strip) -> str:
    return "".join(segment.text for segment in strip)


def screen_lines(app) -> list[str]:
    """The whole screen as the terminal would show it, one string per line."""
    return [text_of(strip) for strip in app.screen._compositor.render_strips()]


def list_lines(record_list) -> list[str]:
    """What a record list draws, line by line (header first)."""
    return [text_of(record_list.render_line(y)).rstrip() for y in range(record_list.size.height)]


def recorded_notices(app) -> list[str]:
    """What the app says in toasts, as the admin would read it (filled as the app runs)."""
    said: list[str] = []
    original = app.notify

    def notify(message, *args, **kwargs):
        said.append(str(message))
        return original(message, *args, **kwargs)

    app.notify = notify
    return said

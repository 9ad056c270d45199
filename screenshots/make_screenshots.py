"""Make the README's screenshots from the real app on the demo data.

    python screenshots/make_screenshots.py

The demo is built at a fixed instant with the checked-in requester keys and a
fixed serial sequence, so the pictures only change when the UI does.
"""

from __future__ import annotations

import asyncio
import itertools
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tui_ca.demo import create_demo_home
from tui_ca.engine import Actor
from tui_ca.tui.app import CAApp

HERE = Path(__file__).resolve().parent
KEYS = HERE.parent / "tests" / "tui" / "fixtures"
NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)
SIZE = (100, 30)
# (file, keys pressed from the main screen)
SHOTS = [
    ("main-screen.svg", []),
    ("confirm-requester.svg", ["down", "enter"]),
    ("revoke-dialog.svg", ["tab", "enter", "v"]),
    ("bulk-approve.svg", ["space", "space", "a"]),
    ("search.svg", ["tab", "slash", *"example.net", "enter"]),
    ("certificate-text.svg", ["tab", "p"]),
]


def _keys() -> list:
    names = [f"requester-{n}.ec.key.pem" for n in range(1, 5)] + ["requester-rsa.key.pem"]
    names += [f"requester-{n}.ec.key.pem" for n in range(5, 9)]
    return [serialization.load_pem_private_key((KEYS / n).read_bytes(), None) for n in names]


def _serials():
    numbers = itertools.count(1)
    return lambda: (next(numbers) * 0x9E37_79B9_7F4A_7C15) % 2**63 | 2**62


async def _shoot(home: Path, name: str, keys: list[str]) -> None:
    clock = lambda: NOW  # noqa: E731
    app = CAApp(home, clock=clock, actor=Actor("alice", "192.0.2.10"), serials=_serials())
    async with app.run_test(size=SIZE) as pilot:
        await app.ready_event.wait()
        for key in keys:
            await app.workers.wait_for_complete()
            await pilot.press(key)
            await pilot.pause()
        # A dialog opened from a list comes after a worker's read: wait for it to settle.
        for _ in range(3):
            await app.workers.wait_for_complete()
            await pilot.pause(0.2)
        app.save_screenshot(name, str(HERE))
    print(HERE / name)


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        home = create_demo_home(Path(tmp) / "home", clock=lambda: NOW, serials=_serials(), keys=_keys())
        for name, keys in SHOTS:
            asyncio.run(_shoot(home, name, keys))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Messages the UI's workers post back to the screens (small dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from tui_ca.tui.data import Snapshot


@dataclass
class SnapshotLoaded(Message):
    """A fresh read of the CA, made in a worker."""

    snapshot: Snapshot
    """What the main screen shows."""


@dataclass
class OperationDone(Message):
    """An engine operation finished; the screens refresh and announce it."""

    summary: str
    """The sentence announced to the admin."""
    ok: bool = True
    """False when the engine refused (``summary`` is its reason)."""


@dataclass
class ExpiringCounted(Message):
    """How many valid certificates end soon, counted after a full read."""

    count: int
    """Certificates ending within 30 days."""
    token: object
    """The change token of the read it was counted from."""

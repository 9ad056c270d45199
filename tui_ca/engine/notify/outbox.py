"""The outbox: events wait in the store until every channel has them.

An engine operation only *writes* an event (in its own transaction, so an
event exists exactly when its change does); it never talks to a mail server.
The worker then claims due entries under a lease (so ``serve`` and a cron
``notify run`` never send the same delivery twice at once), delivers them
with no lock held, and records each outcome with its audit record in one
transaction. A failed delivery is retried with exponential backoff; after
``MAX_ATTEMPTS`` it is given up, audited as such, and dropped.

The channels an event goes to are fixed when it is written (a channel added
later does not receive old news); a channel removed meanwhile is skipped.
When the settings cannot be read at that moment the event is written for
``"*"`` (every channel that wants its kind), resolved by the worker: a damaged
``notify.json`` neither fails the operation nor loses the event.

Entry document::

    {"id": 7, "event": {...}, "created_at": ISO, "lease_until": ISO | None,
     "deliveries": {"ops-mail": {"attempts": 1, "next_at": ISO, "error": "..."}}}

A delivery disappears from ``deliveries`` once done or given up; the entry
disappears with its last delivery. The audit log keeps the history.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

# 30 s, 1, 2, 4 … minutes, capped at an hour: about 8 hours of trying, long
# enough to ride out a mail server's maintenance window overnight.
BACKOFF_BASE = timedelta(seconds=30)
BACKOFF_CAP = timedelta(hours=1)
MAX_ATTEMPTS = 12
DEFAULT_LEASE = timedelta(minutes=5)
# A client refused in a loop must not grow the outbox without bound; past
# this many undelivered refusal notices new ones are dropped (and counted).
MAX_PENDING_REFUSALS = 100


class OutboxRecords(Protocol):
    """What the outbox needs of a store transaction (the store protocol provides it)."""

    def iter_outbox(self) -> Iterator[dict]:
        """Every entry document, by ID."""

    def put_outbox(self, doc: dict) -> None:
        """Insert or replace the entry ``doc["id"]``."""

    def delete_outbox(self, entry_id: int) -> None: ...

    def next_outbox_id(self) -> int:
        """A new entry ID (never reused)."""

    def audit(self, action: str, target: str, outcome: str, **extra: object) -> None:
        """Append an audit record to this transaction."""

    def state(self, key: str) -> object:
        """A small value kept with the outbox (the date of the last expiry notice)."""

    def set_state(self, key: str, value: object) -> None: ...


class OutboxStore(Protocol):
    """Opens one transaction on the CA's store, exclusive and all or nothing, with its audit."""

    def outbox_transaction(self) -> AbstractContextManager[OutboxRecords]: ...


@dataclass(frozen=True)
class Delivery:
    """One event due to one channel, claimed by a worker."""

    entry_id: int
    """The outbox entry."""
    channel: str
    """The channel's name."""
    event: dict
    """The event document."""
    attempts: int
    """Failed attempts so far."""


def backoff(attempts: int) -> timedelta:
    """Wait after the ``attempts``-th failure."""
    return min(BACKOFF_BASE * (2 ** (attempts - 1)), BACKOFF_CAP)


def _iso(at: datetime) -> str:
    return at.isoformat()


def enqueue(records: OutboxRecords, event: dict, channels: list[str], now: datetime) -> int | None:
    """Write ``event`` for ``channels`` inside the caller's transaction; None when nobody wants it."""
    if not channels:
        return None
    if event["kind"] == "refused":
        pending = sum(1 for doc in records.iter_outbox() if doc["event"]["kind"] == "refused")
        if pending >= MAX_PENDING_REFUSALS:
            dropped = records.state("refusals_dropped")
            records.set_state("refusals_dropped", (dropped if isinstance(dropped, int) else 0) + 1)
            return None
    entry_id = records.next_outbox_id()
    records.put_outbox({
        "id": entry_id, "event": event, "created_at": _iso(now), "lease_until": None,
        "deliveries": {name: {"attempts": 0, "next_at": _iso(now), "error": None} for name in channels},
    })  # fmt: skip
    return entry_id


ANY_CHANNEL = "*"


def claim(store: OutboxStore, now: datetime, *, limit: int = 50, lease: timedelta = DEFAULT_LEASE,
          channels_for: Callable[[str], list[str]] | None = None) -> list[Delivery]:  # fmt: skip
    """Take up to ``limit`` due deliveries, leased to this worker until ``now + lease``.

    ``channels_for(kind)`` resolves deliveries written for ``"*"``.
    """
    claimed: list[Delivery] = []
    with store.outbox_transaction() as records:
        for doc in records.iter_outbox():
            if len(claimed) >= limit:
                break
            if doc.get("lease_until") and datetime.fromisoformat(doc["lease_until"]) > now:
                continue
            if ANY_CHANNEL in doc["deliveries"] and channels_for is not None:
                wildcard = doc["deliveries"][ANY_CHANNEL]
                named = {name: dict(wildcard) for name in channels_for(doc["event"]["kind"])}
                rest = {k: v for k, v in doc["deliveries"].items() if k != ANY_CHANNEL}
                doc = {**doc, "deliveries": {**named, **rest}}
                if not doc["deliveries"]:
                    records.delete_outbox(doc["id"])
                    continue
                records.put_outbox(doc)
            due = [(name, d) for name, d in doc["deliveries"].items() if datetime.fromisoformat(d["next_at"]) <= now]
            if not due:
                continue
            records.put_outbox({**doc, "lease_until": _iso(now + lease)})
            claimed.extend(Delivery(doc["id"], name, doc["event"], d["attempts"]) for name, d in due)
    return claimed


def record(store: OutboxStore, delivery: Delivery, now: datetime, error: str | None) -> str:
    """Store one outcome and its audit record; returns ``delivered``, ``retry``, ``given up`` or ``gone``."""
    target = f"event {delivery.entry_id} ({delivery.event['kind']}) to {delivery.channel}"
    with store.outbox_transaction() as records:
        doc = next((d for d in records.iter_outbox() if d["id"] == delivery.entry_id), None)
        if doc is None or delivery.channel not in doc["deliveries"]:
            return "gone"  # another worker settled it after our lease ran out
        deliveries = dict(doc["deliveries"])
        attempts = delivery.attempts + 1
        if error is None:
            outcome = "delivered"
            del deliveries[delivery.channel]
            records.audit("notify", target, "delivered", attempts=attempts, event_id=delivery.event["event_id"])
        elif attempts >= MAX_ATTEMPTS:
            outcome = "given up"
            del deliveries[delivery.channel]
            records.audit("notify", target, f"given up after {attempts} attempts", error=error,
                          event_id=delivery.event["event_id"])  # fmt: skip
        else:
            outcome = "retry"
            deliveries[delivery.channel] = {"attempts": attempts, "next_at": _iso(now + backoff(attempts)),
                                            "error": error}  # fmt: skip
            records.audit("notify", target, f"failed (attempt {attempts})", error=error,
                          retry_at=deliveries[delivery.channel]["next_at"], event_id=delivery.event["event_id"])  # fmt: skip
        if deliveries:
            records.put_outbox({**doc, "deliveries": deliveries, "lease_until": None})
        else:
            records.delete_outbox(delivery.entry_id)
    return outcome


def drop_channel(store: OutboxStore, delivery: Delivery) -> None:
    """The channel was removed from the settings: forget its pending deliveries, audited."""
    with store.outbox_transaction() as records:
        doc = next((d for d in records.iter_outbox() if d["id"] == delivery.entry_id), None)
        if doc is None or delivery.channel not in doc["deliveries"]:
            return
        deliveries = {k: v for k, v in doc["deliveries"].items() if k != delivery.channel}
        records.audit("notify", f"event {delivery.entry_id} ({delivery.event['kind']}) to {delivery.channel}",
                      "dropped: the channel was removed", event_id=delivery.event["event_id"])  # fmt: skip
        if deliveries:
            records.put_outbox({**doc, "deliveries": deliveries, "lease_until": None})
        else:
            records.delete_outbox(delivery.entry_id)


def pending(store: OutboxStore) -> list[dict]:
    """Every undelivered entry (``notify list``)."""
    with store.outbox_transaction() as records:
        return list(records.iter_outbox())

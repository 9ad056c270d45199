"""The outbox in the CA's record store, and the hook that fills it.

Every outbox transaction runs in the engine's operation frame, so a delivery
outcome and its audit record land together. The outbox keeps its own
counters in entry 0 (the next entry ID, the day of the last expiry notice),
so a backend stores nothing but entry documents.

:func:`enqueue_operation_events` is called by the frame at the end of every
changing operation: the operation's audit records say what happened
(submit, approve, reject, revoke), and the event for each is written in the
same transaction, for the channels that want it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tui_ca.engine import records as docs
from tui_ca.engine.errors import CAError
from tui_ca.engine.models import Actor
from tui_ca.engine.notify import events
from tui_ca.engine.notify.config import NotifyConfig, load_config
from tui_ca.engine.notify.outbox import ANY_CHANNEL, enqueue

if TYPE_CHECKING:
    from tui_ca.engine.notify.worker import RunSummary

_STATE_ID = 0
# The audit actions that are news, and the event each becomes.
EVENT_OF_ACTION = {"submit": "queued", "approve": "approved", "reject": "rejected", "revoke": "revoked"}


class _Op(Protocol):
    txn: Any
    meta: dict
    notes: dict

    def audit(self, action: str, target: str, outcome: str, **extra: Any) -> None: ...


class OpRecords:
    """OutboxRecords over one engine operation."""

    def __init__(self, op: _Op) -> None:
        self._op = op
        stored = next((d for d in op.txn.iter_outbox() if d["id"] == _STATE_ID), None)
        self._state: dict[str, Any] = dict(stored) if stored else {"id": _STATE_ID, "next_id": 1, "state": {}}
        self._state_changed = False

    def iter_outbox(self) -> Iterator[dict]:
        return (d for d in self._op.txn.iter_outbox() if d["id"] != _STATE_ID)

    def put_outbox(self, doc: dict) -> None:
        self._op.txn.put_outbox(doc)

    def delete_outbox(self, entry_id: int) -> None:
        self._op.txn.delete_outbox(entry_id)

    def next_outbox_id(self) -> int:
        entry_id = self._state["next_id"]
        self._state = {**self._state, "next_id": entry_id + 1}
        self._state_changed = True
        return entry_id

    def audit(self, action: str, target: str, outcome: str, **extra: object) -> None:
        self._op.audit(action, target, outcome, **extra)

    def state(self, key: str) -> object:
        return self._state["state"].get(key)

    def set_state(self, key: str, value: object) -> None:
        self._state = {**self._state, "state": {**self._state["state"], key: value}}
        self._state_changed = True

    def finish(self) -> None:
        if self._state_changed:
            self._op.txn.put_outbox(self._state)


class StoreOutbox:
    """The OutboxStore of a CA: each transaction one engine operation."""

    def __init__(self, ca: Any, actor: Actor | None = None) -> None:
        self._ca = ca
        self._actor = actor

    @contextmanager
    def outbox_transaction(self) -> Iterator[OpRecords]:
        with self._ca._operation(self._actor) as op:
            records = OpRecords(op)
            yield records
            records.finish()

    def pending(self) -> list[dict]:
        """Every undelivered entry, read from one committed state (no lock, nothing written)."""
        return self._ca.store.read(lambda view: [d for d in view.iter_outbox() if d["id"] != _STATE_ID])

    def audit_settings(self, target: str, outcome: str, **extra: object) -> None:
        """Record a change of the notification settings (or a test delivery) in the audit log."""
        with self._ca._operation(self._actor) as op:
            op.audit("notify-config", target, outcome, **extra)


def _event(txn: Any, kind: str, audit_doc: dict) -> dict | None:
    at = datetime.fromisoformat(audit_doc["at"])
    actor = Actor(audit_doc["user"], audit_doc.get("address"))
    number = int(audit_doc["target"].rsplit(" ", 1)[1])
    if kind in ("queued", "rejected"):
        request = txn.get_request(number)
        if request is None:
            return None
        asked = docs.request_model(request)
        return events.queued_event(asked, at, actor) if kind == "queued" else events.rejected_event(asked, at, actor)
    cert = txn.get_certificate(number)
    if cert is None:
        return None
    issued = docs.certificate_model(cert)
    return events.approved_event(issued, at, actor) if kind == "approved" else events.revoked_event(issued, at, actor)


def channels_for(home: Path) -> Callable[[str], list[str]]:
    try:
        config = load_config(home)
    except CAError:
        # Unreadable settings: write the event for every channel and let the
        # worker, which reports the damage, resolve it once it is repaired.
        return lambda kind: [ANY_CHANNEL]
    return lambda kind: [c.name for c in config.wanting(kind)]


def enqueue_operation_events(op: _Op, home: Path) -> None:
    """Write the events of this operation's audited changes (the frame calls it before commit)."""
    audited = [d for d in op.notes.get("audited", ()) if d["action"] in EVENT_OF_ACTION]
    if not audited:
        return
    wanted_by = channels_for(home)
    records: OpRecords | None = None
    for audit_doc in audited:
        kind = EVENT_OF_ACTION[audit_doc["action"]]
        channels = wanted_by(kind)
        if not channels:
            continue
        try:
            event = _event(op.txn, kind, audit_doc)
        except (KeyError, ValueError, IndexError, TypeError):
            # A record the models cannot read must not fail the operation:
            # the event then carries what the audit record says.
            event = None
        if event is None:
            event = events.make_event(kind, datetime.fromisoformat(audit_doc["at"]),
                                      Actor(audit_doc["user"], audit_doc.get("address")),
                                      f"{audit_doc['target']} {audit_doc['outcome']}", target=audit_doc["target"],
                                      **audit_doc.get("extra", {}))  # fmt: skip
        records = records or OpRecords(op)
        enqueue(records, event, channels, datetime.fromisoformat(audit_doc["at"]))
    if records is not None:
        records.finish()


def expiry_report_for(ca: Any) -> Callable[[int], dict]:
    from tui_ca.engine.expiry import expiry_report, report_json

    return lambda days: report_json(expiry_report(ca, days))


def notify_pass(ca: Any, config: NotifyConfig | None = None) -> RunSummary:
    """One worker pass on a CA (``notify run``; serve's task calls it in its executor)."""
    # Imported here: the worker pulls in smtplib, email and urllib, which no
    # engine operation needs.
    from tui_ca.engine.notify.worker import run_once

    config = load_config(ca.home) if config is None else config
    return run_once(StoreOutbox(ca), config, ca.now, report=expiry_report_for(ca))

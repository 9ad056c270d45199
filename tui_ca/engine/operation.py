"""The frame every changing engine operation runs in.

One store transaction; the counters (the meta record) read once at the start
and saved once at the end; every change recorded in the chained audit log;
and the store generation bumped only when something was recorded. An
operation that records nothing (every item refused) commits nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from tui_ca.engine import audit as audit_log
from tui_ca.engine.models import Actor
from tui_ca.engine.store import RecordStore, StoreTransaction

# Meta counter bumped by every change of a certificate's revocation state.
REVOCATION_GENERATION = "revocation_generation"


@dataclass
class Operation:
    """What an engine operation works on: its transaction, the counters, the acting admin."""

    txn: StoreTransaction
    meta: dict
    actor: Actor
    clock: Callable[[], datetime]
    recorded: int = 0
    notes: dict[str, Any] = field(default_factory=dict)

    def audit(self, action: str, target: str, outcome: str, **extra: Any) -> None:
        """Append a record chained to the one before; the counters are saved at the end."""
        seq = self.meta["audit_seq"] + 1
        actor = self.actor
        doc = audit_log.make_record(seq, self.clock(), actor.user, actor.address, action, target, outcome, extra,
                                    self.meta["audit_head"])  # fmt: skip
        self.txn.append_audit(doc)
        self.meta["audit_seq"], self.meta["audit_head"] = seq, doc["hash"]
        self.recorded += 1
        # What happened, for the notifications written before the commit (notify/store_outbox.py).
        self.notes.setdefault("audited", []).append(doc)

    def revocation_changed(self) -> None:
        """A certificate's revocation state changed (revoked, reason changed, hold released).

        Readers that keep answers about revocation (the OCSP responder) keep
        them across commits until this counter moves, so that a burst of
        enrollments does not throw away every cached answer.
        """
        self.meta[REVOCATION_GENERATION] = self.meta.get(REVOCATION_GENERATION, 0) + 1


@contextmanager
def operation(store: RecordStore, actor: Actor, clock: Callable[[], datetime]) -> Iterator[Operation]:
    """Run the body as one transaction; save the counters if it recorded anything."""
    with store.transaction() as txn:
        op = Operation(txn, dict(txn.meta()), actor, clock)
        yield op
        if op.recorded:
            op.meta["generation"] = op.meta.get("generation", 0) + 1
            txn.put_meta(op.meta)

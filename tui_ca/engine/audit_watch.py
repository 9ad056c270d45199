"""Whether the audit chain is intact, cheaply enough to ask at every scrape.

Verifying the whole chain hashes every record: seconds at 100,000
certificates (bench/ops_bench.py), far too slow to redo after each commit
for a metric. So the watch verifies the whole chain once, remembers the
head it verified, and after a commit verifies only the records added since,
linked to that head. An edit of an old record breaks nothing in what is
added after it, so the whole chain is verified again every ``full_every``
(15 minutes by default) as well: a tamper shows within that time, a broken
append at the next question.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from tui_ca.engine import audit as audit_log
from tui_ca.engine.reader import CAReader

DEFAULT_FULL_EVERY = 15 * 60.0


class AuditWatch:
    """``intact()``: the audit chain verifies (whole at times, otherwise since the last look)."""

    def __init__(self, reader: CAReader, *, full_every: float = DEFAULT_FULL_EVERY,
                 monotonic: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self._reader = reader
        self._full_every = full_every
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._token: object = None
        self._head: tuple[int, str] | None = None  # (seq, hash) verified so far
        self._full_at = -float("inf")
        self._intact = False
        self.full_checks = 0
        """How many whole-chain verifications ran (for tests and the bench)."""

    def intact(self) -> bool:
        with self._lock:
            token = self._reader.change_token()
            full_due = self._monotonic() - self._full_at >= self._full_every
            if token == self._token and not full_due:
                return self._intact
            self._token = token
            if full_due or self._head is None or not self._intact:
                self._intact, self._head = self._reader.store.read(self._verify_all)
                self._full_at = self._monotonic()
                self.full_checks += 1
            else:
                self._intact, self._head = self._reader.store.read(self._verify_since)
            return self._intact

    def _verify_all(self, view: Any) -> tuple[bool, tuple[int, str]]:
        meta = view.meta()
        docs = list(view.iter_audit())
        problems = audit_log.verify_chain(docs, meta["audit_seq"], meta["audit_head"])
        return not problems, (meta["audit_seq"], meta["audit_head"])

    def _verify_since(self, view: Any) -> tuple[bool, tuple[int, str]]:
        assert self._head is not None
        seq, prev = self._head
        meta = view.meta()
        for doc in view.iter_audit():
            number = doc.get("seq")
            if not isinstance(number, int) or number <= self._head[0]:
                continue
            if number != seq + 1 or doc.get("prev") != prev or audit_log.record_hash(doc) != doc.get("hash"):
                return False, (seq, prev)
            seq, prev = number, doc["hash"]
        return (seq, prev) == (meta["audit_seq"], meta["audit_head"]), (seq, prev)

"""An OutboxStore kept in memory, all or nothing per transaction: the worker's
logic tested apart from any store backend."""

from __future__ import annotations

import copy
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class _Records:
    def __init__(self, state: dict) -> None:
        self._s = state

    def iter_outbox(self) -> Iterator[dict]:
        for key in sorted(self._s["docs"]):
            yield self._s["docs"][key]

    def put_outbox(self, doc: dict) -> None:
        self._s["docs"][doc["id"]] = copy.deepcopy(doc)

    def delete_outbox(self, entry_id: int) -> None:
        del self._s["docs"][entry_id]

    def next_outbox_id(self) -> int:
        self._s["next_id"] += 1
        return self._s["next_id"] - 1

    def audit(self, action: str, target: str, outcome: str, **extra: object) -> None:
        self._s["audit"].append({"action": action, "target": target, "outcome": outcome, "extra": extra})

    def state(self, key: str) -> object:
        return self._s["state"].get(key)

    def set_state(self, key: str, value: object) -> None:
        self._s["state"][key] = value


class MemoryOutbox:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state: dict = {"docs": {}, "state": {}, "audit": [], "next_id": 1}

    @contextmanager
    def outbox_transaction(self) -> Iterator[_Records]:
        with self._lock:
            staged = copy.deepcopy(self._state)
            yield _Records(staged)
            self._state = staged

    @property
    def audit(self) -> list[dict]:
        return self._state["audit"]

    @property
    def docs(self) -> dict:
        return self._state["docs"]

"""A store in memory with the TinyDB backend's semantics: for tests and throwaway CAs.

One lock serialises transactions and consistent reads; a transaction stages
its changes in an overlay that is merged at commit, so an exception inside
the ``with`` block leaves nothing behind. Documents are copied on the way in,
so nothing a caller keeps can change a stored record.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from tui_ca.engine.crl import encode_entry
from tui_ca.engine.store import protocol
from tui_ca.engine.store.protocol import META_DEFAULTS, Pause

T = TypeVar("T")
_COLLECTIONS = ("meta", "requests", "certs", "csr_pems", "cert_pems", "requesters", "serials", "csrs",
                "compromised", "audit", "revoked", "blobs", "outbox", "refusals")  # fmt: skip
_DELETED = object()
# Staged in place of a document that the transaction removes (outbox entries).
_REMOVED = object()


class _State:
    def __init__(self) -> None:
        self.tables: dict[str, dict] = {name: {} for name in _COLLECTIONS}
        self.entry_der: dict[int, bytes] = {}
        self.generation = 0


class _MemoryView:
    def __init__(self, state: _State) -> None:
        self._state = state

    def _get(self, table: str, key: object) -> object:
        return self._state.tables[table].get(key)

    def _keys(self, table: str) -> list:
        return sorted(self._state.tables[table])

    def meta(self) -> dict:
        doc = self._get("meta", 1)
        return {**META_DEFAULTS, **doc} if doc else dict(META_DEFAULTS)  # type: ignore[dict-item]

    def config(self) -> dict:
        doc = self._get("meta", 2)
        return dict(doc) if doc else {}  # type: ignore[call-overload]

    def get_request(self, request_id: int) -> dict | None:
        return self._get("requests", request_id)  # type: ignore[return-value]

    def get_certificate(self, cert_id: int) -> dict | None:
        return self._get("certs", cert_id)  # type: ignore[return-value]

    def get_csr_pem(self, request_id: int) -> str | None:
        return self._get("csr_pems", request_id)  # type: ignore[return-value]

    def get_cert_pem(self, cert_id: int) -> str | None:
        return self._get("cert_pems", cert_id)  # type: ignore[return-value]

    def find_requester(self, name: str) -> dict | None:
        return self._get("requesters", name.casefold())  # type: ignore[return-value]

    def find_serial(self, serial: int) -> int | None:
        return self._get("serials", serial)  # type: ignore[return-value]

    def find_csr(self, csr_sha256: str) -> int | None:
        return self._get("csrs", csr_sha256)  # type: ignore[return-value]

    def find_compromised(self, spki_sha256: str) -> int | None:
        return self._get("compromised", spki_sha256)  # type: ignore[return-value]

    def _iter(self, table: str, reverse: bool = False) -> Iterator[dict]:
        for key in sorted(self._keys(table), reverse=reverse):
            doc = self._get(table, key)
            if doc is not None:
                yield doc  # type: ignore[misc]

    def iter_requests(self, *, status: str | None = None, newest_first: bool = False,
                      pause: Pause | None = None) -> Iterator[dict]:  # fmt: skip
        for doc in self._iter("requests", newest_first):
            if status is None or doc["status"] == status:
                yield doc

    def iter_certificates(self, *, pause: Pause | None = None) -> Iterator[dict]:
        return self._iter("certs")

    def iter_audit(self) -> Iterator[dict]:
        return self._iter("audit")

    def iter_revoked(self) -> Iterator[dict]:
        return self._iter("revoked")

    def crl_entries(self) -> tuple[list[bytes], int]:
        chunks = [self._entry_der(doc) for doc in self._iter("revoked")]
        return chunks, len(chunks)

    def _entry_der(self, doc: dict) -> bytes:
        der = self._state.entry_der.get(doc["id"])
        if der is None:
            der = encode_entry(int(doc["serial"], 16), datetime.fromisoformat(doc["at"]), doc["code"])
        return der

    def get_blob(self, name: str) -> bytes | None:
        return self._get("blobs", name)  # type: ignore[return-value]

    def iter_outbox(self) -> Iterator[dict]:
        return self._iter("outbox")

    def iter_refusals(self) -> Iterator[dict]:
        return self._iter("refusals", reverse=True)


class _MemoryTransaction(_MemoryView):
    def __init__(self, state: _State) -> None:
        super().__init__(state)
        self._staged: dict[str, dict] = {name: {} for name in _COLLECTIONS}

    def _get(self, table: str, key: object) -> object:
        staged = self._staged[table].get(key, _DELETED)
        if staged is _REMOVED:
            return None
        return super()._get(table, key) if staged is _DELETED else staged

    def _keys(self, table: str) -> list:
        return sorted(set(self._state.tables[table]) | set(self._staged[table]))

    def _set(self, table: str, key: object, value: object) -> None:
        self._staged[table][key] = copy.deepcopy(value)

    def put_meta(self, meta: dict) -> None:
        self._set("meta", 1, meta)

    def put_config(self, config: dict) -> None:
        self._set("meta", 2, config)

    def put_request(self, doc: dict) -> None:
        self._set("requests", doc["id"], doc)

    def put_certificate(self, doc: dict) -> None:
        self._set("certs", doc["id"], doc)

    def put_csr_pem(self, request_id: int, pem: str) -> None:
        self._set("csr_pems", request_id, pem)

    def put_cert_pem(self, cert_id: int, pem: str) -> None:
        self._set("cert_pems", cert_id, pem)

    def put_requester(self, name: str, entry: dict) -> None:
        self._set("requesters", name.casefold(), {"name": entry.get("name", name), "queued": entry.get("queued"),
                                                  "active": entry.get("active")})  # fmt: skip

    def put_serial(self, serial: int, cert_id: int) -> None:
        self._set("serials", serial, cert_id)

    def put_csr(self, csr_sha256: str, request_id: int) -> None:
        self._set("csrs", csr_sha256, request_id)

    def put_compromised(self, spki_sha256: str, cert_id: int) -> None:
        self._set("compromised", spki_sha256, cert_id)

    def append_audit(self, doc: dict) -> None:
        if self._get("audit", doc["seq"]) is not None:
            raise ValueError(f"audit record {doc['seq']} exists already")
        self._set("audit", doc["seq"], doc)

    def put_revoked(self, entry: dict) -> None:
        self._set("revoked", entry["id"], entry)

    def remove_revoked(self, cert_id: int) -> None:
        self._set("revoked", cert_id, None)

    def put_blob(self, name: str, data: bytes) -> None:
        self._set("blobs", name, bytes(data))

    def put_outbox(self, doc: dict) -> None:
        self._set("outbox", doc["id"], doc)

    def delete_outbox(self, entry_id: int) -> None:
        self._staged["outbox"][entry_id] = _REMOVED

    def append_refusal(self, doc: dict) -> None:
        keys = self._keys("refusals")
        seq = (keys[-1] if keys else 0) + 1
        self._set("refusals", seq, {**doc, "seq": seq})
        for old in keys[: max(0, len(keys) + 1 - protocol.REFUSALS_KEPT)]:
            self._staged["refusals"][old] = _REMOVED

    def commit(self) -> None:
        state = self._state
        for table, changes in self._staged.items():
            state.tables[table].update(changes)
            for key in [key for key, value in changes.items() if value is None]:
                del state.tables[table][key]  # staged removal
        for table in ("outbox", "refusals"):
            for entry_id in [k for k, v in self._staged[table].items() if v is _REMOVED]:
                state.tables[table].pop(entry_id, None)
        for cert_id in self._staged["revoked"]:
            state.entry_der.pop(cert_id, None)
        if any(self._staged.values()):
            state.generation += 1


class MemoryStore:
    """Records in this process's memory, shared by every thread (not by other processes)."""

    # A read of this process's memory (CAReader.change_token_is_local).
    change_token_is_local = True

    _homes: dict[Path, MemoryStore] = {}
    _homes_lock = threading.Lock()
    _ids = itertools.count(1)

    def __init__(self) -> None:
        self._state = _State()
        self._lock = threading.RLock()
        self._id = next(self._ids)

    @classmethod
    def for_home(cls, home: Path | str) -> MemoryStore:
        """The one memory store of a home in this process, so every reader of it sees the same records."""
        key = Path(home).absolute()
        with cls._homes_lock:
            store = cls._homes.get(key)
            if store is None:
                store = cls._homes[key] = cls()
            return store

    @classmethod
    def forget_homes(cls) -> None:
        """Drop every per-home store (between tests)."""
        with cls._homes_lock:
            cls._homes.clear()

    @contextmanager
    def transaction(self) -> Iterator[_MemoryTransaction]:
        with self._lock:
            txn = _MemoryTransaction(self._state)
            yield txn
            txn.commit()

    def read(self, read: Callable[[_MemoryView], T]) -> T:
        with self._lock:
            return read(_MemoryView(self._state))

    def view(self, *, keep: bool = True) -> _MemoryView:
        return _MemoryView(self._state)

    home_entries: frozenset[str] = frozenset()

    def backup_to(self, dest_home: Path) -> None:
        from tui_ca.engine.store.copying import copy_records
        from tui_ca.engine.store.tinydb import TinyDBStore

        copy_records(_MemoryView(self._state), TinyDBStore(dest_home))

    def change_token(self) -> object:
        return (self._id, self._state.generation)

"""The store seam: the record protocol the engine uses, and its backends.

``open_store`` picks a backend by name; the TinyDB backend is imported only
when it is used, so a process on another backend never loads TinyDB.
"""

from __future__ import annotations

from pathlib import Path

from tui_ca.engine.store.protocol import (
    CRL_DER_BLOB,
    CRL_PEM_BLOB,
    META_DEFAULTS,
    ROOT_CRL_DER_BLOB,
    ROOT_CRL_PEM_BLOB,
    RecordStore,
    StoreDamagedError,
    StoreTransaction,
    StoreUnavailableError,
    StoreView,
)

BACKENDS = ("tinydb", "memory")
# The backend a CertificateAuthority opens when none is given (tests switch it).
default_backend = "tinydb"


def open_store(home: Path | str, backend: str | None = None) -> RecordStore:
    """The record store of a home, on the named backend (default: ``default_backend``)."""
    name = backend or default_backend
    if name == "tinydb":
        from tui_ca.engine.store.tinydb import TinyDBStore

        return TinyDBStore(home)
    if name == "memory":
        from tui_ca.engine.store.memory import MemoryStore

        return MemoryStore.for_home(home)
    raise ValueError(f"unknown store backend {name!r} (known: {', '.join(BACKENDS)})")


__all__ = [
    "BACKENDS", "CRL_DER_BLOB", "CRL_PEM_BLOB", "META_DEFAULTS", "ROOT_CRL_DER_BLOB", "ROOT_CRL_PEM_BLOB", "RecordStore",
    "StoreDamagedError", "StoreTransaction", "StoreUnavailableError", "StoreView",
    "open_store",
]  # fmt: skip

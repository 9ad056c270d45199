"""The record store the engine talks to: CA records, not files or tables.

A backend keeps the records of one CA (requests, certificates, their PEMs, the
indexes that enforce the domain rules, counters, configuration, the audit log,
the revocation entries and the published CRL) and offers:

* :meth:`RecordStore.transaction` — one per engine operation: exclusive
  against every other writer (threads and processes), on fresh state, and all
  or nothing. Changes staged in the :class:`StoreTransaction` are visible to
  it at once and to everybody else only after the ``with`` block ends without
  an exception.
* :meth:`RecordStore.read` — a function run on a :class:`StoreView` that sees
  one committed state (never half of a commit).
* :meth:`RecordStore.view` — a cheap view for streaming reads, each record
  whole but not necessarily of one instant.

Documents are plain JSON-able dicts. The engine owns their fields (see
``records.py``); a backend may index on the fields named in this protocol
(``id``, ``status``, ``requester``, ``serial``) and keeps the rest opaque.
Documents handed out by a view are shared: callers never mutate them, they
build a new dict and ``put_*`` it.

The rules themselves (one queued request and one active certificate per
requester, unique serials, burnt IDs, blocked keys) are checked by the engine
inside a transaction; a backend with constraints (PostgreSQL) enforces them
again and raises :class:`~tui_ca.engine.errors.RuleError` on a violation.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Protocol, TypeVar, runtime_checkable

from tui_ca.engine.errors import RuleError

T = TypeVar("T")


class StoreDamagedError(RuleError):
    """A store record or file is not what was written: refused, never treated as empty."""


class StoreUnavailableError(RuleError):
    """The store cannot be read or written now (disk full, read-only, no permission): nothing changed."""


# Published artefacts kept by the store (get_blob / put_blob names).
CRL_DER_BLOB = "crl.der"
CRL_PEM_BLOB = "crl.pem"
# The root's own CRL (signed with the root key; absent for an external root).
ROOT_CRL_DER_BLOB = "root_crl.der"
ROOT_CRL_PEM_BLOB = "root_crl.pem"

# Counters and state every backend starts from (the "meta" record).
META_DEFAULTS: dict[str, object] = {
    "next_id": 1, "crl_number": 0, "audit_seq": 0, "audit_head": "", "queued": 0, "generation": 0,
}  # fmt: skip

Pause = Callable[[], None]

# Refused submissions kept (newest first); older ones are dropped as new ones
# arrive, so a flood of bad requests cannot fill the disk.
REFUSALS_KEPT = 10_000


@runtime_checkable
class StoreView(Protocol):
    """Read access to the records."""

    def meta(self) -> dict:
        """Counters: next_id, queued, crl_number, crl_this_update, crl_next_update, audit_seq, audit_head, generation."""

    def config(self) -> dict:
        """The CA's configuration, as set at ``init`` (empty before)."""

    def get_request(self, request_id: int) -> dict | None: ...

    def get_certificate(self, cert_id: int) -> dict | None:
        """A certificate by its Certificate ID (the ID of the request it was issued for)."""

    def get_csr_pem(self, request_id: int) -> str | None: ...

    def get_cert_pem(self, cert_id: int) -> str | None: ...

    def find_requester(self, name: str) -> dict | None:
        """``{"name", "queued", "active"}`` for a requester, matched case-insensitively."""

    def find_serial(self, serial: int) -> int | None:
        """The Certificate ID of the certificate with this serial."""

    def find_csr(self, csr_sha256: str) -> int | None:
        """The request made from the CSR with this SHA-256 (hex of its DER)."""

    def find_compromised(self, spki_sha256: str) -> int | None:
        """The certificate whose key (SPKI SHA-256) was revoked for keyCompromise."""

    def iter_requests(self, *, status: str | None = None, newest_first: bool = False,
                      pause: Pause | None = None) -> Iterator[dict]:  # fmt: skip
        """Request documents by ID (ascending, or descending with ``newest_first``).

        Memory use does not grow with the store. ``pause`` is called now and then
        so that a UI thread can take a turn during a long read.
        """

    def iter_certificates(self, *, pause: Pause | None = None) -> Iterator[dict]:
        """Certificate documents by ID, ascending."""

    def iter_audit(self) -> Iterator[dict]:
        """Audit records by sequence number, ascending."""

    def iter_revoked(self) -> Iterator[dict]:
        """Revocation entries ``{"id", "serial", "at", "code"}`` by certificate ID."""

    def crl_entries(self) -> tuple[list[bytes], int]:
        """The DER of every CRL entry (revokedCertificates content) as chunks, and their count."""

    def get_blob(self, name: str) -> bytes | None:
        """A published artefact (``CRL_DER_BLOB``, ``CRL_PEM_BLOB``)."""

    def iter_outbox(self) -> Iterator[dict]:
        """Notification outbox entries ``{"id", ...}`` by ID (see engine/notify/outbox.py); few at any time."""

    def iter_refusals(self) -> Iterator[dict]:
        """Refused submissions (see ``records.refusal_doc``), newest first; at most ``REFUSALS_KEPT``."""


@runtime_checkable
class StoreTransaction(StoreView, Protocol):
    """A view that can also change the records; nothing lands until the commit.

    A backend whose lookups are round trips may also offer
    ``prefetch_intake(csr_shas, spkis, requesters)``: the engine calls it, when
    present, before a batch of submissions with the index keys they will look up.
    """

    def put_meta(self, meta: dict) -> None: ...

    def put_config(self, config: dict) -> None: ...

    def put_request(self, doc: dict) -> None:
        """Insert or replace the request ``doc["id"]``."""

    def put_certificate(self, doc: dict) -> None:
        """Insert or replace the certificate ``doc["id"]``."""

    def put_csr_pem(self, request_id: int, pem: str) -> None: ...

    def put_cert_pem(self, cert_id: int, pem: str) -> None: ...

    def put_requester(self, name: str, entry: dict) -> None:
        """Set the requester's entry (``name``, ``queued``, ``active``); the key is the casefolded name."""

    def put_serial(self, serial: int, cert_id: int) -> None: ...

    def put_csr(self, csr_sha256: str, request_id: int) -> None: ...

    def put_compromised(self, spki_sha256: str, cert_id: int) -> None: ...

    def append_audit(self, doc: dict) -> None:
        """Add the audit record ``doc["seq"]`` (records are never changed once written)."""

    def put_revoked(self, entry: dict) -> None:
        """Add or replace the revocation entry ``{"id", "serial", "at", "code"}`` (a CRL entry)."""

    def remove_revoked(self, cert_id: int) -> None:
        """Drop a revocation entry (a released certificateHold leaves the next CRL)."""

    def put_blob(self, name: str, data: bytes) -> None: ...

    def put_outbox(self, doc: dict) -> None:
        """Insert or replace the outbox entry ``doc["id"]`` (an integer, 0 included)."""

    def delete_outbox(self, entry_id: int) -> None:
        """Remove an outbox entry (delivered); no error if it is gone."""

    def append_refusal(self, doc: dict) -> None:
        """Record a refused submission; the oldest beyond ``REFUSALS_KEPT`` are dropped.

        The backend numbers the record (``doc["seq"]``, from 1, never reused).
        """


@runtime_checkable
class RecordStore(Protocol):
    """One CA's records, shared by every thread and process that opens it."""

    def transaction(self) -> AbstractContextManager[StoreTransaction]:
        """Exclusive, on fresh state, all or nothing; commits when the block ends cleanly."""

    def read(self, read: Callable[[StoreView], T]) -> T:
        """Run ``read`` on a view of one committed state (retried or locked as the backend needs)."""

    def view(self, *, keep: bool = True) -> StoreView:
        """A view for streaming reads: each record whole, not necessarily of one instant.

        ``keep=False``: one pass over many records (a listing), so nothing read is
        kept in memory for later views; memory stays independent of the store size.
        """

    home_entries: frozenset[str]
    """Top-level names in the home that belong to the store (left to it by backup and restore)."""

    def backup_to(self, dest_home: Path) -> None:
        """Write every record, as of one committed state, as a TinyDB store in ``dest_home``.

        Called by the engine inside a transaction of this store, so writers wait
        and the copy is of one generation; ``dest_home`` exists and holds no store.
        """

    def change_token(self) -> object:
        """A cheap value that changes whenever anybody commits."""

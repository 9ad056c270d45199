"""Copying every record from one store into another, through the protocol alone.

Used to back up a store that has no files of its own (memory, a database)
into a TinyDB home, and to restore a TinyDB backup into any store. The
indexes are rebuilt from the records (what ``tui-ca check`` verifies them
against), so a copy is consistent by construction. Each key is written once
(the last record naming it wins, as the live store kept it), so a backend may
load the copy with plain many-row inserts (``BulkLoading``).
"""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Protocol, runtime_checkable

from tui_ca.engine.store.protocol import CRL_DER_BLOB, CRL_PEM_BLOB, RecordStore, StoreTransaction, StoreView


@runtime_checkable
class BulkLoading(Protocol):
    """A transaction that writes new records faster many at a time (PostgreSQL: one statement per few thousand)."""

    def bulk_load(self) -> AbstractContextManager[None]: ...


def copy_records(source: StoreView, dest: RecordStore) -> None:
    """Write every record of ``source`` into the empty store ``dest`` in one transaction."""
    with dest.transaction() as txn:
        if txn.config() or txn.meta().get("audit_seq"):
            raise ValueError("the destination store is not empty")
        with txn.bulk_load() if isinstance(txn, BulkLoading) else nullcontext():
            _copy_into(source, txn)


def _copy_into(source: StoreView, txn: StoreTransaction) -> None:
    txn.put_config(source.config())
    requesters: dict[str, dict] = {}
    csrs: dict[str, int] = {}
    compromised: dict[str, int] = {}
    for doc in source.iter_requests():
        txn.put_request(doc)
        pem = source.get_csr_pem(doc["id"])
        if pem is not None:
            txn.put_csr_pem(doc["id"], pem)
        csrs[doc["csr_sha"]] = doc["id"]
        entry = requesters.setdefault(doc["requester"].casefold(), {"name": doc["requester"], "queued": None,
                                                                    "active": None})  # fmt: skip
        if doc["status"] == "queued":
            entry["queued"] = doc["id"]
    for doc in source.iter_certificates():
        txn.put_certificate(doc)
        pem = source.get_cert_pem(doc["id"])
        if pem is not None:
            txn.put_cert_pem(doc["id"], pem)
        txn.put_serial(int(doc["serial"], 16), doc["id"])
        entry = requesters.setdefault(doc["requester"].casefold(), {"name": doc["requester"], "queued": None,
                                                                    "active": None})  # fmt: skip
        if doc.get("revoked_at") is None:
            entry["active"] = doc["id"]
        elif doc.get("reason") == "keyCompromise":
            compromised[doc["spki"]] = doc["id"]
    for csr_sha, request_id in csrs.items():
        txn.put_csr(csr_sha, request_id)
    for spki, cert_id in compromised.items():
        txn.put_compromised(spki, cert_id)
    for entry in requesters.values():
        txn.put_requester(entry["name"], entry)
    for entry in source.iter_revoked():
        txn.put_revoked(entry)
    for record in source.iter_audit():
        txn.append_audit(record)
    # Oldest first, so the copy numbers them in the same order (its own seq from 1).
    for refusal in reversed(list(source.iter_refusals())):
        txn.append_refusal({k: v for k, v in refusal.items() if k != "seq"})
    for name in (CRL_DER_BLOB, CRL_PEM_BLOB):
        blob = source.get_blob(name)
        if blob is not None:
            txn.put_blob(name, blob)
    txn.put_meta(dict(source.meta()))

"""Copy every record of one store into another (a TinyDB home into PostgreSQL).

The source is read in one consistent read and the target written in one
transaction, so the copy is of one committed state and lands whole or not at
all. The protocol has no iterators over the indexes; they are rebuilt from
the records, exactly as the engine keeps them, and ``check`` then verifies the
target like any other store.
"""

from __future__ import annotations

from dataclasses import dataclass

from tui_ca.engine.errors import RuleError
from tui_ca.engine.store.protocol import CRL_DER_BLOB, CRL_PEM_BLOB, RecordStore, StoreView

# Public CA files kept as blobs, so that another machine's home can fetch them (join).
CA_CERT_BLOBS = ("ca/root.crt.pem", "ca/issuing.crt.pem")
# keyCompromise in RFC 5280's CRLReason.
_KEY_COMPROMISE = 1


@dataclass(frozen=True)
class CopyCounts:
    """What a copy moved."""

    requests: int
    """Requests (with their CSRs)."""
    certificates: int
    """Certificates (with their PEMs)."""
    revoked: int
    """Revocation entries."""
    audit: int
    """Audit records."""


def _is_empty(view: StoreView) -> bool:
    return (
        not view.config()
        and next(iter(view.iter_requests()), None) is None
        and next(iter(view.iter_audit()), None) is None
    )


def copy_records(source: RecordStore, target: RecordStore, extra_blobs: dict[str, bytes] | None = None, *,
                 lock_source: bool = False) -> CopyCounts:  # fmt: skip
    """Copy ``source`` into the empty ``target``; refuses a target that holds records.

    The source is read in one consistent read; with ``lock_source`` inside a
    transaction of its own instead (writers wait), for a backend whose
    consistent read may run the reader again (TinyDB's retries would copy twice).
    """

    def copy(view: StoreView) -> CopyCounts:
        with target.transaction() as txn:
            if not _is_empty(txn):
                raise RuleError("the target store already holds CA records; copy only into an empty one")
            txn.put_config(view.config())
            queued: dict[str, tuple[str, int]] = {}
            csrs: dict[str, int] = {}
            requests = 0
            for doc in view.iter_requests():
                txn.put_request(doc)
                pem = view.get_csr_pem(doc["id"])
                if pem is not None:
                    txn.put_csr_pem(doc["id"], pem)
                csrs[doc["csr_sha"]] = doc["id"]
                if doc["status"] == "queued":
                    queued[doc["requester"].casefold()] = (doc["requester"], doc["id"])
                requests += 1
            active: dict[str, tuple[str, int]] = {}
            spki: dict[int, str] = {}
            certificates = 0
            for doc in view.iter_certificates():
                txn.put_certificate(doc)
                pem = view.get_cert_pem(doc["id"])
                if pem is not None:
                    txn.put_cert_pem(doc["id"], pem)
                txn.put_serial(int(doc["serial"], 16), doc["id"])
                spki[doc["id"]] = doc["spki"]
                if doc.get("revoked_at") is None:
                    active[doc["requester"].casefold()] = (doc["requester"], doc["id"])
                certificates += 1
            for key in sorted(set(queued) | set(active)):
                name = (queued.get(key) or active[key])[0]
                txn.put_requester(name, {"name": name, "queued": queued.get(key, (None, None))[1],
                                         "active": active.get(key, (None, None))[1]})  # fmt: skip
            for sha, request_id in csrs.items():
                txn.put_csr(sha, request_id)
            revoked = 0
            for entry in view.iter_revoked():
                txn.put_revoked(entry)
                if entry.get("code") == _KEY_COMPROMISE and entry["id"] in spki:
                    txn.put_compromised(spki[entry["id"]], entry["id"])
                revoked += 1
            audit = 0
            for doc in view.iter_audit():
                txn.append_audit(doc)
                audit += 1
            # The CA certificates are files of the home, not records: the caller passes them.
            for name in (CRL_DER_BLOB, CRL_PEM_BLOB):
                blob = view.get_blob(name)
                if blob is not None:
                    txn.put_blob(name, blob)
            for name, blob in (extra_blobs or {}).items():
                txn.put_blob(name, blob)
            txn.put_meta(view.meta())
        return CopyCounts(requests, certificates, revoked, audit)

    if lock_source:
        # A transaction that changes nothing commits nothing; it only keeps writers out.
        with source.transaction() as locked:
            return copy(locked)
    return source.read(copy)

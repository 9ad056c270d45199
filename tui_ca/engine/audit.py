"""The audit log: one record per change, each chained to the one before.

A record's hash covers its fields and the previous record's hash, so an edited,
deleted, inserted or reordered record breaks the chain at that point, and the
head hash kept in the store's meta document catches a truncated tail.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime

from tui_ca.engine.models import AuditRecord

_HASHED_FIELDS = ("seq", "at", "user", "address", "action", "target", "outcome", "extra", "prev")


def record_hash(doc: dict) -> str:
    canonical = json.dumps({k: doc.get(k) for k in _HASHED_FIELDS}, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8", "surrogatepass")).hexdigest()


def make_record(seq: int, at: datetime, user: str, address: str | None, action: str, target: str,
                outcome: str, extra: dict, prev: str) -> dict:  # fmt: skip
    doc = {
        "seq": seq, "at": at.isoformat(), "user": user, "address": address, "action": action,
        "target": target, "outcome": outcome, "extra": extra, "prev": prev,
    }  # fmt: skip
    doc["hash"] = record_hash(doc)
    return doc


def to_model(doc: dict) -> AuditRecord:
    return AuditRecord(
        seq=doc["seq"], at=datetime.fromisoformat(doc["at"]), user=doc["user"], address=doc.get("address"),
        action=doc["action"], target=doc["target"], outcome=doc["outcome"], prev_hash=doc["prev"],
        hash=doc["hash"], extra=doc.get("extra") or {},
    )  # fmt: skip


def verify_chain(docs: list[dict], head_seq: int, head_hash: str) -> list[str]:
    """Problems found, one sentence each; an empty list means the log is intact."""
    problems: list[str] = []
    prev = ""
    expected_seq = 1
    for doc in docs:
        seq = doc.get("seq")
        if seq != expected_seq:
            problems.append(f"record {seq}: expected record {expected_seq} here (missing or reordered)")
        if doc.get("prev") != prev:
            problems.append(f"record {seq}: does not follow the record before it (chain broken)")
        if record_hash(doc) != doc.get("hash"):
            problems.append(f"record {seq}: content does not match its hash (edited)")
        prev = doc.get("hash", "")
        expected_seq = (seq if isinstance(seq, int) else expected_seq) + 1
    if expected_seq - 1 != head_seq or prev != head_hash:
        problems.append(f"the log ends at record {expected_seq - 1} but {head_seq} were committed (tail removed)")
    return problems

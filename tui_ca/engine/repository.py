"""Typed access to the store's collections: documents, indexes, meta.

Collections (each a folder of TinyDB shard files under ``db/``):

* ``requests``, ``certs``, ``revoked`` — keyed by Certificate ID (doc_id).
* ``audit`` — keyed by sequence number.
* ``serials``, ``requesters``, ``csrs``, ``compromised`` — indexes keyed by
  a string ``k`` (serial hex, casefolded requester, CSR SHA-256, SPKI SHA-256
  of keys revoked for keyCompromise), sharded by its hash.
* ``meta`` — doc 1: counters (next ID, CRL number, audit head, queue size,
  generation); doc 2: configuration set at ``init``.
"""

from __future__ import annotations

import hashlib

from tinydb.table import Document

from tui_ca.engine.store import Transaction, View, id_shard, key_shard

_META_DEFAULTS = {"next_id": 1, "crl_number": 0, "audit_seq": 0, "audit_head": "", "queued": 0, "generation": 0}


def get_meta(view: View) -> dict:
    doc = view.table("meta", "meta").get(doc_id=1)
    return {**_META_DEFAULTS, **doc} if doc else dict(_META_DEFAULTS)


def get_config(view: View) -> dict:
    doc = view.table("meta", "meta").get(doc_id=2)
    return dict(doc) if doc else {}


def put_meta(txn: Transaction, meta: dict) -> None:
    txn.table("meta", "meta").upsert(Document(meta, doc_id=1))


def put_config(txn: Transaction, config: dict) -> None:
    txn.table("meta", "meta").upsert(Document(config, doc_id=2))


def _index_slot(key: str) -> int:
    """Where an index entry lives in its shard: a doc_id from the key's hash.

    A search would scan the whole bucket (about 1,600 entries at 100,000
    certificates; bench/ seeding slowed from 2 to 16 ms a certificate); a
    doc_id is one dict lookup. Bytes 8-13 of the digest are independent of the
    bucket byte; entries are never deleted, so linear probing stays correct.
    """
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[8:14], "big") + 1


def index_get(view: View, name: str, key: str) -> dict | None:
    table = view.table(name, key_shard(key))
    slot = _index_slot(key)
    while (doc := table.get(doc_id=slot)) is not None:
        if doc.get("k") == key:
            return dict(doc)
        slot += 1
    return None


def index_put(txn: Transaction, name: str, key: str, value: dict) -> None:
    table = txn.table(name, key_shard(key))
    value = {**value, "k": key}
    slot = _index_slot(key)
    while (doc := table.get(doc_id=slot)) is not None and doc.get("k") != key:
        slot += 1
    if doc is None:
        table.insert(Document(value, doc_id=slot))
    else:
        table.update(value, doc_ids=[slot])


def get_doc(view: View, collection: str, number: int) -> dict | None:
    doc = view.table(collection, id_shard(number)).get(doc_id=number)
    return dict(doc) if doc else None


def insert_doc(txn: Transaction, collection: str, number: int, doc: dict) -> None:
    txn.table(collection, id_shard(number)).insert(Document(doc, doc_id=number))


def update_doc(txn: Transaction, collection: str, number: int, fields: dict) -> None:
    txn.table(collection, id_shard(number)).update(fields, doc_ids=[number])

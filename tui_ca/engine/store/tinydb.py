"""The embedded backend: the CA's records as sharded TinyDB files in the home.

Collections (each a folder of TinyDB shard files under ``db/``):

* ``requests``, ``certs``, ``csr_pems``, ``cert_pems``, ``revoked`` — keyed by
  Certificate ID (doc_id), 256 IDs a shard.
* ``audit`` — keyed by sequence number.
* ``serials``, ``requesters``, ``csrs``, ``compromised`` — indexes keyed by
  a string ``k`` (serial hex, casefolded requester, CSR SHA-256, SPKI SHA-256
  of keys revoked for keyCompromise), sharded by its hash.
* ``queue`` — the IDs of the queued requests, keyed by ID. A shard whose
  requests were all decided stays behind, empty (392 files at 100,000
  certificates, one queued request), so meta doc 4 counts the entries of
  each non-empty queue shard and a read of the queue opens only those.
* ``outbox`` — notifications waiting for delivery, keyed by entry ID.
* ``refusals`` — refused submissions in a ring of ``REFUSALS_KEPT`` slots
  (``REFUSAL_SHARD_SIZE`` a shard), with the next sequence number and the
  ring's size in ``head``: a flood overwrites the oldest, never grows the files.
* ``meta`` — doc 1: counters; doc 2: configuration set at ``init``; doc 3:
  the indexes' bucket counts; doc 4: the queue shards' entry counts.

Beside them, ``crl/ca.crl`` (and ``.pem``) is the published CRL and
``crl/entries/<shard>.der`` the CRL entries of each ``revoked`` shard, kept
encoded so that publishing does not re-encode every entry. How the files are
committed is in ``files.py``. This is the only module that imports TinyDB.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from tinydb import TinyDB
from tinydb.storages import Storage
from tinydb.table import Document, Table

from tui_ca.engine.store import listing_files, protocol
from tui_ca.engine.store.files import ShardFiles, Transaction, View, _ShardOwner, copy_tree, damaged
from tui_ca.engine.store.protocol import (
    CRL_DER_BLOB,
    CRL_PEM_BLOB,
    META_DEFAULTS,
    ROOT_CRL_DER_BLOB,
    ROOT_CRL_PEM_BLOB,
    Pause,
)

T = TypeVar("T")
# Records per shard for collections keyed by number. Small enough that
# rewriting one shard costs about a millisecond, large enough that 100,000
# certificates fit in a few hundred files.
ID_SHARD_SIZE = 256
# Buckets for string-keyed indexes, at first. A bulk approval of 200 touches a
# shard of each index per distinct bucket, so fewer buckets mean fewer files
# per commit (bench/: 256 buckets made ~280 index files of a 475-file commit).
# But every commit rewrites the buckets it touches whole, so a bucket must not
# grow with the store: an index doubles its buckets once it holds more than
# ENTRIES_PER_BUCKET a bucket on average (bench/: with 64 fixed buckets an
# approval at 100,000 certificates rewrote ~300 KB of index, 2.6x the latency
# at 1,000).
KEY_BUCKETS = 64
# Refusal records are larger than most and all new ones land in one shard:
# 64 a shard keeps that rewrite near 40 kB even with every field at its cap.
REFUSAL_SHARD_SIZE = 64
_REFUSAL_HEAD = "head"
ENTRIES_PER_BUCKET = 256
# Meta doc 3: per index, [buckets, entries]. Homes from before it have 64
# buckets; their first write counts the entries and splits (one commit).
_LAYOUT_DOC = 3
_INDEXES = ("serials", "requesters", "csrs", "compromised")
CRL_ENTRIES_DIR = "crl/entries"
_BLOB_FILES = {CRL_DER_BLOB: "crl/ca.crl", CRL_PEM_BLOB: "crl/ca.crl.pem",
               ROOT_CRL_DER_BLOB: "crl/root.crl", ROOT_CRL_PEM_BLOB: "crl/root.crl.pem"}  # fmt: skip
# Set in the meta record once the "queue" index holds every queued request.
_QUEUE_INDEXED = "queue_indexed"
# Meta doc 4: {"shards": {shard: entries}} for the queue shards that hold any,
# written by the commit that changes them. Homes from before it walk every
# queue shard until their next commit builds it.
_QUEUE_SHARDS_DOC = 4
_BLOB_MODES = {CRL_DER_BLOB: 0o644, CRL_PEM_BLOB: 0o644, ROOT_CRL_DER_BLOB: 0o644, ROOT_CRL_PEM_BLOB: 0o644}


def id_shard(number: int) -> str:
    """Shard name for a numeric key (Certificate ID, audit sequence)."""
    return f"{number // ID_SHARD_SIZE:05d}"


def key_shard(key: str, buckets: int = KEY_BUCKETS) -> str:
    """Shard name for a string key (serial, requester, CSR hash, SPKI hash) among ``buckets``.

    Little-endian, so that with 64 buckets this is the first digest byte's
    bucket, as homes from before the split wrote; doubling the buckets sends
    each entry of bucket b to b or b + the old count, so a split only adds files.
    """
    import hashlib  # here: loading OpenSSL's digests costs a show by ID (no index lookup) ~5 ms of start-up

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return f"k{int.from_bytes(digest[:4], 'little') % buckets:02d}"


def index_slot(key: str) -> int:
    """Where an index entry lives in its shard: a doc_id from the key's hash.

    A search would scan the whole bucket (about 1,600 entries at 100,000
    certificates; bench/ seeding slowed from 2 to 16 ms a certificate); a
    doc_id is one dict lookup. Bytes 8-13 of the digest are independent of the
    bucket byte; entries are never deleted, so linear probing stays correct.
    """
    import hashlib

    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[8:14], "big") + 1


class _ShardStorage(Storage):
    """TinyDB storage over one shard of a transaction (or a read-only view)."""

    def __init__(self, owner: _ShardOwner, path: Path) -> None:
        self._owner = owner
        self._path = path

    def read(self) -> dict[str, Any] | None:
        return self._owner.shard_data(self._path)

    def write(self, data: dict[str, Any]) -> None:
        self._owner.stage_shard(self._path, data)


class _IntKeyed(MutableMapping):
    """A staged shard's documents (str ids) as TinyDB's updaters expect them (int ids).

    The staged shard shares its documents with the process's cache
    (files.Transaction.shard_data copies only the tables); an updater changes
    a document in place, so it gets a private copy, which takes the shared
    one's place in the staged shard.
    """

    def __init__(self, raw: dict[str, Any]) -> None:
        self._raw = raw

    def __contains__(self, doc_id: object) -> bool:
        return str(doc_id) in self._raw

    def __getitem__(self, doc_id: int) -> Any:
        key = str(doc_id)
        doc = self._raw[key] = dict(self._raw[key])
        return doc

    def __setitem__(self, doc_id: int, doc: Any) -> None:
        self._raw[str(doc_id)] = doc

    def __delitem__(self, doc_id: int) -> None:
        del self._raw[str(doc_id)]

    def __iter__(self) -> Iterator[int]:
        return (int(key) for key in self._raw)

    def __len__(self) -> int:
        return len(self._raw)


class _ShardTable(Table):
    """A Table whose writes change the staged shard in place.

    Stock ``Table._update_table`` re-keys the whole table twice per write
    (str -> int -> str): a third of a 200-certificate approval in the
    profiler. A transaction's shards are already private copies, so the
    updater may work on them directly.
    """

    def _update_table(self, updater: Callable[[Any], None]) -> None:
        owner = self._storage._owner  # type: ignore[attr-defined]
        if not owner.writable:
            raise RuntimeError("read-only view: open a transaction to write")
        tables = self._storage.read() or {}
        updater(_IntKeyed(tables.setdefault(self.name, {})))
        self._storage.write(tables)
        self.clear_cache()


class _ShardDB(TinyDB):
    table_class = _ShardTable


class _Records:
    """The record protocol over a files-layer view or transaction (mixed into both)."""

    files: ShardFiles

    # -------------------------------------------------------------- plumbing

    def table(self, collection: str, shard: str) -> Table:
        path = self.files.shard_path(collection, shard)
        return _ShardDB(path, storage=lambda p: _ShardStorage(self, p)).table(collection)  # type: ignore[arg-type]

    def _get(self, collection: str, number: int) -> dict | None:
        data = self.shard_data(self.files.shard_path(collection, id_shard(number)))  # type: ignore[attr-defined]
        if not data:
            return None
        return data.get(collection, {}).get(str(number))

    def _stored_layout(self, name: str) -> list[int] | None:
        """An index's [buckets, entries] as committed (None: a home from before the layout record)."""
        entry = (self._meta_doc(_LAYOUT_DOC) or {}).get(name)
        if entry is None:
            return None
        ok = isinstance(entry, list) and len(entry) == 2 and all(type(n) is int and n >= 0 for n in entry)
        if not ok or entry[0] < KEY_BUCKETS or entry[0] & (entry[0] - 1):
            raise damaged(self.files.shard_path("meta", "meta"), f"the layout of index {name!r} is {entry!r}")
        return entry

    def _buckets(self, name: str) -> int:
        entry = self._stored_layout(name)
        return entry[0] if entry else KEY_BUCKETS

    def _index_get(self, name: str, key: str) -> dict | None:
        path = self.files.shard_path(name, key_shard(key, self._buckets(name)))
        data = self.shard_data(path)  # type: ignore[attr-defined]
        docs = data.get(name, {}) if data else {}
        slot = index_slot(key)
        while (doc := docs.get(str(slot))) is not None:
            if doc.get("k") == key:
                return doc
            slot += 1
        return None

    def _iter(self, collection: str, *, newest_first: bool = False, pause: Pause | None = None,
              shards: list[str] | None = None) -> Iterator[dict]:  # fmt: skip
        if shards is None:
            shards = self.shards(collection)  # type: ignore[attr-defined]
        for shard in reversed(shards) if newest_first else shards:
            data = self.shard_data(self.files.shard_path(collection, shard)) or {}  # type: ignore[attr-defined]
            docs = data.get(collection, {})
            for key in sorted(docs, key=int, reverse=newest_first):
                yield docs[key]
            if pause is not None:
                pause()

    # --------------------------------------------------------------- reading

    def meta(self) -> dict:
        doc = self._meta_doc(1)
        return {**META_DEFAULTS, **doc} if doc else dict(META_DEFAULTS)

    def config(self) -> dict:
        doc = self._meta_doc(2)
        return dict(doc) if doc else {}

    def _meta_doc(self, number: int) -> dict | None:
        data = self.shard_data(self.files.shard_path("meta", "meta"))  # type: ignore[attr-defined]
        return data.get("meta", {}).get(str(number)) if data else None

    def get_request(self, request_id: int) -> dict | None:
        return self._get("requests", request_id)

    def get_certificate(self, cert_id: int) -> dict | None:
        return self._get("certs", cert_id)

    def get_csr_pem(self, request_id: int) -> str | None:
        doc = self._get("csr_pems", request_id)
        return None if doc is None else doc["pem"]

    def get_cert_pem(self, cert_id: int) -> str | None:
        doc = self._get("cert_pems", cert_id)
        return None if doc is None else doc["pem"]

    def find_requester(self, name: str) -> dict | None:
        doc = self._index_get("requesters", name.casefold())
        return None if doc is None else {"name": doc.get("name", name), "queued": doc.get("queued"),
                                         "active": doc.get("active")}  # fmt: skip

    def _find_id(self, index: str, key: str) -> int | None:
        doc = self._index_get(index, key)
        return None if doc is None else doc["id"]

    def find_serial(self, serial: int) -> int | None:
        return self._find_id("serials", format(serial, "x"))

    def find_csr(self, csr_sha256: str) -> int | None:
        return self._find_id("csrs", csr_sha256)

    def find_compromised(self, spki_sha256: str) -> int | None:
        return self._find_id("compromised", spki_sha256)

    def iter_requests(self, *, status: str | None = None, newest_first: bool = False,
                      pause: Pause | None = None) -> Iterator[dict]:  # fmt: skip
        if status == "queued" and not newest_first and self.meta().get(_QUEUE_INDEXED):
            # The queue index: a start-up's expiry check reads the few queued
            # requests, not every request ever made.
            for entry in self._iter("queue", pause=pause, shards=self._queue_shards()):
                doc = self.get_request(entry["id"])
                if doc is not None and doc["status"] == status:
                    yield doc
            return
        for doc in self._iter("requests", newest_first=newest_first, pause=pause):
            if status is None or doc["status"] == status:
                yield doc

    def _queue_counts(self, generation: object = None) -> dict[str, int] | None:
        """The entry count of each non-empty queue shard, if recorded as of ``generation`` (default: meta's).

        None for a home from before the record, and for a record that a commit
        by a program that does not keep it (an older tui-ca) left behind.
        """
        if generation is None:
            generation = self.meta()["generation"]
        return _recorded_queue_counts(self.files, self._meta_doc(_QUEUE_SHARDS_DOC), generation)

    def _queue_shards(self) -> list[str] | None:
        """The queue shards worth opening: the recorded non-empty ones (None: every shard)."""
        counts = self._queue_counts()
        if counts is None:
            return None
        names = set(counts)
        if isinstance(self, Transaction):
            # Shards this transaction changed are counted only at its commit.
            names.update(self.dirty_shards("queue"))
        return sorted(names)

    def queue_record_mismatches(self) -> Iterator[str]:
        """Where the record of non-empty queue shards differs from the shards (``tui-ca check``)."""
        recorded = self._queue_counts()
        if recorded is None:
            return
        actual = {}
        for shard in self.shards("queue"):  # type: ignore[attr-defined]
            data = self.shard_data(self.files.shard_path("queue", shard)) or {}  # type: ignore[attr-defined]
            if entries := len(data.get("queue", {})):
                actual[shard] = entries
        for shard in sorted(recorded.keys() | actual.keys()):
            if recorded.get(shard, 0) != actual.get(shard, 0):
                yield (f"queue shards: the record says queue shard {shard} holds {recorded.get(shard, 0)}, "
                       f"it holds {actual.get(shard, 0)}")  # fmt: skip

    def iter_certificates(self, *, pause: Pause | None = None) -> Iterator[dict]:
        return self._iter("certs", pause=pause)

    def listing_bodies(self, kind: str, rows_only: bool = False) -> Iterator[str]:
        """Listing bodies (``engine/listing_rows.py``) of every record of a kind, in ID order (or their rows part)."""
        return listing_files.bodies(self, kind, rows_only)

    def listing_mismatches(self) -> Iterator[Path]:
        """Kept listing bodies that hold for their shard but differ from what its records render."""
        return listing_files.mismatches(self)

    def iter_audit(self) -> Iterator[dict]:
        # Sorted by the stored field, not the doc_id: a hand-edited log must
        # show up as a broken chain in verify_chain, not be silently re-ordered.
        docs = list(self._iter("audit"))

        def seq(doc: dict) -> int:
            value = doc.get("seq")
            return value if isinstance(value, int) else 0

        return iter(sorted(docs, key=seq))

    def iter_revoked(self) -> Iterator[dict]:
        for shard in self.shards("revoked"):  # type: ignore[attr-defined]
            data = self.shard_data(self.files.shard_path("revoked", shard)) or {}  # type: ignore[attr-defined]
            docs = data.get("revoked", {})
            for key in sorted(docs, key=int):
                yield {"id": int(key), **docs[key]}

    def iter_outbox(self) -> Iterator[dict]:
        return self._iter("outbox")

    def _refusal_head(self) -> dict:
        data = self.shard_data(self.files.shard_path("refusals", _REFUSAL_HEAD))  # type: ignore[attr-defined]
        head = data.get("refusals", {}).get("0") if data else None
        return head or {"next": 1, "size": protocol.REFUSALS_KEPT}

    def iter_refusals(self) -> Iterator[dict]:
        head = self._refusal_head()
        size = head["size"]
        for seq in range(head["next"] - 1, max(0, head["next"] - 1 - size), -1):
            slot = seq % size
            path = self.files.shard_path("refusals", f"r{slot // REFUSAL_SHARD_SIZE:04d}")
            data = self.shard_data(path)  # type: ignore[attr-defined]
            doc = data.get("refusals", {}).get(str(slot + 1)) if data else None
            if doc is not None and doc.get("seq") == seq:
                yield doc

    def get_blob(self, name: str) -> bytes | None:
        try:
            return self.files.read_blob(_BLOB_FILES[name])
        except FileNotFoundError:
            return None

    # Each revoked shard's CRL entries are kept encoded beside it
    # (crl/entries/<shard>.der: a 4-byte count, then the DER entries), written
    # by every transaction that changes the shard, so a fresh process publishes
    # 100,000 entries by reading a few hundred small files instead of parsing
    # and re-encoding every record (bench/: cold publish was 1.2-2x openssl).

    def _encode_revoked_shard(self, shard: str) -> bytes:
        from tui_ca.engine.crl import encode_entry  # cryptography: not for a process that only lists

        data = self.shard_data(self.files.shard_path("revoked", shard)) or {}  # type: ignore[attr-defined]
        docs = data.get("revoked", {}).values()
        body = b"".join(
            encode_entry(int(doc["serial"], 16), datetime.fromisoformat(doc["at"]), doc["code"]) for doc in docs
        )
        return len(docs).to_bytes(4, "big") + body

    def _entries_blob(self, shard: str) -> bytes:
        relpath = f"{CRL_ENTRIES_DIR}/{shard}.der"
        try:
            return self.files.read_blob(relpath)
        except FileNotFoundError:
            blob = self._encode_revoked_shard(shard)
            if isinstance(self, Transaction):
                # A home written before these files existed heals on its next publish.
                self.write_blob(relpath, blob)
            return blob

    def crl_entries(self) -> tuple[list[bytes], int]:
        chunks: list[bytes] = []
        total = 0
        for shard in self.shards("revoked"):  # type: ignore[attr-defined]
            dirty = isinstance(self, Transaction) and self.is_dirty(self.files.shard_path("revoked", shard))
            blob = self._encode_revoked_shard(shard) if dirty else self._entries_blob(shard)
            total += int.from_bytes(blob[:4], "big")
            chunks.append(blob[4:])
        return chunks, total


class _TinyView(_Records, View):
    def __init__(self, files: ShardFiles, keep: bool = True) -> None:
        View.__init__(self, files)
        self.files = files
        self._keep = keep

    def shard_data(self, path: Path) -> dict[str, Any] | None:
        return self.files.load(path, self._keep)


class _TinyTransaction(_Records, Transaction):
    def __init__(self, files: ShardFiles) -> None:
        Transaction.__init__(self, files)
        self.files = files
        self._layouts: dict[str, list[int]] | None = None
        self._list_everything: set[str] = set()
        # Always: a commit that folds the change log writes the bodies of the shards it folds.
        self.before_commit("listing", _write_listing)

    def _put(self, collection: str, number: int, doc: dict) -> None:
        self.table(collection, id_shard(number)).upsert(Document(doc, doc_id=number))

    def put_meta(self, meta: dict) -> None:
        if not meta.get(_QUEUE_INDEXED):
            # Homes from before the queue index get it on their first commit.
            for doc in self._iter("requests"):
                if doc["status"] == "queued":
                    self._index_queue(doc)
            meta = {**meta, _QUEUE_INDEXED: True}
        # Stamped with each generation, so that a commit by a program that does not keep the record
        # (an older tui-ca) leaves it stale, and readers walk every shard until the next commit here.
        self.before_commit("queue-shards", _write_queue_shards)
        for collection, (_, _, listed) in listing_files.LISTINGS.items():
            if not meta.get(listed):
                # Homes from before a collection's listing bodies get them all on their first commit.
                self._list_everything.add(collection)
                self.before_commit("listing", _write_listing)
                meta = {**meta, listed: True}
        self.table("meta", "meta").upsert(Document(meta, doc_id=1))

    def _index_queue(self, doc: dict) -> None:
        queue = self.table("queue", id_shard(doc["id"]))
        if doc["status"] == "queued":
            queue.upsert(Document({"id": doc["id"]}, doc_id=doc["id"]))
        elif queue.contains(doc_id=doc["id"]):
            queue.remove(doc_ids=[doc["id"]])
        else:
            return
        self.before_commit("queue-shards", _write_queue_shards)

    def put_config(self, config: dict) -> None:
        self.table("meta", "meta").upsert(Document(config, doc_id=2))

    def put_request(self, doc: dict) -> None:
        self._put("requests", doc["id"], doc)
        self._index_queue(doc)
        self.before_commit("listing", _write_listing)

    def put_certificate(self, doc: dict) -> None:
        self._put("certs", doc["id"], doc)
        self.before_commit("listing", _write_listing)

    def put_csr_pem(self, request_id: int, pem: str) -> None:
        self._put("csr_pems", request_id, {"pem": pem})

    def put_cert_pem(self, cert_id: int, pem: str) -> None:
        self._put("cert_pems", cert_id, {"pem": pem})

    def _index_put(self, name: str, key: str, value: dict) -> None:
        layout = self._index_layout(name)
        table = self.table(name, key_shard(key, layout[0]))
        value = {**value, "k": key}
        slot = index_slot(key)
        while (doc := table.get(doc_id=slot)) is not None and doc.get("k") != key:
            slot += 1
        if doc is None:
            table.insert(Document(value, doc_id=slot))
            layout[1] += 1
            if layout[1] > ENTRIES_PER_BUCKET * layout[0]:
                self._split(name, layout)
        else:
            table.update(value, doc_ids=[slot])

    def _index_layout(self, name: str) -> list[int]:
        """[buckets, entries] of an index, as this transaction will commit it."""
        layouts = self._layouts
        if layouts is None:
            layouts = self._layouts = {}
            for index in _INDEXES:
                if (entry := self._stored_layout(index)) is not None:
                    layouts[index] = list(entry)
            self.before_commit("index-layout", _write_layouts)
        if name not in layouts:
            # A home from before the layout record: 64 buckets, entries counted once.
            entries = sum(len((self.shard_data(self.files.shard_path(name, shard)) or {}).get(name, {}))
                          for shard in self.shards(name))  # fmt: skip
            layouts[name] = [KEY_BUCKETS, entries]
            while layouts[name][1] > ENTRIES_PER_BUCKET * layouts[name][0]:
                self._split(name, layouts[name])
        return layouts[name]

    def _split(self, name: str, layout: list[int]) -> None:
        """Double an index's buckets: each bucket b is rebuilt as b and b + the old count.

        Rebuilt rather than moved entry by entry, so that linear probing finds
        every entry again (a stayer may sit past a slot freed by one that left).
        """
        old = layout[0]
        new = old * 2
        for bucket in range(old):
            path = self.files.shard_path(name, f"k{bucket:02d}")
            data = self.shard_data(path)
            halves: tuple[dict, dict] = ({}, {})
            for doc in (data or {}).get(name, {}).values():
                key = doc["k"]
                half = halves[int(key_shard(key, new) != f"k{bucket:02d}")]
                slot = index_slot(key)
                while str(slot) in half:
                    slot += 1
                half[str(slot)] = doc
            if data is not None:
                self.stage_shard(path, {name: halves[0]})
            if halves[1]:
                self.stage_shard(self.files.shard_path(name, f"k{bucket + old:02d}"), {name: halves[1]})
        layout[0] = new

    def put_requester(self, name: str, entry: dict) -> None:
        self._index_put("requesters", name.casefold(), entry)

    def put_serial(self, serial: int, cert_id: int) -> None:
        self._index_put("serials", format(serial, "x"), {"id": cert_id})

    def put_csr(self, csr_sha256: str, request_id: int) -> None:
        self._index_put("csrs", csr_sha256, {"id": request_id})

    def put_compromised(self, spki_sha256: str, cert_id: int) -> None:
        self._index_put("compromised", spki_sha256, {"id": cert_id})

    def append_audit(self, doc: dict) -> None:
        self.table("audit", id_shard(doc["seq"])).insert(Document(doc, doc_id=doc["seq"]))

    def put_revoked(self, entry: dict) -> None:
        cert_id = entry["id"]
        self._put("revoked", cert_id, {"serial": entry["serial"], "at": entry["at"], "code": entry["code"]})
        self.before_commit("crl-entries", _refresh_crl_entries)

    def remove_revoked(self, cert_id: int) -> None:
        table = self.table("revoked", id_shard(cert_id))
        if table.contains(doc_id=cert_id):
            table.remove(doc_ids=[cert_id])
        self.before_commit("crl-entries", _refresh_crl_entries)

    def put_blob(self, name: str, data: bytes) -> None:
        self.write_blob(_BLOB_FILES[name], data, _BLOB_MODES[name])

    def put_outbox(self, doc: dict) -> None:
        self._put("outbox", doc["id"], doc)

    def delete_outbox(self, entry_id: int) -> None:
        self.table("outbox", id_shard(entry_id)).remove(doc_ids=[entry_id])

    def append_refusal(self, doc: dict) -> None:
        head = self._refusal_head()
        seq, size = head["next"], head["size"]
        slot = seq % size
        ring = self.table("refusals", f"r{slot // REFUSAL_SHARD_SIZE:04d}")
        ring.upsert(Document({**doc, "seq": seq}, doc_id=slot + 1))
        self.table("refusals", _REFUSAL_HEAD).upsert(Document({"next": seq + 1, "size": size}, doc_id=0))


def _write_listing(txn: Transaction) -> None:
    assert isinstance(txn, _TinyTransaction)
    listing_files.write_bodies(txn, txn._list_everything)


def _recorded_queue_counts(files: ShardFiles, doc: dict | None, generation: object) -> dict[str, int] | None:
    """The queue shards' record ``doc`` if it is as of ``generation``; damage refused."""
    if doc is None:
        return None
    counts = doc.get("shards")
    ok = isinstance(counts, dict) and all(
        isinstance(name, str) and name.isdigit() and type(n) is int and n > 0 for name, n in counts.items()
    )
    if not ok:
        raise damaged(files.shard_path("meta", "meta"), f"the queue shards' record is {doc!r}")
    return counts if doc.get("generation") == generation else None


def _write_queue_shards(txn: Transaction) -> None:
    """Count the queue shards this commit changed (every shard, without a record of the last commit)."""
    assert isinstance(txn, _TinyTransaction)
    # The committed record, not the one this transaction may already have
    # re-stamped: a commit that folds the change log runs this twice, and the
    # second run would otherwise count all ~400 queue shards of 100,000 requests.
    committed = (txn.files.load(txn.files.shard_path("meta", "meta")) or {}).get("meta", {})
    generation = (committed.get("1") or {}).get("generation", META_DEFAULTS["generation"])
    stored = _recorded_queue_counts(txn.files, committed.get(str(_QUEUE_SHARDS_DOC)), generation)
    counts = dict(stored) if stored is not None else {}
    changed = txn.shards("queue") if stored is None else txn.dirty_shards("queue")
    for shard in changed:
        path = txn.files.shard_path("queue", shard)
        entries = len((txn.shard_data(path) or {}).get("queue", {}))
        if entries:
            counts[shard] = entries
        else:
            counts.pop(shard, None)
    record = {"generation": txn.meta()["generation"], "shards": dict(sorted(counts.items()))}
    if record != txn._meta_doc(_QUEUE_SHARDS_DOC):
        txn.table("meta", "meta").upsert(Document(record, doc_id=_QUEUE_SHARDS_DOC))


def _write_layouts(txn: Transaction) -> None:
    assert isinstance(txn, _TinyTransaction) and txn._layouts is not None
    stored = txn._meta_doc(_LAYOUT_DOC) or {}
    if any(stored.get(name) != layout for name, layout in txn._layouts.items()):
        txn.table("meta", "meta").upsert(Document({**stored, **txn._layouts}, doc_id=_LAYOUT_DOC))


def _refresh_crl_entries(txn: Transaction) -> None:
    assert isinstance(txn, _TinyTransaction)
    for shard in txn.dirty_shards("revoked"):
        txn.write_blob(f"{CRL_ENTRIES_DIR}/{shard}.der", txn._encode_revoked_shard(shard))


# Fields without which a record of a collection is not one the engine wrote.
_REQUIRED = {
    "requests": ("id", "status", "requester", "at"), "certs": ("id", "serial", "requester", "na", "spki"),
    "csr_pems": ("pem",), "cert_pems": ("pem",), "revoked": ("serial", "at", "code"), "queue": ("id",),
    "serials": ("k", "id"), "csrs": ("k", "id"), "compromised": ("k", "id"), "requesters": ("k",),
}  # fmt: skip
_NUMBERED = ("requests", "certs", "queue")


def validate_shard(path: Path, data: Any) -> str | None:
    """Why a parsed shard is not what a commit writes, or None.

    Only the shape is checked here (cheap, on every parse), record by record,
    so the change log's records laid over a shard are checked by themselves
    (files.Validator); whether records agree with each other is ``tui-ca
    check``'s work. The audit log's records are left to its hash chain, which
    names an edited record precisely.
    """
    collection = path.parent.name
    if not isinstance(data, dict):
        return f"holds {type(data).__name__ if data is not None else 'null'} instead of a table"
    if set(data) != {collection}:
        return f"holds tables {sorted(data)!r} instead of {collection!r}" if data else "holds no table"
    docs = data[collection]
    if not isinstance(docs, dict):
        return f"its table is {type(docs).__name__}, not records"
    required = frozenset(() if collection == "audit" else _REQUIRED.get(collection, ()))
    numbered = collection in _NUMBERED
    for key, doc in docs.items():
        if type(doc) is not dict or not key.isdigit():
            return f"entry {key!r} is not a record"
        if not required <= doc.keys():
            return f"record {key} lacks {', '.join(sorted(required - doc.keys()))}"
        if numbered and doc["id"] != int(key):
            return f"record {key} says it is {doc['id']!r}"
    return None


class TinyDBStore:
    """The record store in a home's ``db/`` folder (see the module docstring)."""

    # A stat of the meta shard and one of the change log (CAReader.change_token_is_local).
    change_token_is_local = True

    def __init__(self, home: Path | str) -> None:
        self.home = Path(home)
        self.files = ShardFiles(self.home, validate_shard)

    @contextmanager
    def transaction(self) -> Iterator[_TinyTransaction]:
        with self.files.transaction(lambda files: _TinyTransaction(files)) as txn:
            yield txn  # type: ignore[misc]

    def read(self, read: Callable[[_TinyView], T]) -> T:
        return self.files.read_consistently(lambda: read(_TinyView(self.files)))

    def view(self, *, keep: bool = True) -> _TinyView:
        return _TinyView(self.files, keep)

    home_entries = frozenset({"db", "crl", ".tmp", ".lock"})

    def backup_to(self, dest_home: Path) -> None:
        # Under the caller's transaction the journal is finished and no commit
        # can land, so a copy of the files is one committed generation.
        for top in ("db", "crl"):
            copy_tree(self.home / top, Path(dest_home) / top)

    def change_token(self) -> object:
        # Every commit rewrites the meta shard or appends to the change log.
        return (self.files.signature(self.files.shard_path("meta", "meta")), self.files.change_log.signature())

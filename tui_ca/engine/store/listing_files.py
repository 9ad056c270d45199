"""The TinyDB backend's listing bodies: one file beside each ``certs`` and each ``requests`` shard.

``db/listing/<shard>.txt`` for a certs shard (where the first bodies were
kept) and ``db/listing/requests/<shard>.txt`` for a requests shard. Each file
is a header line, then a listing body (``engine/listing_rows.py``) of the
records of one shard. The header fingerprints the shard file the body was made
from (length and CRC-32 of its bytes), the body, and the body's head and rows
alone (what a table needs, read without the JSON), so a listing trusts a body
only while the shard is byte for byte the one it describes: a shard changed by
hand, restored from elsewhere, or without a body (a home from before these
files) is listed from its records instead, and its damage is refused as any
read refuses it. The commit that changes a shard writes its body too (the same
journal, so both land or neither); a home from before them gets every body of
the collection in its first commit after the upgrade.
"""

from __future__ import annotations

import errno
import json
import os
import zlib
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tui_ca.engine import listing_rows
from tui_ca.engine.store.files import Transaction, damaged, unavailable

# Store collection -> (listing kind, folder of its bodies, meta flag set once every shard has its body).
LISTINGS = {
    "certs": (listing_rows.CERTIFICATES, "db/listing", "listing_bodies"),
    "requests": (listing_rows.REQUESTS, "db/listing/requests", "request_listing_bodies"),
}
_COLLECTION = {kind.name: collection for collection, (kind, _, _) in LISTINGS.items()}
# In each file's header: a body of another version is made again, never read.
_VERSION = 2
_HEADER_MAX = 4096


def _fingerprint(data: bytes | memoryview) -> list[int]:
    return [len(data), zlib.crc32(data)]


def _body_path(collection: str, shard: str) -> str:
    return f"{LISTINGS[collection][1]}/{shard}.txt"


def _shard_relpath(collection: str, shard: str) -> str:
    return f"db/{collection}/{shard}.json"


# The rendered rows of the shards this process committed last (per shard file).
_MEMOS: OrderedDict[Path, listing_rows.Memo] = OrderedDict()
_MEMO_SHARDS = 4


def _memo(path: Path) -> listing_rows.Memo:
    memo = _MEMOS.pop(path, None)
    _MEMOS[path] = memo = {} if memo is None else memo
    while len(_MEMOS) > _MEMO_SHARDS:
        _MEMOS.popitem(last=False)
    return memo


def _render(records: Any, collection: str, shard: str, *, unchanged: bool = False, memo: bool = False) -> str:
    path = records.files.shard_path(collection, shard)
    # A shard the transaction leaves alone is read as it is on disk, neither
    # copied into the transaction nor kept (a migration reads all of them).
    data = (records.files.load(path, keep=False) if unchanged else records.shard_data(path)) or {}
    docs = data.get(collection, {})
    kind = LISTINGS[collection][0]
    kept = _memo(path) if memo else None
    if kept is not None and not kept:
        _seed(records, collection, shard, kept)
    return listing_rows.render(kind, (docs[key] for key in sorted(docs, key=int)), kept)


def _seed(records: Any, collection: str, shard: str, memo: listing_rows.Memo) -> None:
    """Fill a memo from the body kept for the shard as committed, if it holds.

    A process that commits once (``tui-ca approve``) then renders only the
    records its commit changed, not the whole shard (bench/: 11 ms of CPU for
    a full requests shard).
    """
    body = _stored_body(records, collection, shard)
    if body is None:
        return
    committed = (records.files.load(records.files.shard_path(collection, shard), keep=False) or {}).get(collection, {})
    for record_id, row, text in listing_rows.entries(body):
        doc = committed.get(str(record_id))
        if doc is not None:
            memo[record_id] = (dict(doc), row, text)


def _stored_body(records: Any, collection: str, shard: str, rows_only: bool = False) -> str | None:
    """The body kept for a shard (or its rows part), if it still describes the shard file exactly."""
    files = records.files
    if files.has_pending(files.shard_path(collection, shard)):
        return None  # the change log holds newer records than the shard file the body describes
    path = files.home / _body_path(collection, shard)
    files.check_folder(path.parent)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise damaged(path, "a symbolic link; the store never follows it") from None
        raise unavailable(exc, "read the store") from None
    with os.fdopen(fd, "rb") as handle:
        head = handle.readline(_HEADER_MAX)
        try:
            header = json.loads(head)
        except ValueError:
            return None
        # Fingerprinted in two parts, so that a table reads only the rows, not the JSON after them.
        part = header.get("rows" if rows_only else "body") if isinstance(header, dict) else None
        if header.get("v") != _VERSION or not (isinstance(part, list) and len(part) == 2 and type(part[0]) is int):
            return None
        body = handle.read(max(part[0], 0))
    try:
        raw = files.read_blob(_shard_relpath(collection, shard))
    except FileNotFoundError:
        return None
    if header.get("shard") != _fingerprint(raw) or _fingerprint(body) != part or not body.endswith(b"\n"):
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


def bodies(records: Any, kind: str, rows_only: bool = False) -> Iterator[str]:
    """The listing body of every shard of a kind's collection, in ID order (kept ones where they hold, else rendered).

    ``rows_only``: each body may end after its rows (``listing_rows.rows_part``).
    """
    collection = _COLLECTION[kind]
    dirty = records.is_dirty if isinstance(records, Transaction) else None
    for shard in records.shards(collection):
        path = records.files.shard_path(collection, shard)
        body = None if dirty is not None and dirty(path) else _stored_body(records, collection, shard, rows_only)
        yield body if body is not None else _render(records, collection, shard)


def mismatches(records: Any) -> Iterator[Path]:
    """Body files that hold for their shard file (fingerprints intact) but do not say what its records say."""
    for collection in LISTINGS:
        for shard in records.shards(collection):
            kept = _stored_body(records, collection, shard)
            if kept is not None and kept != _render(records, collection, shard, unchanged=True):
                yield records.files.home / _body_path(collection, shard)


def write_bodies(txn: Transaction, everything: set[str]) -> None:
    """Before a commit: a new body for each shard it changes (for every shard of the collections in ``everything``)."""
    if txn.logging:
        return  # the shard files stay as they are; the fold that rewrites them writes their bodies
    records: Any = txn
    for collection in LISTINGS:
        # Only the changed shards, unless every body is due: listing the
        # folders and visiting each shard was O(store) per commit (bench/:
        # ~1.4 ms of an EST enrollment's commit at 100,000 certificates).
        shards = txn.shards(collection) if collection in everything else txn.dirty_shards(collection)
        for shard in shards:
            path = records.files.shard_path(collection, shard)
            dirty = txn.is_dirty(path)
            if dirty:
                raw = txn.payload(path)
            elif collection in everything and _stored_body(records, collection, shard) is None:
                raw = records.files.read_blob(_shard_relpath(collection, shard))
            else:
                continue
            text = _render(records, collection, shard, unchanged=not dirty, memo=dirty)
            body = text.encode("ascii")
            rows = listing_rows.rows_part(text).encode("ascii")
            header = {"v": _VERSION, "shard": _fingerprint(raw), "body": _fingerprint(body),
                      "rows": _fingerprint(rows)}  # fmt: skip
            # Not synced: a body a power loss tore or dropped fails its fingerprints
            # and is made again from the records, as for a home without bodies.
            txn.write_blob(_body_path(collection, shard), json.dumps(header).encode() + b"\n" + body, 0o600,
                           synced=False)  # fmt: skip

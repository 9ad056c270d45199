"""The TinyDB backend's listing bodies: ``db/listing/<shard>.txt`` beside each ``certs`` shard.

Each file is a header line, then a listing body (``engine/listing_rows.py``)
of the certificates of one shard. The header fingerprints the shard file the
body was made from (length and CRC-32 of its bytes), the body, and the body's
head and rows alone (what a table needs, read without the JSON), so a
listing trusts a body only while the shard is byte for byte the one it
describes: a shard changed by hand, restored from elsewhere, or without a body
(a home from before these files) is listed from its records instead, and its
damage is refused as any read refuses it. The commit that changes a shard
writes its body too (the same journal, so both land or neither); a home from
before them gets every body in its first commit after the upgrade.
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

LISTING_DIR = "db/listing"
# Set in the meta record once every certs shard has its body.
LISTED = "listing_bodies"
# In each file's header: a body of another version is made again, never read.
_VERSION = 2
_HEADER_MAX = 4096


def _fingerprint(data: bytes | memoryview) -> list[int]:
    return [len(data), zlib.crc32(data)]


def _body_path(shard: str) -> str:
    return f"{LISTING_DIR}/{shard}.txt"


def _shard_relpath(shard: str) -> str:
    return f"db/certs/{shard}.json"


# The rendered rows of the shards this process committed last (per shard file).
_MEMOS: OrderedDict[Path, listing_rows.Memo] = OrderedDict()
_MEMO_SHARDS = 4


def _memo(path: Path) -> listing_rows.Memo:
    memo = _MEMOS.pop(path, None)
    _MEMOS[path] = memo = {} if memo is None else memo
    while len(_MEMOS) > _MEMO_SHARDS:
        _MEMOS.popitem(last=False)
    return memo


def _render(records: Any, shard: str, *, unchanged: bool = False, memo: bool = False) -> str:
    path = records.files.shard_path("certs", shard)
    # A shard the transaction leaves alone is read as it is on disk, neither
    # copied into the transaction nor kept (a migration reads all of them).
    data = (records.files.load(path, keep=False) if unchanged else records.shard_data(path)) or {}
    docs = data.get("certs", {})
    return listing_rows.render((docs[key] for key in sorted(docs, key=int)), _memo(path) if memo else None)


def _stored_body(records: Any, shard: str, rows_only: bool = False) -> str | None:
    """The body kept for a shard (or its rows part), if it still describes the shard file exactly."""
    files = records.files
    path = files.home / _body_path(shard)
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
        raw = files.read_blob(_shard_relpath(shard))
    except FileNotFoundError:
        return None
    if header.get("shard") != _fingerprint(raw) or _fingerprint(body) != part or not body.endswith(b"\n"):
        return None
    try:
        return body.decode("ascii")
    except UnicodeDecodeError:
        return None


def bodies(records: Any, rows_only: bool = False) -> Iterator[str]:
    """The listing body of every certs shard, in ID order (kept ones where they hold, else rendered).

    ``rows_only``: each body may end after its rows (``listing_rows.rows_part``).
    """
    dirty = records.is_dirty if isinstance(records, Transaction) else None
    for shard in records.shards("certs"):
        path = records.files.shard_path("certs", shard)
        body = None if dirty is not None and dirty(path) else _stored_body(records, shard, rows_only)
        yield body if body is not None else _render(records, shard)


def write_bodies(txn: Transaction, everything: bool) -> None:
    """Before a commit: a new body for each certs shard it changes (for every shard, ``everything``)."""
    records: Any = txn
    for shard in txn.shards("certs"):
        path = records.files.shard_path("certs", shard)
        if txn.is_dirty(path):
            raw = txn.payload(path)
        elif everything:
            if _stored_body(records, shard) is not None:
                continue
            raw = records.files.read_blob(_shard_relpath(shard))
        else:
            continue
        dirty = txn.is_dirty(path)
        text = _render(records, shard, unchanged=not dirty, memo=dirty)
        body = text.encode("ascii")
        rows = listing_rows.rows_part(text).encode("ascii")
        header = {"v": _VERSION, "shard": _fingerprint(raw), "body": _fingerprint(body), "rows": _fingerprint(rows)}
        txn.write_blob(_body_path(shard), json.dumps(header).encode() + b"\n" + body, 0o600)

"""The TinyDB backend's change log: small commits appended to one file, folded into the shards later.

A commit that rewrites its shards whole writes about 600 KB and waits for
three rounds of fsync at 100,000 certificates, for an EST enrollment that
changes about 3 KB of records. So a commit whose changes are small is instead
appended to ``db/changes.log`` as one record and made durable by one
fdatasync; the shard files stay as they were, and every reader lays the log's
records over the shards it loads (``files.py``). A commit that is large, that
publishes a file, or that would take the log past ``LOG_MAX`` is a journal
commit instead: it rewrites every shard the log touched and puts an empty log
in place, in the same journal, so both land or neither (a fold).

The file: a header line (JSON: the format and an epoch, new at every fold),
then one line per commit, ``<length> <crc32 as 8 hex digits> <JSON>``, whose
JSON maps ``collection/shard`` to ``{doc_id: document, or null if removed}``.
A last line without its newline, or whose length or checksum does not hold,
is a commit still being written, or one a crash tore before its fdatasync
returned (so it never reported success): readers stop before it, and the next
writer, under the lock, cuts it off. Anything wrong before the last line is
damage, and refused.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any, NamedTuple

from tui_ca.engine.store.protocol import StoreDamagedError

LOG_NAME = "changes.log"
_FORMAT = 1
# Past this many bytes of records the next commit folds the log into its
# shards. Every process that opens the store parses the log once (a one-shot
# ``show`` too), and ~256 KB is about 2 ms of JSON. At 100,000 certificates
# that is a fold every ~110 enrollments, rewriting ~200 shards (bench/README.md).
LOG_MAX = 256 << 10
# A commit with more than this much changed JSON is written to its shards
# (a bulk approval): the log is for the many small commits of intake.
COMMIT_MAX = 64 << 10
# Off (TUI_CA_CHANGE_LOG=off), every commit rewrites its shards through the
# journal: for tests of the journal's own mechanics, and for an admin who
# wants the shard files always current.
ENABLED = os.environ.get("TUI_CA_CHANGE_LOG", "on") != "off"
_KEY = re.compile(r"[a-z_]{1,32}/[a-z0-9]{1,16}")

_NOTHING: Mapping[Any, Any] = MappingProxyType({})
Changes = Mapping[str, Mapping[str, "dict | None"]]
"""``collection/shard`` -> {doc_id: document, or None if removed}."""
Decode = Callable[[bytes], Any]


def header(epoch: str | None = None) -> bytes:
    """The first line of a new, empty log."""
    return json.dumps({"tui-ca changes": _FORMAT, "epoch": epoch or secrets.token_hex(8)}).encode() + b"\n"


def encode_record(body: bytes) -> bytes:
    """One commit's line, from the JSON of its changes."""
    return b"%d %08x " % (len(body), zlib.crc32(body)) + body + b"\n"


class LogState(NamedTuple):
    """What one process has parsed of the log: never changed, replaced as the log grows.

    A NamedTuple, not a dataclass: ``dataclasses`` costs a one-shot ``show`` ~5 ms to import.
    """

    identity: tuple[int, int, int] | None = None
    """(inode, mtime_ns, size) of the file as parsed; None: no log."""
    head: bytes = b""
    """Its header line, whose epoch tells this log from a later one that got the same inode."""
    end: int = 0
    """Bytes of whole records parsed, header included."""
    changes: Changes = _NOTHING
    """Every record's changes laid over those of the records before it."""
    versions: Mapping[str, int] = _NOTHING
    """How many records touched each shard (a merged shard is kept per version)."""
    torn: bool = False
    """Bytes follow the last whole record: one being written, or torn by a crash."""

    @property
    def exists(self) -> bool:
        return self.identity is not None

    @property
    def inode(self) -> int | None:
        return None if self.identity is None else self.identity[0]


def _laid_over(changes: dict, versions: dict, batch: Changes) -> None:
    """One record's changes laid over those of the records before it (in place, on copies of the maps)."""
    for key, docs in batch.items():
        changes[key] = {**changes.get(key, {}), **docs}
        versions[key] = versions.get(key, 0) + 1


def _damaged(path: Path, why: str) -> StoreDamagedError:
    from tui_ca.engine.store.files import damaged  # the shared wording of a damaged store file

    return damaged(path, why)


def _checked_changes(path: Path, offset: int, changes: Any) -> dict[str, dict[str, dict | None]]:
    """A record's changes, refused unless they name shards and documents as a commit writes them."""
    ok = isinstance(changes, dict) and all(
        isinstance(key, str) and _KEY.fullmatch(key) and isinstance(docs, dict)
        and all(isinstance(doc_id, str) and doc_id.isdigit() and (doc is None or type(doc) is dict)
                for doc_id, doc in docs.items())
        for key, docs in changes.items()
    )  # fmt: skip
    if not ok:
        raise _damaged(path, f"the record at byte {offset} names no shards and documents a commit writes")
    return changes


def parse(path: Path, tail: bytes, previous: LogState, identity: tuple[int, int, int], decode: Decode) -> LogState:
    """The state once ``tail`` (the file's bytes from ``previous.end`` on) is laid over ``previous``."""
    base = previous.end
    changes: dict[str, Mapping[str, dict | None]] = dict(previous.changes)  # a copy: states are never changed
    versions = dict(previous.versions)
    at, head = 0, previous.head
    if base == 0:
        newline = tail.find(b"\n")
        try:
            fields = json.loads(tail[:newline]) if newline > 0 else None
        except ValueError:
            fields = None
        if not isinstance(fields, dict) or fields.get("tui-ca changes") != _FORMAT:
            raise _damaged(path, "its first line is not the header of a change log")
        at = newline + 1
        head = tail[:at]
    torn = False
    while at < len(tail):
        newline = tail.find(b"\n", at)
        record = _record_body(tail, at, newline)
        if record is None:
            if newline != -1 and newline + 1 < len(tail):
                raise _damaged(path, f"the record at byte {base + at} does not match its length and checksum")
            torn = True  # the last line: still being written, or torn by a crash before it was synced
            break
        try:
            batch = decode(record)
        except ValueError:
            raise _damaged(path, f"the record at byte {base + at} is not JSON") from None
        _laid_over(changes, versions, _checked_changes(path, base + at, batch))
        at = newline + 1
    return LogState(identity, head, base + at, changes, versions, torn)


def _record_body(raw: bytes, start: int, newline: int) -> bytes | None:
    """The JSON of the record line starting at ``start``, or None if it is not whole."""
    if newline == -1:
        return None
    line = raw[start:newline]
    length, _, rest = line.partition(b" ")
    crc, _, body = rest.partition(b" ")
    if not length.isdigit() or len(crc) != 8 or int(length) != len(body):
        return None
    try:
        if int(crc, 16) != zlib.crc32(body):
            return None
    except ValueError:
        return None
    return body


def _identity(stat: os.stat_result) -> tuple[int, int, int]:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


class ChangeLog:
    """The log of one home, as this process has read it; appended to only under the store's lock."""

    def __init__(self, path: Path, decode: Decode) -> None:
        self.path = path
        self._decode = decode
        self._state = LogState()

    def signature(self) -> tuple[int, int, int] | None:
        try:
            return _identity(os.lstat(self.path))
        except FileNotFoundError:
            return None

    def current(self) -> LogState:
        """The log as it is on disk now, parsing only what was appended since the last look."""
        state = self._state
        if state.exists and self.signature() == state.identity:
            return state  # one lstat: every shard load looks, and the log rarely changed since
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            if state.exists:
                state = self._state = LogState()
            return state
        except OSError as exc:
            from tui_ca.engine.store.files import unavailable

            raise unavailable(exc, "read the store") from None
        try:
            identity = _identity(os.fstat(fd))
            if identity == state.identity:
                return state
            # The same file grown, unless a fold put a new log in place that got the old one's inode.
            same_file = (state.inode == identity[0] and identity[2] >= state.end
                         and os.pread(fd, len(state.head), 0) == state.head)  # fmt: skip
            previous = state if same_file else LogState()
            # Only the tail: a reader of a growing log parses each record once.
            tail = _read_from(fd, previous.end, identity[2])
        finally:
            os.close(fd)
        state = self._state = parse(self.path, tail, previous, identity, self._decode)
        return state

    def repair(self) -> LogState:
        """Under the lock: cut off a record that a crash tore (it never reported success)."""
        state = self.current()
        if state.torn:
            fd = os.open(self.path, os.O_WRONLY | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, state.end)
                os.fsync(fd)
            finally:
                os.close(fd)
            self.forget()
            state = self.current()
        return state

    def append(self, state: LogState, changes: dict[str, dict[str, dict | None]], record: bytes) -> None:
        """Under the lock: add one commit's record and wait until it is on disk (the commit point).

        Opened for each commit, not kept: a descriptor open for writing would
        keep an admin from remounting the home read-only.
        """
        from tui_ca.engine.store.files import _write_all

        fd = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW)
        try:
            if os.fstat(fd).st_ino != state.inode or os.pread(fd, len(state.head), 0) != state.head:
                raise OSError(f"{self.path} was replaced during a commit")
            try:
                _write_all(fd, record)
                os.fdatasync(fd)
            except OSError:
                # Disk full, or an I/O error: the commit failed, so no part of it may stay
                # for a reader to see (or for the next writer to keep as a whole record).
                try:
                    os.ftruncate(fd, state.end)
                    os.fsync(fd)
                except OSError:
                    pass  # a torn tail is cut off by the next writer; a whole record stays, as a commit that landed
                self.forget()
                raise
            identity = _identity(os.fstat(fd))
        finally:
            os.close(fd)
        merged, versions = dict(state.changes), dict(state.versions)
        _laid_over(merged, versions, changes)
        self._state = LogState(identity, state.head, state.end + len(record), merged, versions)

    def forget(self) -> None:
        """The log was replaced (a fold): read it again at the next look."""
        self._state = LogState()


def _read_from(fd: int, offset: int, size: int) -> bytes:
    chunks, at = [], offset
    while at < size:
        chunk = os.pread(fd, size - at, at)
        if not chunk:
            break
        chunks.append(chunk)
        at += len(chunk)
    return b"".join(chunks)

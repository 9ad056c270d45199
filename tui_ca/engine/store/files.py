"""The TinyDB backend's files: JSON shard files, changed one transaction at a time.

This layer knows files and shards but not TinyDB; ``tinydb.py`` puts TinyDB
tables and the record protocol on top of it.

Why it looks like this (each point is a measured TinyDB trap, DESIGN §3):

* Stock ``JSONStorage`` overwrites in place, so a crash tears the file. Here
  every file is written to ``.tmp/``, fsynced, and renamed over the old one.
* A transaction usually changes several files (request, certificate, indexes,
  audit). A redo journal makes them land together: the new files are
  prepared first, then ``db/journal.json`` names them (the commit point), then
  they are renamed into place. Whoever takes the lock next finishes an
  interrupted commit or, with no journal, discards the leftovers.
* ``CachingMiddleware`` never sees other processes, and each ``Table`` caches
  its next id and query results. So a fresh ``TinyDB`` object is built for
  every shard in every transaction, over data re-validated inside the lock by
  the file's (inode, mtime, size) signature.
* TinyDB rewrites a whole table on every write (0.85 s per insert at 100,000
  records). Records are therefore spread over many small shard files, and a
  transaction rewrites only the shards it touched, so its cost does not grow
  with the size of the CA. Unchanged shards are never parsed twice.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from tui_ca.engine.errors import RuleError
from tui_ca.engine.folders import make_private_dirs

_JOURNAL = "journal.json"
# Rewritten by every commit: a lock-free reader compares its signature before
# and after reading to know whether a commit landed in between (a seqlock).
_GENERATION = "generation"
# Lock-free attempts before a reader falls back to a shared lock, so a reader
# always finishes even while writers commit back to back.
_READ_ATTEMPTS = 5
# Threads issuing fsyncs at commit; more than ~8 stopped helping (bench/).
_SYNC_THREADS = 8
_Signature = tuple[int, int, int]
T = TypeVar("T")


def _signature(stat: os.stat_result) -> _Signature:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def _make_folder(path: Path) -> None:
    """mkdir -p whose new entries are durable (each new folder's parent fsynced)."""
    if path.is_dir():
        return
    _make_folder(path.parent)
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        return
    os.chmod(path, 0o700)  # the umask applies to mkdir's mode (trust slice)
    _fsync_dir(path.parent)


def _write_durably(path: Path, payload: bytes, mode: int) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        _write_all(fd, payload)
        os.fsync(fd)
    finally:
        os.close(fd)


_pool_lock = threading.Lock()
_pool: Any = None
_pool_pid = 0


def _sync_pool() -> Any:
    """The process's one pool of fsync threads, made on first use (and again after a fork).

    A pool per commit cost about as much as the fsyncs it saved (bench/: 12 ms
    a commit with a new pool per phase, 5.7 ms with one kept pool).
    """
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            # Imported here: concurrent.futures pulls in logging, which every
            # one-shot CLI process would otherwise pay for at start-up.
            from concurrent.futures import ThreadPoolExecutor

            _pool, _pool_pid = (
                ThreadPoolExecutor(max_workers=_SYNC_THREADS, thread_name_prefix="tui-ca-sync"),
                os.getpid(),
            )
        return _pool


def _each(action: Callable[[Any], object], items: list) -> None:
    """Run ``action`` on every item, from a few threads when there are several.

    One after another, each fsync costs an ext4 journal commit (~4 ms here, 2 s
    for a 200-certificate approval) and each rename over an existing shard
    waits on the journal too; issued from a few threads they share commits
    (~0.4 ms a file; measured with bench/run.py --only bulk-approve). The
    commit order is unchanged: every write is durable before the journal is,
    and every rename is done before the journal goes.
    """
    if len(items) == 1:
        action(items[0])
        return
    list(_sync_pool().map(action, items))  # list() re-raises the first failure


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class _ShardOwner:
    """What a shard storage reads from and writes to (a transaction or a view)."""

    writable = False

    def shard_data(self, path: Path) -> dict[str, Any] | None:  # pragma: no cover
        raise NotImplementedError

    def stage_shard(self, path: Path, data: dict[str, Any]) -> None:  # pragma: no cover
        raise NotImplementedError


class ShardFiles:
    """All files of one CA home, with lock-free reads and locked transactions."""

    def __init__(self, home: Path) -> None:
        self.home = Path(home)
        self.db_dir = self.home / "db"
        self._tmp_dir = self.home / ".tmp"
        self._lock_path = self.home / ".lock"
        # path -> (signature, parsed data); shared by every view and transaction
        # of this process, and re-validated by signature before each use.
        self._cache: dict[Path, tuple[_Signature, dict[str, Any]]] = {}
        self._thread_lock = threading.Lock()
        self._reading = threading.local()
        self._paths: dict[tuple[str, str], Path] = {}

    # ----------------------------------------------------------------- paths

    def collection_dir(self, collection: str) -> Path:
        return self.db_dir / collection

    def shard_path(self, collection: str, shard: str) -> Path:
        # Memoised: building Paths (and hashing them as cache keys) was ~15% of
        # a bulk approval in the profiler; a Path caches its own hash.
        path = self._paths.get((collection, shard))
        if path is None:
            path = self._paths[(collection, shard)] = self.db_dir / collection / f"{shard}.json"
        return path

    def ensure_layout(self) -> None:
        """Create the home (0700) and the store's folders."""
        make_private_dirs(self.home)  # 0700 whatever the umask, parents too (trust slice)
        for folder in (self.db_dir, self._tmp_dir):
            make_private_dirs(folder)

    # --------------------------------------------------------------- reading

    def load(self, path: Path) -> dict[str, Any] | None:
        """Parsed content of a shard file, parsed again only if it changed."""
        try:
            fd = os.open(path, os.O_RDONLY)
        except FileNotFoundError:
            self._cache.pop(path, None)
            return None
        try:
            signature = _signature(os.fstat(fd))
            cached = self._cache.get(path)
            if cached is not None and cached[0] == signature:
                return cached[1]
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read()
        finally:
            os.close(fd)
        try:
            data = json.loads(raw) if raw else {}
        except ValueError:
            # Only a hand edit or a disk fault gets here (commits are atomic):
            # say which file, instead of a traceback from every command.
            raise RuleError(f"{path} is damaged (not valid JSON); restore it from a backup") from None
        self._cache[path] = (signature, data)
        return data

    def signature(self, path: Path) -> _Signature | None:
        try:
            return _signature(os.stat(path))
        except FileNotFoundError:
            return None

    def shard_names(self, collection: str) -> list[str]:
        """Existing shards of a collection, in name order."""
        folder = self.collection_dir(collection)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            return []
        return sorted(n[:-5] for n in names if n.endswith(".json"))

    def view(self) -> View:
        """A lock-free read view (each file is whole; see module docstring)."""
        return View(self)

    def read_blob(self, relpath: str) -> bytes:
        return (self.home / relpath).read_bytes()

    # ---------------------------------------------------------- transactions

    @contextmanager
    def transaction(self, make: Callable[[ShardFiles], Transaction] | None = None) -> Iterator[Transaction]:
        """Exclusive, inter-process: recover, yield, commit all or nothing."""
        self.ensure_layout()
        # flock is per open file description, so threads of one process also
        # need the thread lock to exclude each other.
        with self._thread_lock:
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                self._recover()
                txn = make(self) if make is not None else Transaction(self)
                yield txn
                txn.commit()
            finally:
                os.close(fd)  # closing releases the flock

    def read_consistently(self, read: Callable[[], T]) -> T:
        """Run a read of several files as if at one instant, without blocking writers.

        A commit renames its files one by one, so a plain lock-free reader can
        see half of it (a request approved, its certificate not yet there).
        Every commit rewrites ``db/generation`` and holds ``db/journal.json``
        while it renames; a read that started with no journal and ends with no
        journal and the same generation saw no commit land, so it stands.
        Otherwise it is retried, and after a few tries done under a shared lock.
        """
        if getattr(self._reading, "active", False):
            return read()  # nested in an outer consistent read
        journal, generation = self.db_dir / _JOURNAL, self.db_dir / _GENERATION
        self._reading.active = True
        try:
            for attempt in range(_READ_ATTEMPTS):
                before = self.signature(generation)
                if journal.exists():
                    time.sleep(0.002 * (attempt + 1))
                    continue
                result = read()
                if not journal.exists() and self.signature(generation) == before:
                    return result
            return self._read_locked(read)
        finally:
            self._reading.active = False

    def _read_locked(self, read: Callable[[], T]) -> T:
        if not self._lock_path.exists():
            return read()
        fd = os.open(self._lock_path, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            return read()
        finally:
            os.close(fd)

    def _recover(self) -> None:
        """Finish a commit whose journal was written, or drop a half-prepared one."""
        journal = self.db_dir / _JOURNAL
        if journal.exists():
            plan = json.loads(journal.read_bytes())
            touched = set()
            for tmp_rel, final_rel in plan["renames"]:
                tmp, final = self.home / tmp_rel, self.home / final_rel
                if tmp.exists():
                    _make_folder(final.parent)
                    os.replace(tmp, final)
                    touched.add(final.parent)
                self._cache.pop(final, None)
            for folder in touched:
                _fsync_dir(folder)
            journal.unlink()
            _fsync_dir(self.db_dir)
        for leftover in self._tmp_dir.iterdir():
            leftover.unlink()


class View(_ShardOwner):
    """Read-only access to the collections; writes raise."""

    def __init__(self, store: ShardFiles) -> None:
        self.store = store

    def shard_data(self, path: Path) -> dict[str, Any] | None:
        return self.store.load(path)

    def stage_shard(self, path: Path, data: dict[str, Any]) -> None:
        raise RuntimeError("read-only view: open a transaction to write")

    def shards(self, collection: str) -> list[str]:
        return self.store.shard_names(collection)


class Transaction(View):
    """Changes staged in memory; ``commit`` makes them durable all at once."""

    writable = True

    def __init__(self, store: ShardFiles) -> None:
        super().__init__(store)
        self._before_commit: dict[str, Callable[[Transaction], None]] = {}
        self._shards: dict[Path, dict[str, Any] | None] = {}
        self._dirty: set[Path] = set()
        self._blobs: dict[Path, tuple[bytes, int]] = {}

    def shard_data(self, path: Path) -> dict[str, Any] | None:
        if path not in self._shards:
            # Copy down to the documents: TinyDB updates documents in place,
            # and the shared cache must keep the committed state if we abort.
            data = self.store.load(path)
            self._shards[path] = (
                None if data is None else {name: {k: dict(v) for k, v in docs.items()} for name, docs in data.items()}
            )
        return self._shards[path]

    def stage_shard(self, path: Path, data: dict[str, Any]) -> None:
        self._shards[path] = data
        self._dirty.add(path)

    def shards(self, collection: str) -> list[str]:
        names = set(self.store.shard_names(collection))
        folder = self.store.collection_dir(collection)
        names.update(p.name[:-5] for p in self._dirty if p.parent == folder)
        return sorted(names)

    def before_commit(self, key: str, action: Callable[[Transaction], None]) -> None:
        """Run ``action`` once, just before this transaction commits (derived files)."""
        self._before_commit.setdefault(key, action)

    def is_dirty(self, path: Path) -> bool:
        """Whether this transaction changed the shard at ``path``."""
        return path in self._dirty

    def write_blob(self, relpath: str, data: bytes, mode: int = 0o644) -> None:
        """Stage a whole file under the home (certificate, CRL, key)."""
        self._blobs[self.store.home / relpath] = (data, mode)

    def commit(self) -> None:
        for action in self._before_commit.values():
            action(self)
        if not self._dirty and not self._blobs:
            return
        store = self.store
        token = secrets.token_hex(6)
        payloads: dict[Path, bytes] = {}
        for path in self._dirty:
            payloads[path] = json.dumps(self._shards[path], separators=(",", ":")).encode()
        modes = {path: 0o600 for path in payloads}
        for path, (data, mode) in self._blobs.items():
            payloads[path] = data
            modes[path] = mode
        payloads[store.db_dir / _GENERATION] = token.encode()
        modes[store.db_dir / _GENERATION] = 0o600
        renames = [(store._tmp_dir / f"{token}-{index}", path) for index, path in enumerate(payloads)]
        _each(lambda pair: _write_durably(pair[0], payloads[pair[1]], modes[pair[1]]), renames)
        _fsync_dir(store._tmp_dir)
        self._write_journal(renames)
        folders = {final.parent for _, final in renames}
        for folder in folders:
            _make_folder(folder)
        _each(lambda pair: os.replace(*pair), renames)
        _each(_fsync_dir, list(folders))
        (store.db_dir / _JOURNAL).unlink()
        for path in self._dirty:
            signature = store.signature(path)
            if signature is not None:
                store._cache[path] = (signature, self._shards[path])

    def _write_journal(self, renames: list[tuple[Path, Path]]) -> None:
        home = self.store.home
        plan = {"renames": [[str(t.relative_to(home)), str(f.relative_to(home))] for t, f in renames]}
        staging = self.store._tmp_dir / "journal"
        # Never written through a symlink planted in .tmp/ (trust slice).
        staging.unlink(missing_ok=True)
        fd = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            _write_all(fd, json.dumps(plan).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(staging, self.store.db_dir / _JOURNAL)
        _fsync_dir(self.store.db_dir)

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
* Even so, a commit of one EST enrollment rewrote ~600 KB of shards at
  100,000 certificates for ~2 KB of changed records. A small commit is
  therefore one record appended to the change log (``change_log.py``),
  which ``load`` lays over each shard; a journal commit folds it back in.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import stat
import sys
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from queue import SimpleQueue
from typing import Any, TypeVar

from tui_ca.engine.folders import make_private_dirs
from tui_ca.engine.sharing import Sharing
from tui_ca.engine.store import change_log
from tui_ca.engine.store.protocol import StoreDamagedError, StoreUnavailableError

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


# Past this much shard JSON in one process, orjson takes over from the stdlib.
# Its import costs ~20-40 ms (it loads dataclasses and inspect), more than a
# one-shot command's few shards save, while a server, the UI or a listing
# handles megabytes: encoding is then ~5x and decoding ~1.7x faster (bench/:
# a 166 KB requests shard, 19 -> 3.3 ms and 11 -> 6.6 ms under load).
_FAST_JSON_AFTER = 2 << 20
_json_bytes = 0
_orjson: Any = None


def _fast() -> Any:
    """orjson, once this process has handled enough JSON for its import to pay, or has it loaded anyway; else None."""
    global _orjson
    if _orjson is None and (_json_bytes > _FAST_JSON_AFTER or "orjson" in sys.modules):
        import orjson

        _orjson = orjson
    return _orjson


def encode_json(data: Any) -> bytes:
    """A shard's bytes: compact JSON, as ``json.dumps`` with no spaces writes it.

    Either encoder writes JSON the other reads. An integer beyond 64 bits or a
    lone surrogate, which orjson refuses, takes the stdlib's path.
    """
    global _json_bytes
    fast = _fast()
    if fast is not None:
        try:
            return fast.dumps(data, option=fast.OPT_NON_STR_KEYS)
        except TypeError:
            pass
    raw = json.dumps(data, separators=(",", ":")).encode()
    _json_bytes += len(raw)
    return raw


def decode_json(raw: bytes) -> Any:
    """What ``encode_json`` (or any JSON writer) wrote; ValueError if it is not JSON."""
    global _json_bytes
    fast = _fast()
    if fast is not None:
        try:
            return fast.loads(raw)
        except ValueError:
            pass  # orjson refuses integers beyond 64 bits, which JSON allows: the stdlib decides
    _json_bytes += len(raw)
    return json.loads(raw)


def _signature(stat: os.stat_result) -> _Signature:
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _write_all(fd: int, payload: bytes) -> None:
    view = memoryview(payload)
    while view:
        view = view[os.write(fd, view) :]


def _make_folder(path: Path, sharing: Sharing) -> None:
    """mkdir -p whose new entries are durable (each new folder's parent fsynced).

    The mode is set explicitly: the umask applies to mkdir's (trust slice), and
    a shared home's folders need 2770 (sharing.py).
    """
    if path.is_dir():
        return
    _make_folder(path.parent, sharing)
    if sharing.new_folder(path):
        _fsync_dir(path.parent)


def _write_durably(path: Path, payload: bytes, mode: int, sharing: Sharing | None = None, *, sync: bool = True,
                   written: Callable[[], object] | None = None) -> None:  # fmt: skip
    """Create ``path`` with ``payload``, its data on disk before this returns (unless ``sync`` is false).

    ``written`` is called once the file exists with its content, before its fsync.
    """
    fd = (sharing or Sharing.private()).create(path, mode)
    try:
        _write_all(fd, payload)
        if written is not None:
            written()
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


class _Countdown:
    """Wait until ``count`` events were told (each exactly once, failed or not)."""

    def __init__(self, count: int) -> None:
        self._left = count
        self._lock = threading.Lock()
        self._done = threading.Event()
        if count <= 0:
            self._done.set()

    def tell(self) -> bool:
        """One event; True for the one that was the last."""
        with self._lock:
            self._left -= 1
            if self._left == 0:
                self._done.set()
                return True
            return False

    def wait(self) -> None:
        self._done.wait()


class _SyncThreads:
    """A few kept threads that run the actions of a commit step side by side.

    Not ``concurrent.futures``: importing it pulls in ``logging``, ~20 ms of
    CPU at load 10 (15 interleaved runs) that a one-shot approve paid, while
    all a commit needs is to hand out actions and wait for every outcome.
    Threads are started on first use (and again after a fork) and kept: a pool
    per commit cost about as much as the fsyncs it saved (bench/: 12 ms a
    commit with a new pool per phase, 5.7 ms with one kept pool). They are
    daemons: a process may exit while they idle, never while a step runs,
    since ``run`` returns only when every action has ended.
    """

    def __init__(self, size: int) -> None:
        self._size = size
        self._tasks: SimpleQueue[tuple[Callable[[Any], object], Any, SimpleQueue[BaseException | None]]]
        self._tasks = SimpleQueue()
        self._started = 0
        self._lock = threading.Lock()

    def run(self, action: Callable[[Any], object], items: list) -> None:
        """``action`` on every item; the first failure is raised once all of them have ended."""
        outcomes: SimpleQueue[BaseException | None] = SimpleQueue()
        for item in items:
            self._tasks.put((action, item, outcomes))
        with self._lock:
            while self._started < min(self._size, len(items)):
                threading.Thread(target=self._work, name=f"tui-ca-sync-{self._started}", daemon=True).start()
                self._started += 1
        errors = [error for error in (outcomes.get() for _ in items) if error is not None]
        if errors:
            raise errors[0]

    def _work(self) -> None:
        while True:
            action, item, outcomes = self._tasks.get()
            try:
                action(item)
            except BaseException as exc:  # handed to the waiting caller, which raises it
                outcomes.put(exc)
            else:
                outcomes.put(None)


_pool_lock = threading.Lock()
_pool: _SyncThreads | None = None
_pool_pid = 0


def _sync_pool() -> _SyncThreads:
    """The process's one set of fsync threads (made again after a fork: threads do not survive one)."""
    global _pool, _pool_pid
    with _pool_lock:
        if _pool is None or _pool_pid != os.getpid():
            _pool, _pool_pid = _SyncThreads(_SYNC_THREADS), os.getpid()
        return _pool


def _each(action: Callable[[Any], object], items: list) -> None:
    """Run ``action`` on every item, from a few threads when there are several.

    One after another, each fsync costs an ext4 journal commit (~4 ms here, 2 s
    for a 200-certificate approval) and each rename over an existing shard
    waits on the journal too; issued from a few threads they share commits
    (~0.4 ms a file; measured with bench/run.py --only bulk-approve). The
    commit order is unchanged: every write is durable before the journal is,
    and every rename is done before the journal goes. Every action ends before
    the first failure is raised, so that a failed commit never leaves a worker
    still writing after its files were removed.
    """
    if len(items) == 1:
        action(items[0])
        return
    _sync_pool().run(action, items)


# Renames one landing task makes before the folder's sync: a folder that takes
# many files (a bulk approval's index buckets) is still renamed from several threads.
_RENAMES_A_TASK = 16
_Landing = tuple[Path, list[tuple[Path, Path]], _Countdown, bool]


def _landing_tasks(renames: list[tuple[Path, Path]], unsynced: set[Path]) -> list[_Landing]:
    """The renames of a commit grouped by the folder they land in, each group in tasks of a few.

    A folder is fsynced by whichever of its tasks finishes last, right after
    its renames: one round of threads for the renames and the folders' syncs
    instead of a round each (a round of threads costs about as much as a
    folder's fsync here). A folder where only unsynced files land (db/ for the
    generation, the listing bodies' folders) is not synced.
    """
    by_folder: dict[Path, list[tuple[Path, Path]]] = {}
    for pair in renames:
        by_folder.setdefault(pair[1].parent, []).append(pair)
    tasks: list[_Landing] = []
    for folder, pairs in by_folder.items():
        chunks = [pairs[i : i + _RENAMES_A_TASK] for i in range(0, len(pairs), _RENAMES_A_TASK)]
        left = _Countdown(len(chunks))
        sync = any(final not in unsynced for _, final in pairs)
        tasks.extend((folder, chunk, left, sync) for chunk in chunks)
    return tasks


def _land(task: _Landing) -> None:
    folder, pairs, left, sync = task
    for pair in pairs:
        os.replace(*pair)
    # A task whose rename failed never tells: its folder is left unsynced, and
    # the journal stays for the next transaction to finish the commit.
    if left.tell() and sync:
        _fsync_dir(folder)


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


# Folders a commit may write into (relative to the home); a journal naming
# anything else was not written by a commit and is refused.
_WRITABLE_ROOTS = ("db/", "crl/")
_RESTORE_HINT = "restore the home from a backup (tui-ca restore) or repair the file, then run tui-ca check"
Validator = Callable[[Path, Any], "str | None"]
"""Why a parsed shard is not one a commit writes, or None. It must judge record by record (a table
passes if each of its records does): a merge is checked by its change-log records alone."""


def damaged(path: Path, why: str) -> StoreDamagedError:
    return StoreDamagedError(f"{path} is damaged ({why}); nothing was changed: {_RESTORE_HINT}")


def unavailable(exc: OSError, doing: str) -> StoreUnavailableError:
    where = f" ({exc.filename})" if exc.filename else ""
    return StoreUnavailableError(f"cannot {doing}: {exc.strerror or exc}{where}; nothing was changed")


def _is_real_dir(path: Path) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except FileNotFoundError:
        return False


# Parsed shards kept per process, counted by the size of their files (a parse
# takes 3-5 times that in memory). One operation touches a few hundred KB even
# at 100,000 certificates; a long-lived reader of random records (the OCSP
# server) would otherwise grow to the whole store (406 MiB at 100k).
CACHE_BYTES = 8 * 1024 * 1024


class _ShardCache:
    """path -> (signature, parsed data), least recently used dropped past ``limit`` bytes of files."""

    def __init__(self, limit: int | None = None) -> None:
        self.limit = CACHE_BYTES if limit is None else limit
        self._entries: OrderedDict[Path, tuple[_Signature, dict[str, Any], int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, path: Path) -> tuple[_Signature, dict[str, Any]] | None:
        with self._lock:
            entry = self._entries.get(path)
            if entry is None:
                return None
            self._entries.move_to_end(path)
            return entry[0], entry[1]

    def put(self, path: Path, signature: _Signature, data: dict[str, Any], size: int) -> None:
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old[2]
            self._entries[path] = (signature, data, size)
            self._bytes += size
            while self._bytes > self.limit and len(self._entries) > 1:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def pop(self, path: Path) -> None:
        with self._lock:
            old = self._entries.pop(path, None)
            if old is not None:
                self._bytes -= old[2]

    @property
    def size(self) -> int:
        """Bytes of the files whose parses are kept."""
        return self._bytes

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0

    def __iter__(self) -> Iterator[Path]:
        with self._lock:
            return iter(list(self._entries))


class ShardFiles:
    """All files of one CA home, with lock-free reads and locked transactions."""

    def __init__(self, home: Path, validate: Validator | None = None) -> None:
        self.home = Path(home)
        self.db_dir = self.home / "db"
        self._tmp_dir = self.home / ".tmp"
        self._validate = validate
        # path -> (signature, parsed data); shared by every view and transaction
        # of this process, and re-validated by signature before each use.
        self._cache = _ShardCache()
        self._thread_lock = threading.Lock()
        self._reading = threading.local()
        self._paths: dict[tuple[str, str], Path] = {}
        self._folder_steps: dict[Path, list[str]] = {}
        # Read again by every transaction (ensure_layout): the modes its files get.
        self.sharing = Sharing.private()
        self.change_log = change_log.ChangeLog(self.db_dir / change_log.LOG_NAME, decode_json)
        # path -> (base shard, its log version, the log's header, the shard with the log laid over it)
        self._merged: dict[Path, tuple[dict | None, int, bytes, dict]] = {}
        self._log_keys: dict[Path, str] = {}
        self._key_paths: dict[str, Path] = {}

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

    def check_folder(self, folder: Path) -> None:
        """Refuse a folder of the home that is a symlink: the store never follows one out of the home."""
        steps = self._folder_steps.get(folder)
        if steps is None:
            # The folders from the home down, worked out once per folder: the
            # path arithmetic cost more than the lstats (bench/: ~20 checks a
            # commit, ~0.5 ms of an EST enrollment); every check still lstats each.
            steps, current = [], self.home
            for part in folder.relative_to(self.home).parts:
                current = current / part
                steps.append(str(current))
            self._folder_steps[folder] = steps
        for step in steps:
            try:
                mode = os.lstat(step).st_mode
            except FileNotFoundError:
                return
            if stat.S_ISLNK(mode) or not stat.S_ISDIR(mode):
                kind = "a symbolic link" if stat.S_ISLNK(mode) else "not a folder"
                raise damaged(Path(step), f"{kind} where the store keeps a folder; the store never follows it")

    def ensure_layout(self) -> None:
        """Create the home (0700) and the store's folders; learn whether an admin group shares the home."""
        make_private_dirs(self.home)  # 0700 whatever the umask, parents too (trust slice)
        self.sharing = Sharing.of(self.home)
        for folder in (self.db_dir, self._tmp_dir):
            self.check_folder(folder)
            if not _is_real_dir(folder):
                make_private_dirs(folder, self.sharing.folder_mode)

    # --------------------------------------------------------------- reading

    def log_key(self, path: Path) -> str:
        """A shard's name in the change log: ``collection/shard``."""
        key = self._log_keys.get(path)
        if key is None:
            key = self._log_keys[path] = f"{path.parent.name}/{path.stem}"
        return key

    def path_of_key(self, key: str) -> Path:
        path = self._key_paths.get(key)
        if path is None:
            collection, shard = key.split("/")
            path = self._key_paths[key] = self.shard_path(collection, shard)
        return path

    def has_pending(self, path: Path) -> bool:
        """Whether the change log holds changes of this shard not yet folded into its file."""
        return self.log_key(path) in self.change_log.current().changes

    def load(self, path: Path, keep: bool = True) -> dict[str, Any] | None:
        """A shard as committed: its file, parsed again only if it changed, with the change log laid over it.

        Damage is refused. ``keep=False`` uses a parse already kept but keeps no
        new one (one-pass listings).
        """
        state = self.change_log.current()
        base = self._load_file(path, keep)
        if not state.changes:
            return base
        key = self.log_key(path)
        docs = state.changes.get(key)
        if docs is None:
            return base
        version, head = state.versions[key], state.head
        kept = self._merged.get(path)
        if kept is not None and kept[0] is base and kept[1] == version and kept[2] == head:
            return kept[3]
        collection = path.parent.name
        table = dict((base or {}).get(collection, {}))
        laid: dict[str, Any] = {}
        for doc_id, doc in docs.items():
            if doc is None:
                table.pop(doc_id, None)
            else:
                table[doc_id] = laid[doc_id] = doc
        merged = {collection: table}
        # The file's records passed when it was parsed, and the shape is checked
        # record by record, so only the log's records are looked at: every
        # commit to a dense shard makes a new merge, and checking its ~256
        # records each time was a tenth of an enrollment's engine time.
        why = self._validate(path, {collection: laid}) if self._validate is not None else None
        if why is not None:
            raise damaged(self.change_log.path, f"its changes to {key} leave a shard that {why}")
        if keep:
            self._merged[path] = (base, version, head, merged)
        return merged

    def _load_file(self, path: Path, keep: bool) -> dict[str, Any] | None:
        self.check_folder(path.parent)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            self._cache.pop(path)
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise damaged(path, "a symbolic link; the store never follows it") from None
            raise unavailable(exc, "read the store") from None
        try:
            signature = _signature(os.fstat(fd))
            cached = self._cache.get(path)
            if cached is not None and cached[0] == signature:
                return cached[1]
            with os.fdopen(fd, "rb", closefd=False) as handle:
                raw = handle.read()
        except OSError as exc:
            raise unavailable(exc, "read the store") from None
        finally:
            os.close(fd)
        # Commits are atomic, so only a hand edit or a disk fault gets here:
        # say which file, instead of a traceback or an empty table.
        if not raw.strip():
            raise damaged(path, "empty")
        try:
            data = decode_json(raw)
        except ValueError:
            raise damaged(path, "not valid JSON") from None
        why = self._validate(path, data) if self._validate is not None else None
        if why is not None:
            raise damaged(path, why)
        if keep:
            self._cache.put(path, signature, data, len(raw))
        return data

    def signature(self, path: Path) -> _Signature | None:
        try:
            return _signature(os.stat(path))
        except FileNotFoundError:
            return None

    def shard_names(self, collection: str) -> list[str]:
        """Existing shards of a collection, in name order."""
        folder = self.collection_dir(collection)
        self.check_folder(folder)
        try:
            names = os.listdir(folder)
        except FileNotFoundError:
            names = []
        except OSError as exc:
            raise unavailable(exc, "read the store") from None
        shards = {n[:-5] for n in names if n.endswith(".json")}
        prefix = f"{collection}/"
        shards.update(key[len(prefix) :] for key in self.change_log.current().changes if key.startswith(prefix))
        return sorted(shards)

    def view(self) -> View:
        """A lock-free read view (each file is whole; see module docstring)."""
        return View(self)

    def read_blob(self, relpath: str) -> bytes:
        """A whole file of the store (FileNotFoundError if absent); never through a symlink."""
        path = self.home / relpath
        self.check_folder(path.parent)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise damaged(path, "a symbolic link; the store never follows it") from None
            raise unavailable(exc, "read the store") from None
        with os.fdopen(fd, "rb") as handle:
            return handle.read()

    # ---------------------------------------------------------------- locking

    def _lock(self, mode: int) -> int:
        """A flock on the ``db`` folder itself, re-checked to be the folder the path names.

        A lock file can be deleted or replaced under its holder, and the next
        process would lock the new file and walk in. A folder that holds
        records cannot be removed, and if it is renamed away the re-check sees
        a different inode and the lock is taken again on what the path names.
        """
        while True:
            fd = os.open(self.db_dir, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
            try:
                fcntl.flock(fd, mode)
                held, named = os.fstat(fd), os.lstat(self.db_dir)
                if (held.st_dev, held.st_ino) == (named.st_dev, named.st_ino):
                    return fd
            except FileNotFoundError:
                pass
            except BaseException:
                os.close(fd)
                raise
            os.close(fd)

    # ---------------------------------------------------------- transactions

    @contextmanager
    def transaction(self, make: Callable[[ShardFiles], Transaction] | None = None) -> Iterator[Transaction]:
        """Exclusive, inter-process: recover, yield, commit all or nothing."""
        # flock is per open file description, so threads of one process also
        # need the thread lock to exclude each other.
        with self._thread_lock:
            try:
                self.ensure_layout()
                fd = self._lock(fcntl.LOCK_EX)
            except OSError as exc:
                raise unavailable(exc, f"open the store in {self.home}") from None
            try:
                try:
                    self._recover()
                except OSError as exc:
                    raise unavailable(exc, f"finish an interrupted commit in {self.home}") from None
                txn = make(self) if make is not None else Transaction(self)
                try:
                    yield txn
                except OSError as exc:
                    raise unavailable(exc, f"change the CA in {self.home}") from None
                txn.commit()
            finally:
                os.close(fd)  # closing releases the flock

    def read_consistently(self, read: Callable[[], T]) -> T:
        """Run a read of several files as if at one instant, without blocking writers.

        A commit renames its files one by one, so a plain lock-free reader can
        see half of it (a request approved, its certificate not yet there).
        Every journal commit rewrites ``db/generation`` and holds
        ``db/journal.json`` while it renames, and every other commit grows the
        change log; a read that started with no journal and ends with no
        journal, the same generation and the same log saw no commit land, so it
        stands.
        Otherwise it is retried, and after a few tries done under a shared lock.
        """
        if getattr(self._reading, "active", False):
            return read()  # nested in an outer consistent read
        journal, generation = self.db_dir / _JOURNAL, self.db_dir / _GENERATION
        self._reading.active = True
        try:
            for attempt in range(_READ_ATTEMPTS):
                before = (self.signature(generation), self.change_log.signature())
                if journal.exists():
                    time.sleep(0.002 * (attempt + 1))
                    continue
                result = read()
                if not journal.exists() and (self.signature(generation), self.change_log.signature()) == before:
                    return result
            return self._read_locked(read)
        finally:
            self._reading.active = False

    def _read_locked(self, read: Callable[[], T]) -> T:
        if not _is_real_dir(self.db_dir):
            return read()
        # A journal left by a commit that could not finish its renames is a
        # commit that happened: finish it (exclusively) before reading, so
        # that readers see what the writer reported.
        journal = self.db_dir / _JOURNAL
        try:
            fd = self._lock(fcntl.LOCK_EX if journal.exists() else fcntl.LOCK_SH)
        except OSError as exc:
            raise unavailable(exc, "read the store") from None
        try:
            if journal.exists():
                with self._thread_lock:
                    try:
                        self.sharing = Sharing.of(self.home)
                        self._recover()
                    except OSError:
                        pass  # read-only, say: the committed state stays in the journal until it can be finished
            return read()
        finally:
            os.close(fd)

    def _journal_plan(self, journal: Path) -> list[tuple[Path, Path]]:
        """The renames a journal names, refused unless it is what a commit writes."""
        try:
            plan = json.loads(journal.read_bytes())
        except ValueError:
            plan = None
        renames = plan.get("renames") if isinstance(plan, dict) else None
        if not isinstance(renames, list):
            raise damaged(journal, "not a commit journal; an interrupted commit cannot be finished")
        pairs = []
        for pair in renames:
            ok = isinstance(pair, list) and len(pair) == 2 and all(isinstance(p, str) for p in pair)
            if ok:
                tmp_rel, final_rel = pair
                ok = (tmp_rel.startswith(".tmp/") and final_rel.startswith(_WRITABLE_ROOTS)
                      and ".." not in Path(tmp_rel).parts + Path(final_rel).parts)  # fmt: skip
            if not ok:
                raise damaged(journal, f"names {pair!r}, which no commit writes")
            pairs.append((self.home / pair[0], self.home / pair[1]))
        return pairs

    def _recover(self) -> None:
        """Finish a commit whose journal was written, or drop a half-prepared one."""
        journal = self.db_dir / _JOURNAL
        if journal.exists():
            touched = set()
            for tmp, final in self._journal_plan(journal):
                if tmp.exists():
                    self.check_folder(final.parent)
                    _make_folder(final.parent, self.sharing)
                    os.replace(tmp, final)
                    touched.add(final.parent)
                self._cache.pop(final)
            for folder in touched:
                _fsync_dir(folder)
            journal.unlink()
            _fsync_dir(self.db_dir)
        for leftover in self._tmp_dir.iterdir():
            # Anything here is a leftover by definition; a folder (or a link
            # to one) is removed without following it.
            if leftover.is_dir() and not leftover.is_symlink():
                import shutil

                shutil.rmtree(leftover)
            else:
                leftover.unlink()
        self.change_log.repair()


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
        self._blobs: dict[Path, tuple[bytes, int, bool]] = {}
        self._payloads: dict[Path, bytes] = {}
        # What shard_data copied each shard from: the change log records what differs from it.
        self._committed: dict[Path, dict[str, Any] | None] = {}
        # True while the commit is to be one record of the change log: derived files
        # (listing bodies) are left to the fold that writes the shards themselves.
        self.logging = False

    def shard_data(self, path: Path) -> dict[str, Any] | None:
        if path not in self._shards:
            # Copy the tables, not the documents: the shared cache must keep the
            # committed state if we abort, and TinyDB updates documents in place,
            # so the shard storage (tinydb.py) hands its updaters a private copy of
            # each document they touch. Copying all ~1,500 documents of an index
            # bucket at 100,000 certificates, for one entry, was most of an EST commit.
            data = self._committed[path] = self.store.load(path)
            self._shards[path] = None if data is None else {name: dict(docs) for name, docs in data.items()}
        return self._shards[path]

    def stage_shard(self, path: Path, data: dict[str, Any]) -> None:
        self._shards[path] = data
        self._dirty.add(path)
        self._payloads.pop(path, None)

    def payload(self, path: Path) -> bytes:
        """The bytes the commit will write for a changed shard (a derived file may fingerprint them)."""
        payload = self._payloads.get(path)
        if payload is None:
            payload = self._payloads[path] = encode_json(self._shards[path])
        return payload

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

    def dirty_shards(self, collection: str) -> list[str]:
        """The shards of a collection this transaction changed, in name order (no folder listing)."""
        folder = self.store.collection_dir(collection)
        return sorted(p.name[:-5] for p in self._dirty if p.parent == folder)

    def write_blob(self, relpath: str, data: bytes, mode: int = 0o644, *, synced: bool = True) -> None:
        """Stage a whole file under the home (certificate, CRL, key).

        ``synced=False`` only for a file that proves itself against the records
        it was made from (a listing body fingerprints its shard and itself):
        one a power loss tore or dropped is ignored and made again, so neither
        its data nor its folder is waited for.
        """
        self._blobs[self.store.home / relpath] = (data, mode, synced)

    def commit(self) -> None:
        """Make every staged change durable at once, or none of them.

        Until the journal is in place a failure (disk full, no inodes,
        read-only) removes what was prepared and reports that nothing changed.
        Once it is, the commit has happened: a failure while putting files in
        place is left for the next transaction to finish from the journal, and
        the commit still reports success, so that no command says "failed"
        for a change that then appears.
        """
        store = self.store
        log = store.change_log.current()
        enabled = change_log.ENABLED
        self.logging = enabled and log.exists and not log.torn and not self._synced_blobs()
        if not self.logging:
            self._fold(log)
        for action in self._before_commit.values():
            action(self)
        if not self._dirty and not self._blobs:
            return
        if self.logging:
            if self._append_to_log(log):
                return
            # Too large for the log, or it publishes a file: a journal commit that folds the log.
            self.logging = False
            self._fold(log)
            for action in self._before_commit.values():
                action(self)
        self._commit_by_journal(log, enabled)

    def _synced_blobs(self) -> bool:
        return any(synced for _, _, synced in self._blobs.values())

    def _changes(self) -> dict[str, dict[str, dict | None]] | None:
        """Per changed shard, the documents that differ from the committed ones (None: a shard the log cannot hold)."""
        store = self.store
        changes: dict[str, dict[str, dict | None]] = {}
        for path in self._dirty:
            collection = path.parent.name
            staged = self._shards.get(path) or {}
            if path.parent.parent != store.db_dir or not set(staged) <= {collection}:
                return None
            committed = self._committed[path] if path in self._committed else store.load(path)
            new, old = staged.get(collection, {}), (committed or {}).get(collection, {})
            # Documents are shared with the committed shard until changed (shard_data), so
            # an identity test finds the changed ones without comparing contents.
            docs: dict[str, dict | None] = {key: doc for key, doc in new.items() if old.get(key) is not doc}
            docs.update((key, None) for key in old.keys() - new.keys())
            if docs:
                changes[store.log_key(path)] = docs
        return changes

    def _append_to_log(self, log: change_log.LogState) -> bool:
        """Commit as one record of the change log, if the commit is small enough and the log has room."""
        if self._synced_blobs():
            return False
        changes = self._changes()
        if changes is None:
            return False
        body = encode_json(changes)
        if len(body) > change_log.COMMIT_MAX or log.end + len(body) > change_log.LOG_MAX:
            return False
        try:
            self.store.change_log.append(log, changes, change_log.encode_record(body))
        except OSError as exc:
            raise unavailable(exc, f"write the store in {self.store.home}") from None
        return True

    def _fold(self, log: change_log.LogState) -> None:
        """Stage every shard the change log touched, with its changes, to be written whole by this commit."""
        for key in log.changes:
            path = self.store.path_of_key(key)
            if self.shard_data(path) is not None:
                self._dirty.add(path)

    def _commit_by_journal(self, log: change_log.LogState, log_enabled: bool) -> None:
        """Write every changed shard whole, with an empty change log, through the journal (module docstring)."""
        store = self.store
        import secrets

        token = secrets.token_hex(6)
        payloads: dict[Path, bytes] = {}
        for path in self._dirty:
            payloads[path] = self.payload(path)
        modes = {path: 0o600 for path in payloads}
        for path, (data, mode, _) in self._blobs.items():
            payloads[path] = data
            modes[path] = mode
        generation = store.db_dir / _GENERATION
        payloads[generation] = token.encode()
        modes[generation] = 0o600
        if log_enabled or log.exists:
            # Its changes are in the shards now: the log starts again, empty, in the same journal.
            payloads[store.change_log.path] = change_log.header(token)
            modes[store.change_log.path] = 0o600
        unsynced = {generation, *(path for path, (_, _, synced) in self._blobs.items() if not synced)}
        renames = [(store._tmp_dir / f"{token}-{index}", path) for index, path in enumerate(payloads)]
        folders = {final.parent for _, final in renames}
        try:
            for folder in folders:
                store.check_folder(folder)
                _make_folder(folder, store.sharing)  # before the commit point: no inodes left fails here
            # The journal is written beside the files it names and made durable by
            # the same fsync of .tmp: one fsync less before the commit point (each
            # costs an ext4 journal commit, ~4-8 ms on a busy disk).
            plan = self._journal_plan(renames)
            writes: list[tuple[Path, Path | None]] = [*renames, (store._tmp_dir / "journal", None)]
            # .tmp/ is synced before the journal is placed: its entries are what
            # the journal names, and a journal naming files a power loss dropped
            # would finish as half a commit. Its fsync runs beside the files'
            # own, once every file exists (the countdown), instead of in a round
            # of its own after them: one ext4 journal commit less to wait for.
            created = _Countdown(len(writes))

            def stage(pair: tuple[Path, Path | None] | None) -> None:
                if pair is None:
                    created.wait()
                    _fsync_dir(store._tmp_dir)
                    return
                told: list[bool] = []

                def tell() -> None:  # once per file: when it is written, or when it failed
                    if not told:
                        told.append(True)
                        created.tell()

                try:
                    self._stage(pair, payloads, modes, plan, store.sharing, pair[1] not in unsynced, tell)
                finally:
                    tell()

            # The folder's item comes last, so every file's item has been taken by
            # a thread before it waits: it never holds a thread a file needs.
            _each(stage, [*writes, None])
            self._place_journal()
        except OSError as exc:
            self._discard(renames)
            raise unavailable(exc, f"write the store in {store.home}") from None
        except BaseException:
            self._discard(renames)
            raise
        # The commit point is behind us.
        for path in payloads:
            store._cache.pop(path)
        store.change_log.forget()
        store._merged.clear()
        try:
            # Each folder a record file landed in is fsynced before the journal
            # goes: unsynced, a power loss could keep the journal's removal and
            # lose a rename, i.e. half a commit with nothing left to finish it.
            # db/ itself is left out when only the generation landed there: a
            # lost rename of it leaves the old generation, which no reader
            # after a restart needs (it only compares signatures within a run),
            # and the journal's removal needs no sync (a journal that survives
            # is replayed, which is harmless once every file is in place).
            _each(_land, _landing_tasks(renames, unsynced))
            (store.db_dir / _JOURNAL).unlink()
        except OSError:
            return  # the journal is durable: the next transaction finishes this commit
        for path in self._dirty:
            signature, staged = store.signature(path), self._shards[path]
            if signature is not None and staged is not None:
                store._cache.put(path, signature, staged, len(payloads[path]))

    def _discard(self, renames: list[tuple[Path, Path]]) -> None:
        """Remove what a commit that did not happen prepared (best effort: recovery also drops it)."""
        for tmp, _ in [*renames, (self.store._tmp_dir / "journal", None)]:
            try:
                tmp.unlink()
            except OSError:
                pass

    def _journal_plan(self, renames: list[tuple[Path, Path]]) -> bytes:
        home = self.store.home
        return json.dumps(
            {"renames": [[str(t.relative_to(home)), str(f.relative_to(home))] for t, f in renames]}
        ).encode()

    @staticmethod
    def _stage(pair: tuple[Path, Path | None], payloads: dict[Path, bytes], modes: dict[Path, int],
               plan: bytes, sharing: Sharing, sync: bool, written: Callable[[], object]) -> None:  # fmt: skip
        """Write one temp file durably: a shard's new content, or (no final path) the journal."""
        tmp, final = pair
        if final is None:
            # Never written through a symlink planted in .tmp/ (trust slice).
            tmp.unlink(missing_ok=True)
            # Synced: the commit point renames this file into db/, and a journal
            # whose content did not reach the disk is an unfinishable commit.
            _write_durably(tmp, plan, 0o600, sharing, written=written)
        else:
            # A record file's data is synced before the journal names it: after
            # the commit point, recovery renames it into place as it finds it.
            # The generation's is not (``sync`` false): only its (inode, mtime,
            # size) signature is ever read, by lock-free readers of this boot;
            # nor a listing body's (write_blob's ``synced``).
            _write_durably(tmp, payloads[final], modes[final], sharing, sync=sync, written=written)

    def _place_journal(self) -> None:
        """The commit point: the journal, already durable in .tmp, renamed into db/."""
        staging = self.store._tmp_dir / "journal"
        os.replace(staging, self.store.db_dir / _JOURNAL)
        try:
            # Synced before the first rename into place: renames that outlive a
            # power loss without their journal would be half a commit, undone
            # by nothing.
            _fsync_dir(self.store.db_dir)
        except OSError:
            pass  # the journal is in place: from here on the commit stands


def copy_tree(source: Path, dest: Path) -> None:
    """Copy a store folder durably, refusing (never following) any symlink in it."""
    if not source.exists():
        return
    for folder, subfolders, names in os.walk(source, followlinks=False):
        here = Path(folder)
        target = dest / here.relative_to(source)
        target.mkdir(mode=0o700, parents=True, exist_ok=True)
        for name in subfolders + names:
            if (here / name).is_symlink():
                raise damaged(here / name, "a symbolic link; the store never follows it")
        for name in names:
            data = (here / name).read_bytes()
            _write_durably(target / name, data, stat.S_IMODE(os.lstat(here / name).st_mode))
        _fsync_dir(target)

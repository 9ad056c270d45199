"""A commit's first round: every file and the journal written, then synced side by side with ``.tmp/``.

The fsync of ``.tmp/`` runs beside the files' own (one ext4 journal commit
less before the commit point), so it must start only once every file it
is to make durable exists, and a file that fails to be written must never
leave it waiting.
"""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from helpers import snapshot_home

from tui_ca.engine.store import files as files_module
from tui_ca.engine.store.protocol import StoreUnavailableError
from tui_ca.engine.store.tinydb import TinyDBStore

pytestmark = [pytest.mark.tinydb_only, pytest.mark.journal_commits]


def _fill(store: TinyDBStore, first: int, count: int) -> None:
    """A commit of many files in many folders (indexes, requests, queue, listing bodies)."""
    with store.transaction() as txn:
        for n in range(first, first + count):
            txn.put_serial(n, n)
            txn.put_csr(f"{n:064x}", n)
            txn.put_requester(f"device-{n}", {"name": f"device-{n}", "queued": n, "active": None})


def test_the_tmp_folder_is_synced_only_once_every_file_of_the_commit_is_in_it(tmp_path, monkeypatch):
    home = tmp_path / "home"
    store = TinyDBStore(home)
    _fill(store, 1, 5)
    real_fsync_dir, written, seen = files_module._fsync_dir, [], []
    real_write, tmp_synced = files_module._write_durably, threading.Event()

    def write(path: Path, *args, **kwargs):
        if path.name == "journal":
            # The last file of the commit holds back a little: a sync of .tmp
            # that did not wait for it would come now, and miss it.
            tmp_synced.wait(0.5)
        real_write(path, *args, **kwargs)
        written.append(path.name)

    def fsync_dir(path: Path) -> None:
        if path == home / ".tmp":
            seen.append(sorted(p.name for p in path.iterdir()))
            tmp_synced.set()
        real_fsync_dir(path)

    monkeypatch.setattr(files_module, "_write_durably", write)
    monkeypatch.setattr(files_module, "_fsync_dir", fsync_dir)
    _fill(TinyDBStore(home), 100, 40)
    monkeypatch.undo()
    assert len(seen) == 1 and len(written) > 40  # one commit of many files, one sync of .tmp
    assert seen[0] == sorted(written) and "journal" in seen[0]
    view = TinyDBStore(home).view()
    assert all(view.find_serial(n) == n for n in (*range(1, 6), *range(100, 140)))


def test_a_file_that_cannot_be_written_fails_the_commit_whole_and_strands_no_thread(tmp_path, monkeypatch):
    home = tmp_path / "home"
    store = TinyDBStore(home)
    _fill(store, 1, 5)
    before = snapshot_home(home)
    real_write, calls = files_module._write_durably, []

    def write_all_but_the_third(path: Path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        real_write(path, *args, **kwargs)

    monkeypatch.setattr(files_module, "_write_durably", write_all_but_the_third)
    with pytest.raises(StoreUnavailableError, match="No space left"):
        _fill(TinyDBStore(home), 100, 40)
    monkeypatch.undo()
    assert len(calls) > 40  # every other file of the commit was still attempted, then removed
    assert snapshot_home(home) == before
    assert not list((home / ".tmp").iterdir())
    _fill(TinyDBStore(home), 100, 40)  # and the store works on: the sync threads are free
    assert TinyDBStore(home).view().find_serial(139) == 139


def test_each_folder_is_synced_once_after_every_rename_into_it_even_in_many_tasks(tmp_path, monkeypatch):
    home = tmp_path / "home"
    _fill(TinyDBStore(home), 1, 5)
    events: list[tuple[str, Path]] = []
    lock = threading.Lock()
    real_replace, real_fsync_dir = os.replace, files_module._fsync_dir

    def replace(src, dst):
        real_replace(src, dst)
        with lock:
            events.append(("rename", Path(dst)))

    def fsync_dir(path: Path) -> None:
        with lock:
            events.append(("sync", Path(path)))
        real_fsync_dir(path)

    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(files_module, "_fsync_dir", fsync_dir)
    _fill(TinyDBStore(home), 100, 60)  # ~60 buckets of each index: more than one task per folder
    monkeypatch.undo()
    placed = events.index(("rename", home / "db" / "journal.json"))
    landed = events[placed + 2 :]  # after the journal's rename and the sync of db/ that makes it durable
    assert events[placed + 1] == ("sync", home / "db")
    folders = {dest.parent for kind, dest in landed if kind == "rename" and dest.name != "generation"}
    assert sum(dest.parent == home / "db" / "serials" for kind, dest in landed if kind == "rename") > 16
    syncs = [path for kind, path in landed if kind == "sync"]
    assert sorted(syncs) == sorted(folders)  # each once; db/ not (only the generation landed there)
    for folder in folders:
        synced_at = landed.index(("sync", folder))
        assert all(landed.index(("rename", dest)) < synced_at for kind, dest in landed
                   if kind == "rename" and dest.parent == folder)  # fmt: skip

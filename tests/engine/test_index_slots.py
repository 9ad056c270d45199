"""Index entries are found by hashed doc_id; colliding keys probe to the next slot."""

from __future__ import annotations

import pytest

from tui_ca.engine.store import tinydb as backend_module
from tui_ca.engine.store.tinydb import TinyDBStore

pytestmark = [pytest.mark.tinydb_only, pytest.mark.journal_commits]


def test_colliding_keys_each_keep_their_own_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "key_shard", lambda key, buckets=64: "k00")
    monkeypatch.setattr(backend_module, "index_slot", lambda key: 7)  # every key wants slot 7
    store = TinyDBStore(tmp_path / "home")
    with store.transaction() as txn:
        for n, key in enumerate(("alpha", "beta", "gamma")):
            txn.put_requester(key, {"name": key, "queued": n, "active": None})
        txn.put_requester("beta", {"name": "beta", "queued": 10, "active": None})
    view = store.view()
    assert [view.find_requester(k)["queued"] for k in ("alpha", "beta", "gamma")] == [0, 10, 2]
    assert view.find_requester("delta") is None
    shard = view.table("requesters", "k00")
    assert sorted(doc.doc_id for doc in shard.all()) == [7, 8, 9]


def test_slots_spread_keys_and_stay_stable():
    slots = {backend_module.index_slot(f"phone-{i}") for i in range(10_000)}
    assert len(slots) == 10_000
    assert backend_module.index_slot("phone-1") == backend_module.index_slot("phone-1") > 0


def _bucket_files(home, name):
    return sorted(p.name for p in (home / "db" / name).iterdir())


def test_an_index_doubles_its_buckets_as_it_grows_and_finds_every_key(tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "ENTRIES_PER_BUCKET", 2)  # 64 buckets split past 128 entries
    store = TinyDBStore(tmp_path / "home")
    keys = [f"host-{n}.example.net" for n in range(600)]
    for start in range(0, len(keys), 50):
        with store.transaction() as txn:
            for n, key in enumerate(keys[start : start + 50], start):
                txn.put_requester(key, {"name": key, "queued": n, "active": None})
                txn.put_serial(n + 1, n)
    view = TinyDBStore(tmp_path / "home").view()
    assert all(view.find_requester(key)["queued"] == n for n, key in enumerate(keys))
    assert all(view.find_serial(n + 1) == n for n in range(len(keys)))
    assert view.find_requester("absent.example.net") is None
    numbers = {int(name[1:-5]) for name in _bucket_files(tmp_path / "home", "requesters")}
    assert max(numbers) > 255 and max(numbers) < 512  # 600 entries > 2 x 256: 512 buckets
    layout = view._meta_doc(3)
    assert layout["requesters"] == [512, 600] and layout["serials"] == [512, 600]


def test_a_split_keeps_keys_that_probed_past_a_collision(tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "ENTRIES_PER_BUCKET", 1)
    monkeypatch.setattr(backend_module, "index_slot", lambda key: 7)  # every key collides
    store = TinyDBStore(tmp_path / "home")
    keys = [f"k{n}" for n in range(200)]  # > 64 entries: one split to 128 buckets
    with store.transaction() as txn:
        for n, key in enumerate(keys):
            txn.put_requester(key, {"name": key, "queued": n, "active": None})
    view = store.view()
    assert [view.find_requester(key)["queued"] for key in keys] == list(range(200))


def test_a_home_from_before_the_layout_record_is_split_by_its_next_commit(tmp_path, monkeypatch):
    import json

    home = tmp_path / "home"
    store = TinyDBStore(home)
    with store.transaction() as txn:
        for n in range(300):
            txn.put_serial(n + 1, n)
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["meta"]["3"]  # as written before the layout record
    meta_file.write_text(json.dumps(meta))
    monkeypatch.setattr(backend_module, "ENTRIES_PER_BUCKET", 2)
    old = TinyDBStore(home)
    assert all(old.view().find_serial(n + 1) == n for n in range(300))  # 64 buckets meanwhile
    with old.transaction() as txn:
        txn.put_serial(1000, 999)
    fresh = TinyDBStore(home).view()
    assert fresh._meta_doc(3)["serials"] == [256, 301]
    assert max(int(name[1:-5]) for name in _bucket_files(home, "serials")) in range(128, 256)
    assert all(fresh.find_serial(n + 1) == n for n in range(300)) and fresh.find_serial(1000) == 999


def test_a_split_that_fails_before_its_commit_point_changes_nothing(tmp_path, monkeypatch):
    from tui_ca.engine.store import files as files_module

    home = tmp_path / "home"
    store = TinyDBStore(home)
    with store.transaction() as txn:
        for n in range(128):
            txn.put_serial(n + 1, n)
    before = _bucket_files(home, "serials")
    monkeypatch.setattr(backend_module, "ENTRIES_PER_BUCKET", 2)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module, "_write_durably", full_disk)
    with pytest.raises(Exception, match="No space left"):
        with TinyDBStore(home).transaction() as txn:
            txn.put_serial(500, 499)
    monkeypatch.undo()
    assert _bucket_files(home, "serials") == before
    view = TinyDBStore(home).view()
    assert view._meta_doc(3)["serials"] == [64, 128]
    assert all(view.find_serial(n + 1) == n for n in range(128)) and view.find_serial(500) is None


@pytest.mark.parametrize("layout", ["x", [64], [100, 5], [32, 1], [64, -1], [64, 1.5]])
def test_a_damaged_index_layout_is_refused_naming_the_meta_file(tmp_path, layout):
    import json

    from tui_ca.engine.store import StoreDamagedError

    home = tmp_path / "home"
    store = TinyDBStore(home)
    with store.transaction() as txn:
        txn.put_serial(1, 1)
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["meta"]["3"]["serials"] = layout
    meta_file.write_text(json.dumps(meta))
    before = meta_file.read_bytes()
    with pytest.raises(StoreDamagedError, match=str(meta_file)):
        TinyDBStore(home).view().find_serial(1)
    with pytest.raises(StoreDamagedError, match=str(meta_file)):
        with TinyDBStore(home).transaction() as txn:
            txn.put_serial(2, 2)
    assert meta_file.read_bytes() == before

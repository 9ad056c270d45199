"""Index entries are found by hashed doc_id; colliding keys probe to the next slot."""

from __future__ import annotations

import pytest

from tui_ca.engine.store import tinydb as backend_module
from tui_ca.engine.store.tinydb import TinyDBStore

pytestmark = pytest.mark.tinydb_only


def test_colliding_keys_each_keep_their_own_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(backend_module, "key_shard", lambda key: "k00")
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

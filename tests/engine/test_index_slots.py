"""Index entries are found by hashed doc_id; colliding keys probe to the next slot."""

from __future__ import annotations

from tui_ca.engine import repository as repo
from tui_ca.engine.store import Store


def test_colliding_keys_each_keep_their_own_entry(tmp_path, monkeypatch):
    monkeypatch.setattr(repo, "key_shard", lambda key: "k00")
    monkeypatch.setattr(repo, "_index_slot", lambda key: 7)  # every key wants slot 7
    store = Store(tmp_path / "home")
    with store.transaction() as txn:
        for key in ("alpha", "beta", "gamma"):
            repo.index_put(txn, "requesters", key, {"v": key})
        repo.index_put(txn, "requesters", "beta", {"v": "beta, updated"})
    view = store.view()
    assert [repo.index_get(view, "requesters", k)["v"] for k in ("alpha", "beta", "gamma")] == [
        "alpha", "beta, updated", "gamma",
    ]  # fmt: skip
    assert repo.index_get(view, "requesters", "delta") is None
    shard = view.table("requesters", "k00")
    assert sorted(doc.doc_id for doc in shard.all()) == [7, 8, 9]


def test_slots_spread_keys_and_stay_stable():
    slots = {repo._index_slot(f"phone-{i}") for i in range(10_000)}
    assert len(slots) == 10_000
    assert repo._index_slot("phone-1") == repo._index_slot("phone-1") > 0

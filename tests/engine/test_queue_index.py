"""Expiring the queue reads the queue, not every request ever made (serve's start-up on a big CA)."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from helpers import csr_pem, make_csr

from tui_ca.engine import CertificateAuthority, RequestStatus

# The queue record is written with the shards: these tests watch the files a journal commit writes.
pytestmark = pytest.mark.journal_commits


@pytest.mark.tinydb_only
def test_expire_queue_never_reads_shards_of_decided_requests(ca, home, clock):
    results = ca.submit_many([(csr_pem(make_csr(cn=f"q{i}.example.net")), None) for i in range(260)])
    ids = [r.request.id for r in results]
    ca.approve(ids[:255])  # every request of the first shard decided
    # Make the first shard unreadable: a full scan would now fail.
    shard = home / "db" / "requests" / "00000.json"
    shard.write_bytes(b"null")
    clock.now += timedelta(days=31)
    fresh = CertificateAuthority(home, clock=clock)
    assert fresh.expire_queue() == ids[255:]


def test_the_queue_index_follows_every_decision(ca, clock):
    results = ca.submit_many([(csr_pem(make_csr(cn=f"d{i}.example.net")), None) for i in range(5)])
    ids = [r.request.id for r in results]
    ca.approve([ids[0]])
    ca.reject(ids[1], "no")
    clock.now += timedelta(days=31)
    assert ca.expire_queue() == ids[2:]
    assert ca.requests(RequestStatus.QUEUED) == []
    assert list(ca.store.view().iter_requests(status="queued")) == []


@pytest.mark.tinydb_only
def test_a_home_from_before_the_queue_index_gets_it_on_its_next_commit(ca, home, clock):
    import json
    import shutil

    ids = [ca.submit(csr_pem(make_csr(cn=f"old{i}.example.net"))).request.id for i in range(3)]
    shutil.rmtree(home / "db" / "queue")
    meta_file = home / "db" / "meta" / "meta.json"
    meta = json.loads(meta_file.read_text())
    del meta["meta"]["1"]["queue_indexed"]
    meta_file.write_text(json.dumps(meta))
    old = CertificateAuthority(home, clock=clock)
    assert [d["id"] for d in old.store.view().iter_requests(status="queued")] == ids  # full scan meanwhile
    old.reject(ids[0], "no")  # any commit builds the index
    assert sorted(p.name for p in (home / "db" / "queue").iterdir()) == ["00000.json"]
    clock.now += timedelta(days=31)
    assert CertificateAuthority(home, clock=clock).expire_queue() == ids[1:]


# ------------------------------------------------ the record of non-empty queue shards


def _meta(home):
    import json

    return json.loads((home / "db" / "meta" / "meta.json").read_text())


def _write_meta(home, meta) -> None:
    import json

    (home / "db" / "meta" / "meta.json").write_text(json.dumps(meta))


def _queued_ids(home, clock) -> list[int]:
    return [d["id"] for d in CertificateAuthority(home, clock=clock).store.view().iter_requests(status="queued")]


@pytest.mark.tinydb_only
def test_reading_the_queue_opens_only_the_shards_the_record_names(ca, home, clock):
    results = ca.submit_many([(csr_pem(make_csr(cn=f"s{i}.example.net")), None) for i in range(300)])
    ids = [r.request.id for r in results]
    ca.approve(ids[:-1])  # every request of the first shard decided: its queue shard stays, empty
    assert (home / "db" / "queue" / "00000.json").exists()
    assert _meta(home)["meta"]["4"]["shards"] == {"00001": 1}
    # An empty shard the record leaves out is never opened: were it read, it would be refused.
    (home / "db" / "queue" / "00000.json").write_bytes(b"null")
    assert _queued_ids(home, clock) == ids[-1:]
    assert CertificateAuthority(home, clock=clock).requests(RequestStatus.QUEUED)[0].id == ids[-1]


@pytest.mark.tinydb_only
def test_check_names_a_record_that_disagrees_with_the_queue_shards(ca, home, clock):
    ids = [ca.submit(csr_pem(make_csr(cn=f"c{i}.example.net"))).request.id for i in range(2)]
    assert ca.check() == []
    meta = _meta(home)
    meta["meta"]["4"]["shards"] = {"00000": 1, "00007": 3}
    _write_meta(home, meta)
    problems = CertificateAuthority(home, clock=clock).check()
    assert "queue shards: the record says queue shard 00000 holds 1, it holds 2" in problems
    assert "queue shards: the record says queue shard 00007 holds 3, it holds 0" in problems
    assert len(ids) == 2


@pytest.mark.tinydb_only
def test_a_home_from_before_the_record_walks_the_queue_until_its_next_commit(ca, home, clock):
    ids = [ca.submit(csr_pem(make_csr(cn=f"r{i}.example.net"))).request.id for i in range(3)]
    meta = _meta(home)
    del meta["meta"]["4"]
    _write_meta(home, meta)
    assert _queued_ids(home, clock) == ids  # every shard walked meanwhile
    assert CertificateAuthority(home, clock=clock).check() == []
    CertificateAuthority(home, clock=clock).reject(ids[0], "no")  # any commit builds the record
    assert _meta(home)["meta"]["4"]["shards"] == {"00000": 2}
    assert _queued_ids(home, clock) == ids[1:]


@pytest.mark.tinydb_only
def test_a_commit_by_a_program_that_does_not_keep_the_record_makes_readers_walk(ca, home, clock, monkeypatch):
    from tui_ca.engine.store import tinydb

    first = ca.submit(csr_pem(make_csr(cn="kept.example.net"))).request.id
    # An older tui-ca queues a request in a shard the record does not name (IDs jump to the next shard).
    meta = _meta(home)
    meta["meta"]["1"]["next_id"] = 300
    _write_meta(home, meta)
    with monkeypatch.context() as older:
        older.setattr(tinydb, "_write_queue_shards", lambda txn: None)
        late = CertificateAuthority(home, clock=clock).submit(csr_pem(make_csr(cn="late.example.net"))).request.id
    assert late == 300 and _meta(home)["meta"]["4"]["shards"] == {"00000": 1}
    assert _queued_ids(home, clock) == [first, late]  # the stale record is not trusted
    CertificateAuthority(home, clock=clock).reject(first, "no")
    assert _meta(home)["meta"]["4"]["shards"] == {"00001": 1}  # rebuilt by the next commit
    assert _queued_ids(home, clock) == [late]


@pytest.mark.tinydb_only
def test_a_commit_that_fails_keeps_the_record_and_the_shards_together(ca, home, clock, monkeypatch):
    import errno

    from tui_ca.engine.errors import CAError

    first = ca.submit(csr_pem(make_csr(cn="one.example.net"))).request.id
    before = _meta(home)["meta"]["4"]
    real_replace = os.replace

    def replace(src, dst):
        # The disk fails before the commit point: neither the queue shard nor the record may change.
        if str(dst).endswith("journal.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(CAError):
        CertificateAuthority(home, clock=clock).reject(first, "no")
    monkeypatch.setattr(os, "replace", real_replace)
    assert _meta(home)["meta"]["4"] == before
    assert _queued_ids(home, clock) == [first]
    assert CertificateAuthority(home, clock=clock).check() == []

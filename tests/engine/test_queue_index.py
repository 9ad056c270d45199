"""Expiring the queue reads the queue, not every request ever made (serve's start-up on a big CA)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from helpers import csr_pem, make_csr

from tui_ca.engine import CertificateAuthority, RequestStatus


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

"""A long-lived reader keeps a bounded amount of parsed shards (DESIGN §3: memory independent of store size)."""

from __future__ import annotations

import pytest
from helpers import csr_pem, make_csr

from tui_ca.engine import CertificateAuthority
from tui_ca.engine.store import files
from tui_ca.engine.store.tinydb import ID_SHARD_SIZE


@pytest.mark.tinydb_only
def test_reading_every_record_keeps_no_more_than_the_cache_bound(ca, monkeypatch):
    items = [(csr_pem(make_csr(cn=f"bounded-{i}.example")), None) for i in range(2 * ID_SHARD_SIZE + 10)]
    ids = [result.request.id for result in ca.submit_many(items)]
    monkeypatch.setattr(files, "CACHE_BYTES", 64 * 1024)
    reader = CertificateAuthority(ca.home)
    # Keeping views: every request shard and index bucket read, one after another, twice.
    for _ in range(2):
        for request_id in ids:
            assert reader.request(request_id).requester == f"bounded-{request_id - ids[0]}.example"
            assert reader.find_by_csr(items[request_id - ids[0]][0]).id == request_id
    cache = reader.store.files._cache
    assert 0 < cache.size <= 64 * 1024
    kept = list(cache)
    assert kept and all(path.is_file() for path in kept)


@pytest.mark.journal_commits
@pytest.mark.tinydb_only
def test_a_shard_larger_than_the_bound_is_still_read_and_kept_alone(ca, monkeypatch):
    ca.submit(csr_pem(make_csr(cn="alone.example")))
    monkeypatch.setattr(files, "CACHE_BYTES", 1)
    reader = CertificateAuthority(ca.home)
    assert [r.requester for r in reader.requests()] == ["alone.example"]
    assert len(list(reader.store.files._cache)) == 1

"""The PostgreSQL writer's cache: bulk calls read in windows, and what a transaction wrote is what it reads."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.helpers import csr_pem, make_csr, make_key
from tests.pg.pg_worker import pg_home
from tests.pg_support import PgCluster

pytestmark = pytest.mark.postgresql
COUNT = 60


def _count_selects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = psycopg.Connection.execute

    def counting(self, query, *args, **kwargs):  # type: ignore[no-untyped-def]
        if isinstance(query, str) and query.lstrip().upper().startswith("SELECT"):
            seen.append(query)
        return real(self, query, *args, **kwargs)

    monkeypatch.setattr(psycopg.Connection, "execute", counting)
    return seen


def test_a_bulk_submission_and_approval_read_in_batches(tmp_path: Path, pg_cluster: PgCluster, pg_url: str,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ca = pg_home(tmp_path, pg_url)
    ca.unlock()
    items = [(csr_pem(make_csr(make_key(fresh=True), cn=f"bulk-{n}")), None) for n in range(COUNT)]
    selects = _count_selects(monkeypatch)
    ids = [result.request.id for result in ca.submit_many(items, source="test")]
    # Digests, keys and requesters of all sixty looked up at once, not three reads each.
    assert len(selects) < 15, selects
    selects.clear()
    outcomes = ca.approve(ids)
    assert all(outcome.certificate is not None for outcome in outcomes)
    # One read per certificate is left (its new random serial); requests, CSRs and
    # requesters come in growing windows: 1, 4, 16, 64 IDs.
    keyed = [q for q in selects if "FROM serials" not in q]
    assert len(keyed) < 30, keyed
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*), count(DISTINCT serial) FROM certificates", db) == f"{COUNT}|{COUNT}"
    assert pg_cluster.psql("SELECT count(*) FROM requests WHERE status = 'approved'", db) == str(COUNT)


def test_inside_a_transaction_reads_see_its_writes_and_copies_stay_apart(tmp_path: Path, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    ca.submit(csr_pem(make_csr(cn="first")))
    store = ca.store
    with pytest.raises(RuntimeError, match="roll back"), store.transaction() as txn:
        doc = txn.get_request(1)
        assert doc is not None and doc["status"] == "queued"
        doc["status"] = "changed but not written"
        assert txn.get_request(1)["status"] == "queued"  # the engine's copy is its own
        assert txn.get_request(2) is None  # read in the window, known absent
        txn.put_request({**txn.get_request(1), "reason": "written"})
        assert txn.get_request(1)["reason"] == "written"
        assert txn.find_requester("FIRST")["queued"] == 1  # case-folded, as the index is
        txn.put_requester("first", {"name": "first", "queued": None, "active": None})
        assert txn.find_requester("first") == {"name": "first", "queued": None, "active": None}
        assert txn.find_serial(0x1234) is None
        txn.put_serial(0x1234, 1)
        assert txn.find_serial(0x1234) == 1
        raise RuntimeError("roll back")
    # Nothing of the cache outlives its transaction: the next one reads the server, which has none of it.
    with store.transaction() as txn:
        assert txn.get_request(1).get("reason") != "written"
        assert txn.find_requester("first")["queued"] == 1
        assert txn.find_serial(0x1234) is None

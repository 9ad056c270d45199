"""The rules hold on PostgreSQL when several processes race (real processes, one database)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

from tests.helpers import csr_pem, make_csr
from tests.pg import pg_worker
from tests.pg.pg_worker import pg_home
from tests.pg_support import PgCluster

ROUNDS = 12
WORKERS = 4
DEADLINE = 300


def test_four_processes_approving_one_request_make_one_certificate(tmp_path: Path, pg_cluster: PgCluster,
                                                                   pg_url: str) -> None:  # fmt: skip
    ca = pg_home(tmp_path, pg_url)
    ids = [ca.submit(csr_pem(make_csr(cn=f"race-{n}"))).request.id for n in range(ROUNDS)]
    context = multiprocessing.get_context("spawn")
    barrier, results = context.Barrier(WORKERS), context.Queue()
    workers = [context.Process(target=pg_worker.approver, args=(str(ca.home), ids, barrier, results))
               for _ in range(WORKERS)]  # fmt: skip
    for worker in workers:
        worker.start()
    outcomes = [results.get(timeout=DEADLINE) for _ in range(ROUNDS * WORKERS)]
    for worker in workers:
        worker.join(timeout=DEADLINE)
        assert worker.exitcode == 0
    for request_id in ids:
        mine = [o for o in outcomes if o[0] == request_id]
        assert len(mine) == WORKERS
        assert sum(1 for o in mine if o[1]) == 1, mine
        assert all("not queued" in o[2] for o in mine if not o[1]), mine
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*), count(DISTINCT id), count(DISTINCT serial) FROM certificates", db) == (
        f"{ROUNDS}|{ROUNDS}|{ROUNDS}"
    )
    assert ca.verify_audit() == []


def test_two_processes_submitting_100_each_get_200_distinct_ids(tmp_path: Path, pg_cluster: PgCluster,
                                                                pg_url: str) -> None:  # fmt: skip
    ca = pg_home(tmp_path, pg_url)
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    batches = [[csr_pem(make_csr(cn=f"p{worker}-{n}")) for n in range(100)] for worker in range(2)]
    workers = [context.Process(target=pg_worker.submitter, args=(str(ca.home), batch, results)) for batch in batches]
    for worker in workers:
        worker.start()
    given = [results.get(timeout=DEADLINE) for _ in workers]
    for worker in workers:
        worker.join(timeout=DEADLINE)
        assert worker.exitcode == 0
    all_ids = given[0] + given[1]
    assert len(set(all_ids)) == 200
    assert sorted(all_ids) == list(range(1, 201))
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*), min(id), max(id) FROM requests WHERE status = 'queued'", db) == "200|1|200"
    assert ca.queued_count() == 200
    assert ca.verify_audit() == []

"""The database going away mid-operation: one line or success, nothing half-done, then it works again."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from tests.helpers import csr_pem, make_csr
from tests.pg.pg_worker import pg_home
from tests.pg_support import PgCluster
from tui_ca.engine import CAError
from tui_ca.engine.store import postgresql
from tui_ca.engine.store.postgresql import DatabaseUnavailableError

DEADLINE = 120.0


def _terminate_tui_ca_sessions(cluster: PgCluster, db: str) -> str:
    return cluster.psql(
        f"SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '{db}' "
        "AND application_name = 'tui-ca' AND pid <> pg_backend_pid()"
    )


def _assert_whole(cluster: PgCluster, db: str) -> None:
    """Every request has its CSR, its index entries and its audit record; the counters agree."""
    counts = cluster.psql(
        "SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM csr_pems), (SELECT count(*) FROM csrs), "
        "(SELECT count(*) FROM audit WHERE doc->>'action' = 'submit'), "
        "(SELECT (doc->>'next_id')::int - 1 FROM meta WHERE name = 'meta'), "
        "(SELECT (doc->>'queued')::int FROM meta WHERE name = 'meta')", db)  # fmt: skip
    values = counts.split("|")
    assert len(set(values)) == 1, counts


def test_connection_lost_inside_an_operation_changes_nothing(tmp_path: Path, pg_cluster: PgCluster, pg_url: str,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    ca = pg_home(tmp_path, pg_url)
    db = pg_url.rsplit("/", 1)[1]
    real = postgresql._Transaction.put_csr_pem

    def cut_then_write(self, request_id: int, pem: str) -> None:
        # The request row is written already; the server drops us before the rest.
        assert _terminate_tui_ca_sessions(pg_cluster, db) != "0"
        real(self, request_id, pem)

    monkeypatch.setattr(postgresql._Transaction, "put_csr_pem", cut_then_write)
    with pytest.raises(DatabaseUnavailableError) as caught:
        ca.submit(csr_pem(make_csr(cn="cut-1")))
    assert "nothing was changed" in str(caught.value) and "\n" not in str(caught.value)
    assert pg_cluster.psql("SELECT count(*) FROM requests", db) == "0"
    monkeypatch.setattr(postgresql._Transaction, "put_csr_pem", real)
    # The same object reconnects on its next operation.
    assert ca.submit(csr_pem(make_csr(cn="cut-1"))).request.id == 1
    _assert_whole(pg_cluster, db)


def test_a_lost_commit_is_looked_up_not_guessed(tmp_path: Path, pg_cluster: PgCluster, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    db = pg_url.rsplit("/", 1)[1]
    # A deferred trigger that ends this session while COMMIT runs: the commit fails
    # with the connection, and the store must find out that it did not land.
    pg_cluster.psql(
        "CREATE FUNCTION die() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); RETURN NULL; END $$; "
        "CREATE CONSTRAINT TRIGGER die_at_commit AFTER INSERT ON requests DEFERRABLE INITIALLY DEFERRED "
        "FOR EACH ROW WHEN (NEW.doc->>'requester' = 'doomed') EXECUTE FUNCTION die()", db)  # fmt: skip
    with pytest.raises(DatabaseUnavailableError) as caught:
        ca.submit(csr_pem(make_csr(cn="doomed")))
    assert "during the commit" in str(caught.value) and "nothing was changed" in str(caught.value)
    assert pg_cluster.psql("SELECT count(*) FROM requests", db) == "0"
    assert ca.submit(csr_pem(make_csr(cn="survivor"))).request.id == 1


def test_a_server_restart_under_a_stream_of_submissions(tmp_path: Path, pg_cluster: PgCluster, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    db = pg_url.rsplit("/", 1)[1]
    acknowledged: list[int] = []
    refusals: list[str] = []
    stop = threading.Event()

    def stream() -> None:
        n = 0
        while not stop.is_set():
            n += 1
            try:
                acknowledged.append(ca.submit(csr_pem(make_csr(cn=f"stream-{n}"))).request.id)
            except CAError as exc:
                refusals.append(str(exc))

    worker = threading.Thread(target=stream)
    worker.start()
    try:
        _wait(lambda: len(acknowledged) >= 10)
        pg_cluster.restart()
        before = len(acknowledged)
        # It recovers by itself: submissions succeed again after the restart.
        _wait(lambda: len(acknowledged) >= before + 5)
    finally:
        stop.set()
        worker.join(DEADLINE)
    assert all("\n" not in r and ("nothing was changed" in r or "cannot connect" in r) for r in refusals), refusals
    stored = pg_cluster.psql("SELECT string_agg(id::text, ',' ORDER BY id) FROM requests", db)
    assert [int(i) for i in stored.split(",")] == sorted(acknowledged)
    _assert_whole(pg_cluster, db)
    # Reads on the long-lived object work again too.
    assert ca.queued_count() == len(acknowledged)


def _wait(condition, deadline: float = DEADLINE) -> None:
    import time

    end = time.monotonic() + deadline
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.02)

"""The throwaway server the PostgreSQL tests stand on is real and isolated."""

from __future__ import annotations

import os

from tests.pg_support import PgCluster


def test_cluster_runs_unprivileged_on_loopback(pg_cluster: PgCluster) -> None:
    assert pg_cluster.psql("SHOW listen_addresses") == "127.0.0.1"
    assert pg_cluster.psql("SHOW port") == str(pg_cluster.port)
    owner = os.stat(pg_cluster.data).st_uid
    assert owner != 0


def test_each_test_gets_an_empty_database(pg_cluster: PgCluster, pg_url: str) -> None:
    name = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace", name) == "0"

"""Shared fixtures: temporary CA homes with a fixed clock."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tui_ca.engine import Actor, CertificateAuthority, NameFields
from tui_ca.engine import store as store_seam
from tui_ca.engine.store.memory import MemoryStore

# A fixed instant for reproducible artefacts; far enough from year boundaries
# that validity arithmetic never straddles UTCTime/GeneralizedTime (2050).
FIXED_NOW = datetime(2026, 3, 14, 9, 26, 53, tzinfo=UTC)

DEMO_NAMES = NameFields(
    country="GB", state="England", locality="London", organization="Example Networks",
    org_unit="PKI", common_name="Example Issuing CA", email="pki@example.net",
)  # fmt: skip


class Clock:
    """A settable clock for engine tests."""

    def __init__(self, now: datetime = FIXED_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "tinydb_only: a test of the TinyDB backend's files (not run on memory)")
    config.addinivalue_line("markers", "breaks_a_database_rule: sets up a state PostgreSQL's constraints refuse "
                            "(not run there; tests/pg/test_rules_in_the_database.py shows the refusal)")  # fmt: skip
    config.addinivalue_line("markers", "journal_commits: a test of the journal's file mechanics: every commit "
                            "rewrites its shards (the change log is off; tests/engine/test_change_log.py tests it)")  # fmt: skip
    config.addinivalue_line("markers", "postgresql: needs the throwaway PostgreSQL cluster (select with -m postgresql)")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test that uses ``backend`` (all of tests/engine, through its
    # autouse fixture) runs once per store backend; tests of the TinyDB files
    # themselves only on TinyDB.
    if "backend" in metafunc.fixturenames:
        only_tinydb = metafunc.definition.get_closest_marker("tinydb_only") is not None
        backends = ["tinydb"] if only_tinydb else list(store_seam.BACKENDS)
        if metafunc.definition.get_closest_marker("breaks_a_database_rule") is not None:
            backends.remove("postgresql")
        metafunc.parametrize("backend", backends, indirect=True)


@pytest.fixture(autouse=True)
def _journal_commits(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    if request.node.get_closest_marker("journal_commits") is not None:
        from tui_ca.engine.store import change_log

        monkeypatch.setattr(change_log, "ENABLED", False)
        monkeypatch.setenv("TUI_CA_CHANGE_LOG", "off")  # and in the commands the test runs


@pytest.fixture
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch):
    """The store backend every CertificateAuthority of the test opens by default."""
    monkeypatch.setattr(store_seam, "default_backend", request.param)
    if request.param == "postgresql":
        # Each home of the test gets a database of its own on the session's server.
        from tests.pg_support import HomeDatabases
        from tui_ca.engine.store import postgresql, selection

        monkeypatch.setattr(selection, "choose", HomeDatabases(request.getfixturevalue("pg_cluster")).choose)
        yield request.param
        postgresql.forget_shared()
        return
    yield request.param
    MemoryStore.forget_homes()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


@pytest.fixture
def ca(home: Path, clock: Clock) -> CertificateAuthority:
    """An initialised CA (EC P-256) with a base URL, on a fixed clock."""
    authority = CertificateAuthority(home, clock=clock, actor=Actor("alice", "192.0.2.10"))
    authority.init(DEMO_NAMES, base_url="http://127.0.0.1:8080")
    return authority


# The throwaway PostgreSQL server (pg_cluster, pg_url) for the PostgreSQL backend's tests.
pytest_plugins = ["tests.pg_support"]

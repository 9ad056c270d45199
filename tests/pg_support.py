"""A throwaway PostgreSQL server for the tests: a real cluster, no mock.

``initdb`` + ``pg_ctl`` in a fresh temporary folder, on a free port of
127.0.0.1 and a Unix socket inside that folder, removed when the session
ends. PostgreSQL refuses to run as root (as CI runs the tests), so the server
then runs as an unprivileged system user, created once if missing.

Missing server binaries fail the tests with one line saying what to install:
a skip would let a CI without PostgreSQL pass while proving nothing about it.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SERVER_USER = "tuica-pg"
SUPERUSER = "tuica"
# Generous: a loaded CI machine with two cores shared by several runs.
START_DEADLINE = 120.0
INSTALL_HINT = "PostgreSQL server binaries (initdb, pg_ctl) not found: install Debian's 'postgresql' package"


def find_bindir() -> Path | None:
    """Where initdb and pg_ctl live: pg_config's answer, else the newest Debian version folder."""
    candidates: list[Path] = []
    if shutil.which("pg_config"):
        out = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            candidates.append(Path(out.stdout.strip()))
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0))
    candidates.extend(Path(p) for p in reversed(versions))
    for folder in candidates:
        if (folder / "initdb").is_file() and (folder / "pg_ctl").is_file():
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ensure_server_user() -> str | None:
    """The user the server runs as: None (ourselves) unless we are root."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam(SERVER_USER)
    except KeyError:
        subprocess.run(
            ["useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
             "--shell", "/usr/sbin/nologin", SERVER_USER],
            check=True, capture_output=True,
        )  # fmt: skip
    return SERVER_USER


class PgCluster:
    """One running PostgreSQL cluster in a temporary folder."""

    def __init__(self, bindir: Path, *, fsync: bool = False) -> None:
        self.bindir = bindir
        self.fsync = fsync
        """Off for tests (each commit's fsync only costs time there); the bench turns it on."""
        self.user = _ensure_server_user()
        # Not under pytest's tmp folder: that is 0700 and owned by root, so the
        # server user could not reach its own data directory.
        self.base = Path(tempfile.mkdtemp(prefix="tuica-pg-"))
        self.data = self.base / "data"
        self.sockets = self.base / "sockets"
        self.sockets.mkdir()
        self.port = 0
        self._counter = 0
        self._template = ""
        if self.user is not None:
            entry = pwd.getpwnam(self.user)
            for path in (self.base, self.sockets):
                os.chown(path, entry.pw_uid, entry.pw_gid)
            # Clients (root, or the test's own user) connect over the socket folder.
            os.chmod(self.base, 0o755)
            os.chmod(self.sockets, 0o755)

    def _run(self, *argv: str, check: bool = True, timeout: float = START_DEADLINE) -> subprocess.CompletedProcess:
        command = [str(self.bindir / argv[0]), *argv[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.base)
        if check and result.returncode != 0:
            raise RuntimeError(f"{argv[0]} failed ({result.returncode}): {result.stderr.strip() or result.stdout}")
        return result

    def init(self) -> None:
        self._run("initdb", "--pgdata", str(self.data), "--username", SUPERUSER, "--auth", "trust",
                  "--encoding", "UTF8", "--locale", "C", "--no-instructions")  # fmt: skip
        # A role that must give a password over TCP: first match wins in pg_hba.
        hba = self.data / "pg_hba.conf"
        hba.write_text(
            "host all tuica_pw 127.0.0.1/32 scram-sha-256\nlocal all all trust\nhost all all 127.0.0.1/32 trust\n"
        )

    @property
    def log_file(self) -> Path:
        return self.base / "server.log"

    def start(self) -> None:
        """Start on a free port (a new one if another process took the one chosen) and wait until it answers."""
        last = ""
        for _attempt in range(5):
            self.port = self.port or _free_port()
            options = (
                f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories={self.sockets} "
                f"-c fsync={'on' if self.fsync else 'off'} -c max_connections=200 -c shared_buffers=64MB"
            )
            result = self._run("pg_ctl", "start", "--pgdata", str(self.data), "--log", str(self.log_file),
                               "--wait", "--timeout", str(int(START_DEADLINE)), "-o", options,
                               check=False)  # fmt: skip
            if result.returncode == 0:
                self.wait_ready()
                return
            last = self.log_file.read_text(errors="replace")[-2000:] if self.log_file.exists() else result.stderr
            if "Address already in use" not in last and "could not bind" not in last:
                break
            self.port = 0
        raise RuntimeError(f"PostgreSQL did not start: {last}")

    def wait_ready(self) -> None:
        deadline = time.monotonic() + START_DEADLINE
        pg_isready = self.bindir / "pg_isready"
        while True:
            probe = subprocess.run(
                [str(pg_isready), "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", "postgres"],
                capture_output=True,
            )
            if probe.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL on port {self.port} not ready after {START_DEADLINE:.0f} s")
            time.sleep(0.05)

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "stop", "--pgdata", str(self.data), "--mode", mode, "--wait", check=False)

    def restart(self) -> None:
        """Stop (closing every connection) and start again on the same port."""
        self.stop()
        self.start()

    def remove(self) -> None:
        self.stop("immediate")
        shutil.rmtree(self.base, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@127.0.0.1:{self.port}/{database}"

    def psql(self, sql: str, database: str = "postgres") -> str:
        """Run SQL as the superuser through the real psql client; its output."""
        result = subprocess.run(
            [str(self.bindir / "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
             "-h", "127.0.0.1", "-p", str(self.port), "-U", SUPERUSER, "-d", database, "-c", sql],
            capture_output=True, text=True, timeout=START_DEADLINE,
        )  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"psql failed: {result.stderr.strip()}")
        return result.stdout.strip()

    def new_database(self, prefix: str = "t", template: str = "template0") -> str:
        """A fresh database (empty, or a copy of ``template``); its URL."""
        self._counter += 1
        name = f"{prefix}_{os.getpid()}_{self._counter}"
        self.psql(f"CREATE DATABASE {name} TEMPLATE {template}")
        return self.url(name)

    def migrated_template(self) -> str:
        """The name of a database holding the current schema and no records, made once (copied per test)."""
        if not self._template:
            from tui_ca.engine.store.postgresql import PostgreSQLStore

            url = self.new_database("template")
            store = PostgreSQLStore(url, check_schema=False)
            store.migrate()
            store.close()  # a template must have no connections while it is copied
            self._template = url.rsplit("/", 1)[1]
        return self._template

    def new_ca_database(self) -> str:
        """A fresh database with the current schema and no records; its URL."""
        return self.new_database(template=self.migrated_template())


def start_cluster(*, fsync: bool = False) -> PgCluster:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    cluster = PgCluster(bindir, fsync=fsync)
    try:
        cluster.init()
        cluster.start()
    except BaseException:
        cluster.remove()
        raise
    return cluster


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[PgCluster]:
    """One PostgreSQL server for the whole test session."""
    cluster = start_cluster()
    try:
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def pg_url(pg_cluster: PgCluster) -> str:
    """The URL of a fresh database on the session's server (no schema yet)."""
    return pg_cluster.new_database()


class HomeDatabases:
    """Each CA home of a test gets a database of its own, as a home gets its own TinyDB files.

    Installed as the store selection for the test (``backend`` = "postgresql"),
    so every ``CertificateAuthority(home)`` in the process opens the database
    of its home, created from the migrated template the first time it is seen.
    """

    def __init__(self, cluster: PgCluster) -> None:
        self.cluster = cluster
        self.urls: dict[Path, str] = {}

    def choose(self, home: Path | str):
        from tui_ca.engine.store.selection import DatabaseChoice

        key = Path(home).absolute()
        if key not in self.urls:
            self.urls[key] = self.cluster.new_ca_database()
        return DatabaseChoice(self.urls[key])


@pytest.fixture
def pg_ca_url(pg_cluster: PgCluster) -> str:
    """The URL of a fresh database with the schema in place and no CA yet."""
    return pg_cluster.new_ca_database()

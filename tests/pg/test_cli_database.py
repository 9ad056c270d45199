"""Selecting PostgreSQL from the command line: init, later commands, join, migrate, refusals."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from tests.helpers import assert_refused, csr_pem, make_csr, run_cli
from tests.pg_support import PgCluster

INIT = ("init", "--cn", "PG Issuing CA", "--org", "Example Networks")


def _db(url: str, *args: str) -> tuple[str, ...]:
    return ("--database", url, *args)


def test_init_records_the_database_and_later_commands_need_no_flag(tmp_path: Path, pg_cluster: PgCluster,
                                                                   pg_url: str) -> None:  # fmt: skip
    home = tmp_path / "admin"
    run_cli(home, *_db(pg_url, *INIT), check=True)
    recorded = json.loads((home / "database.json").read_text())
    assert recorded == {"url": pg_url}
    assert (home / "database.json").stat().st_mode & 0o077 == 0
    csr = tmp_path / "phone.csr"
    csr.write_bytes(csr_pem(make_csr(cn="phone-1")))
    submitted = run_cli(home, "submit", str(csr), check=True)
    request_id = int(submitted.stdout)
    run_cli(home, "approve", str(request_id), check=True)
    # The records are in the database, not in TinyDB files of the home.
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql(f"SELECT status FROM requests WHERE id = {request_id}", db) == "approved"
    assert pg_cluster.psql("SELECT count(*) FROM certificates", db) == "1"
    assert not (home / "db").exists()
    assert run_cli(home, "audit", "--verify", check=True).stdout.startswith(b"audit log intact")


def test_the_environment_selects_the_database_too(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "admin"
    run_cli(home, *INIT, env={"TUI_CA_DATABASE": pg_url}, check=True)
    assert json.loads((home / "database.json").read_text())["url"] == pg_url


def test_join_prepares_a_second_home_without_the_ca_key(tmp_path: Path, pg_url: str) -> None:
    admin, node = tmp_path / "admin", tmp_path / "node2"
    run_cli(admin, *_db(pg_url, *INIT), check=True)
    joined = subprocess_join(node, pg_url)
    assert joined.returncode == 0, joined.stderr
    assert not list(node.rglob("*.key"))
    assert (node / "ca" / "issuing.crt.pem").read_bytes() == (admin / "ca" / "issuing.crt.pem").read_bytes()
    csr = tmp_path / "phone.csr"
    csr.write_bytes(csr_pem(make_csr(cn="phone-2")))
    request_id = int(run_cli(node, "submit", str(csr), check=True).stdout)
    # Intake on the node, approval on the admin host, the certificate seen from the node.
    run_cli(admin, "approve", str(request_id), check=True)
    shown = json.loads(run_cli(node, "show", str(request_id), "--json", check=True).stdout)
    assert shown["request"]["status"] == "approved" and shown["certificate"] is not None
    assert_refused(run_cli(node, "approve", str(request_id)), 1, "key")


def subprocess_join(home: Path, url: str) -> subprocess.CompletedProcess:
    return run_cli(home, "join", url)


def test_join_refuses_a_database_without_a_ca(tmp_path: Path, pg_url: str) -> None:
    run_cli(tmp_path / "x", *_db(pg_url, "migrate"), check=True)
    assert_refused(run_cli(tmp_path / "node", "join", pg_url), 1, "holds no CA")
    assert not (tmp_path / "node").exists() or not any((tmp_path / "node").iterdir())


def test_init_refuses_a_database_that_holds_a_ca(tmp_path: Path, pg_url: str) -> None:
    run_cli(tmp_path / "first", *_db(pg_url, *INIT), check=True)
    assert_refused(run_cli(tmp_path / "second", *_db(pg_url, *INIT)), 1, "holds a CA already", "join")
    assert not (tmp_path / "second" / "ca" / "issuing.key").exists()


def test_a_url_with_a_password_is_refused_with_one_line(tmp_path: Path, pg_cluster: PgCluster) -> None:
    url = f"postgresql://tuica:s3cret@127.0.0.1:{pg_cluster.port}/postgres"
    result = run_cli(tmp_path / "home", *_db(url, *INIT))
    assert_refused(result, 2, "password", ".pgpass")
    assert b"s3cret" not in result.stderr
    assert not (tmp_path / "home").exists()
    keyword = f"postgresql://tuica@127.0.0.1:{pg_cluster.port}/postgres?password=s3cret"
    assert_refused(run_cli(tmp_path / "home", *_db(keyword, *INIT)), 2, "password")
    assert_refused(run_cli(tmp_path / "home", *INIT, env={"TUI_CA_DATABASE": url}), 2, "password")


def test_a_url_that_is_not_postgresql_is_refused(tmp_path: Path) -> None:
    assert_refused(run_cli(tmp_path / "home", *_db("mysql://x@127.0.0.1/db", *INIT)), 2, "postgresql://")


def test_an_unreachable_database_is_one_line(tmp_path: Path, pg_cluster: PgCluster) -> None:
    dead = f"postgresql://tuica@127.0.0.1:{pg_cluster.port}/no_such_database"
    result = run_cli(tmp_path / "home", *_db(dead, *INIT))
    assert_refused(result, 1, "cannot connect", "no_such_database")


def test_a_password_comes_from_a_file_or_pgpass_never_the_command_line(tmp_path: Path, pg_cluster: PgCluster,
                                                                        pg_url: str) -> None:  # fmt: skip
    secret = "correct horse battery staple"
    db = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql(f"CREATE ROLE tuica_pw LOGIN PASSWORD '{secret}'; ALTER DATABASE {db} OWNER TO tuica_pw")
    url = pg_cluster.url(db, user="tuica_pw")
    home = tmp_path / "admin"
    assert_refused(run_cli(home, *_db(url, *INIT)), 1, "cannot connect")
    password_file = tmp_path / "db.password"
    password_file.write_text(secret + "\n")
    run_cli(home, "--database-password-file", str(password_file), *_db(url, *INIT), check=True)
    recorded = (home / "database.json").read_text()
    assert secret not in recorded and str(password_file) in recorded
    # Later commands find the password through the recorded file.
    run_cli(home, "list", check=True)
    audit = run_cli(home, "audit", "--json", check=True).stdout.decode()
    assert secret not in audit
    # libpq's own password file works as well (a joined node).
    pgpass = tmp_path / "pgpass"
    pgpass.write_text(f"127.0.0.1:{pg_cluster.port}:{db}:tuica_pw:{secret}\n")
    pgpass.chmod(0o600)
    joined = run_cli(tmp_path / "node", "join", url, env={"PGPASSFILE": str(pgpass)})
    assert joined.returncode == 0, joined.stderr
    assert secret not in (tmp_path / "node" / "database.json").read_text()
    run_cli(tmp_path / "node", "list", env={"PGPASSFILE": str(pgpass)}, check=True)


def test_migrate_creates_the_schema_once_and_says_so(tmp_path: Path, pg_cluster: PgCluster, pg_url: str) -> None:
    home = tmp_path / "h"
    first = run_cli(home, *_db(pg_url, "migrate"), check=True).stdout.decode()
    assert "applied 0001_records.sql, 0002_outbox.sql, 0003_refusals.sql" in first
    again = run_cli(home, *_db(pg_url, "migrate"), check=True).stdout.decode()
    assert "up to date (schema version 3)" in again
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT version, name FROM schema_migrations ORDER BY version", db) == (
        "1|0001_records.sql\n2|0002_outbox.sql\n3|0003_refusals.sql"
    )


def test_a_schema_newer_than_this_tui_ca_is_refused(tmp_path: Path, pg_cluster: PgCluster, pg_url: str) -> None:
    home = tmp_path / "admin"
    run_cli(home, *_db(pg_url, *INIT), check=True)
    db = pg_url.rsplit("/", 1)[1]
    pg_cluster.psql("INSERT INTO schema_migrations (version, name) VALUES (99, '0099_future.sql')", db)
    assert_refused(run_cli(home, "list"), 1, "schema version 99", "upgrade tui-ca")
    assert_refused(run_cli(home, "migrate"), 1, "schema version 99", "upgrade tui-ca")


def test_a_database_without_schema_is_refused_outside_init(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "admin"
    home.mkdir(mode=0o700)
    (home / "database.json").write_text(json.dumps({"url": pg_url}))
    assert_refused(run_cli(home, "list"), 1, "no tui-ca schema", "tui-ca migrate")


def test_a_damaged_database_record_is_named(tmp_path: Path) -> None:
    home = tmp_path / "admin"
    home.mkdir(mode=0o700)
    (home / "database.json").write_text("[]")
    assert_refused(run_cli(home, "list"), 1, "database.json is damaged")

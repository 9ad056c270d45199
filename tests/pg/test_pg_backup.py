"""backup and restore on PostgreSQL: a consistent copy while others keep approving, checked,
and restored into a fresh database."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.helpers import csr_pem, make_csr, run_cli
from tests.pg.pg_worker import pg_home
from tests.pg_support import PgCluster
from tui_ca.engine import Actor, CertificateAuthority, RequestStatus

DEADLINE = 120.0


def _consistent(ca: CertificateAuthority) -> None:
    """What one committed state looks like: every approved request has its certificate, and the reverse."""
    approved = {r.id for r in ca.requests(RequestStatus.APPROVED)}
    certified = {c.id for c in ca.certificates()}
    assert approved == certified
    assert ca.queued_count() == len(ca.requests(RequestStatus.QUEUED))
    assert ca.verify_audit() == []
    for cert_id in certified:
        assert ca.certificate_pem(cert_id).startswith(b"-----BEGIN CERTIFICATE-----")


def test_an_export_taken_during_approvals_is_one_committed_state(tmp_path: Path, pg_cluster: PgCluster,
                                                                 pg_url: str) -> None:  # fmt: skip
    ca = pg_home(tmp_path, pg_url)
    ids = [r.request.id for r in ca.submit_many([(csr_pem(make_csr(cn=f"b-{n}")), None) for n in range(60)])]
    stop = threading.Event()
    approved: list[int] = []

    def approve_stream() -> None:
        worker = CertificateAuthority(ca.home, actor=Actor("carol", None))
        for request_id in ids:
            if stop.is_set():
                return
            if worker.approve([request_id])[0].certificate is not None:
                approved.append(request_id)

    thread = threading.Thread(target=approve_stream)
    thread.start()
    try:
        backup = tmp_path / "backup"
        result = run_cli(ca.home, "backup", str(backup))
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        thread.join(DEADLINE)
    exported = CertificateAuthority(backup, store="tinydb")
    _consistent(exported)
    assert run_cli(backup, "check").returncode == 0
    assert (backup / "ca" / "issuing.key").exists() and not (backup / "database.json").exists()
    assert len(exported.requests()) == 60
    assert run_cli(ca.home, "check").returncode == 0
    # Restore: the backup goes into a fresh database, and the restored home uses it.
    restored_url = pg_cluster.new_database()
    restored_home = tmp_path / "restored"
    result = run_cli(restored_home, "--database", restored_url, "restore", str(backup))
    assert result.returncode == 0, result.stderr
    restored = CertificateAuthority(restored_home)
    assert type(restored.store).__name__ == "PostgreSQLStore"
    _consistent(restored)
    assert restored.requests() == exported.requests()
    queued = restored.requests(RequestStatus.QUEUED)
    if queued:
        assert restored.approve([queued[0].id])[0].certificate is not None


def test_check_names_a_broken_rule_in_the_database(tmp_path: Path, pg_cluster: PgCluster, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    ca.submit(csr_pem(make_csr(cn="tampered")))
    ca.approve([1])
    assert run_cli(ca.home, "check").returncode == 0
    # Round the engine (the database allows it: an index is not a rule): the requester index loses its certificate.
    pg_cluster.psql("UPDATE requesters SET active = NULL", pg_url.rsplit("/", 1)[1])
    result = run_cli(ca.home, "check")
    assert result.returncode == 1 and b"tampered" in result.stdout + result.stderr


def test_restore_refuses_a_database_that_holds_a_ca(tmp_path: Path, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    backup = tmp_path / "backup"
    run_cli(ca.home, "backup", str(backup), check=True)
    result = run_cli(tmp_path / "again", "--database", pg_url, "restore", str(backup))
    assert result.returncode == 1 and b"holds a CA already" in result.stderr
    assert not (tmp_path / "again").exists() or not any((tmp_path / "again").iterdir())

"""copy-store --to DIR: a consistent export of a database while others keep working (the backup),
and back into a fresh database (the restore)."""

from __future__ import annotations

import threading
from pathlib import Path

from tests.helpers import csr_pem, make_csr, run_cli
from tests.pg.test_concurrency import pg_home
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
        result = run_cli(ca.home, "copy-store", "--to", str(backup))
        assert result.returncode == 0, result.stderr
    finally:
        stop.set()
        thread.join(DEADLINE)
    exported = CertificateAuthority(backup, store="tinydb")
    _consistent(exported)
    assert (backup / "ca" / "issuing.key").exists() and not (backup / "database.json").exists()
    assert len(exported.requests()) == 60
    # Restore: the export goes into a fresh database and works there.
    restored_url = pg_cluster.new_database()
    result = run_cli(backup, "copy-store", "--to", restored_url)
    assert result.returncode == 0, result.stderr
    restored = CertificateAuthority(backup)
    assert type(restored.store).__name__ == "PostgreSQLStore"
    _consistent(restored)
    assert restored.requests() == exported.requests()
    queued = restored.requests(RequestStatus.QUEUED)
    if queued:
        assert restored.approve([queued[0].id])[0].certificate is not None


def test_an_export_refuses_a_folder_that_is_not_empty(tmp_path: Path, pg_url: str) -> None:
    ca = pg_home(tmp_path, pg_url)
    target = tmp_path / "used"
    target.mkdir()
    (target / "something").write_text("x")
    result = run_cli(ca.home, "copy-store", "--to", str(target))
    assert result.returncode == 1 and b"is not empty" in result.stderr
    assert sorted(p.name for p in target.iterdir()) == ["something"]

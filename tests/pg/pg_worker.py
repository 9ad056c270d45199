"""Worker processes for the PostgreSQL concurrency tests (started with spawn)."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import CA_NAMES
from tui_ca.engine import Actor, CertificateAuthority
from tui_ca.engine.store import selection
from tui_ca.engine.store.postgresql import PostgreSQLStore


def approver(home: str, ids: list[int], barrier, results) -> None:
    """Approve each ID in turn, all workers at the same moment (the barrier); report what happened."""
    ca = CertificateAuthority(Path(home), actor=Actor("approver", None))
    ca.unlock()
    for request_id in ids:
        barrier.wait(timeout=120)
        outcome = ca.approve([request_id])[0]
        results.put((request_id, outcome.certificate is not None, outcome.error))


def submitter(home: str, csrs: list[bytes], results) -> None:
    """Submit each CSR; report the Certificate IDs given."""
    ca = CertificateAuthority(Path(home), actor=Actor("submitter", None))
    ids = [ca.submit(csr, source="test").request.id for csr in csrs]
    results.put(ids)


def pg_home(tmp_path: Path, url: str) -> CertificateAuthority:
    """An admin home whose records are in the database at ``url``."""
    store = PostgreSQLStore(url, check_schema=False)
    store.migrate()
    home = tmp_path / "admin"
    ca = CertificateAuthority(home, store=store, actor=Actor("alice", None))
    ca.init(CA_NAMES)
    selection.record(home, selection.DatabaseChoice(url))
    return ca

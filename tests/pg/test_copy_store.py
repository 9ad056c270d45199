"""copy-store: a TinyDB home moves into an empty database whole, and keeps working there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import CA_NAMES, assert_refused, csr_pem, make_csr, run_cli
from tests.pg_support import PgCluster
from tui_ca.engine import Actor, CertificateAuthority, RevocationReason
from tui_ca.engine.errors import RuleError
from tui_ca.engine.store import postgresql, selection
from tui_ca.engine.store.copying import copy_records
from tui_ca.engine.store.postgresql import PostgreSQLStore


def _tinydb_home(home: Path) -> CertificateAuthority:
    ca = CertificateAuthority(home, actor=Actor("alice", None), store="tinydb")
    ca.init(CA_NAMES)
    for n in range(6):
        ca.submit(csr_pem(make_csr(cn=f"dev-{n}")))
    ca.approve([1, 2, 3, 4])
    ca.reject(5, "unknown device")
    ca.revoke(2, RevocationReason.KEY_COMPROMISE)
    ca.revoke(3, RevocationReason.SUPERSEDED)
    return ca


def test_a_tinydb_home_is_copied_whole_and_the_rules_carry_over(tmp_path: Path, pg_cluster: PgCluster,
                                                                pg_url: str) -> None:  # fmt: skip
    home = tmp_path / "admin"
    source = _tinydb_home(home)
    before = {
        "requests": [r for r in source.requests()],
        "certs": [c for c in source.certificates()],
        "audit": source.audit_records(),
        "crl": source.published_crl(),
        "info": source.info(),
    }
    compromised_key_csr = source.csr_pem(2)
    result = run_cli(home, "copy-store", "--to", pg_url)
    assert result.returncode == 0, result.stderr
    assert b"6 requests, 4 certificates, 2 revocations" in result.stderr
    assert json.loads((home / "database.json").read_text()) == {"url": pg_url}
    copied = CertificateAuthority(home, actor=Actor("bob", None))
    assert type(copied.store).__name__ == "PostgreSQLStore"
    assert copied.requests() == before["requests"]
    assert copied.certificates() == before["certs"]
    assert copied.audit_records() == before["audit"]
    assert copied.verify_audit() == []
    assert copied.published_crl() == before["crl"]
    assert copied.info() == before["info"]
    # The indexes came along: the next ID, the queue, the requester rule, the compromised key.
    assert copied.submit(csr_pem(make_csr(cn="dev-new"))).request.id == 7
    assert_refused(run_cli(home, "submit", "-", input=csr_pem(make_csr(cn="dev-0"))), 1, "holds active certificate")
    assert_refused(run_cli(home, "submit", "-", "--requester", "someone-else", input=compromised_key_csr), 1,
                   "keyCompromise")  # fmt: skip
    db = pg_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*) FROM compromised_keys", db) == "1"
    checked = run_cli(home, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_copy_store_refuses_a_database_that_holds_records(tmp_path: Path, pg_url: str) -> None:
    run_cli(tmp_path / "other", "--database", pg_url, "init", "--cn", "Other CA", check=True)
    home = tmp_path / "admin"
    _tinydb_home(home)
    assert_refused(run_cli(home, "copy-store", "--to", pg_url), 1, "already holds CA records")
    assert not (home / "database.json").exists()


def test_copy_store_refuses_a_home_already_on_a_database(tmp_path: Path, pg_url: str) -> None:
    home = tmp_path / "admin"
    run_cli(home, "--database", pg_url, "init", "--cn", "PG CA", check=True)
    assert_refused(run_cli(home, "copy-store", "--to", pg_url), 1, "in a database already")


def test_a_copy_sent_in_many_batches_keeps_every_record_and_index(tmp_path: Path, pg_cluster: PgCluster,
                                                                   pg_ca_url: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    """Batches of 3 rows: every table is sent in several statements, and the audit chain spans them."""
    home = tmp_path / "admin"
    source = _tinydb_home(home)
    source.approve([6])
    source.revoke(4, RevocationReason.KEY_COMPROMISE)
    monkeypatch.setattr(postgresql, "_BULK_ROWS", 3)
    target = PostgreSQLStore(pg_ca_url)
    with source.store.transaction() as view:
        copy_records(view, target)
    target.close()
    selection.record(home, selection.DatabaseChoice(pg_ca_url))
    copied = CertificateAuthority(home, actor=Actor("bob", None))
    assert copied.requests() == source.requests()
    assert copied.certificates() == source.certificates()
    assert copied.audit_records() == source.audit_records()
    db = pg_ca_url.rsplit("/", 1)[1]
    assert pg_cluster.psql("SELECT count(*) FROM csrs", db) == "6"
    assert pg_cluster.psql("SELECT count(*) FROM compromised_keys", db) == "2"
    checked = run_cli(home, "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr


def _request_doc(request_id: int) -> dict:
    return {"id": request_id, "requester": f"dev-{request_id}", "status": "rejected", "spki": "ab", "csr_sha": "cd"}


def test_reads_in_a_bulk_load_see_its_writes_and_a_repeated_key_undoes_it_all(pg_ca_url: str) -> None:
    store = PostgreSQLStore(pg_ca_url)
    with pytest.raises(RuleError, match="that Certificate ID was already used"):
        with store.transaction() as txn, txn.bulk_load():
            txn.put_request(_request_doc(1))
            assert txn.get_request(1) == _request_doc(1)
            txn.put_request(_request_doc(2))
            txn.put_request(_request_doc(1))
    assert store.view().get_request(1) is None
    assert store.view().get_request(2) is None
    store.close()

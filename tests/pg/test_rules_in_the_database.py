"""The rules are database constraints: SQL that goes round the engine is refused too."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import csr_pem, make_csr
from tests.pg.pg_worker import pg_home
from tests.pg_support import PgCluster
from tui_ca.engine import CertificateAuthority, RevocationReason

T0 = "2026-03-14 09:00:00+00"
T1 = "2027-03-14 09:00:00+00"


@pytest.fixture
def stocked(tmp_path: Path, pg_url: str) -> tuple[CertificateAuthority, str]:
    """Request 1 approved (certificate 1, requester phone-1), request 2 queued (phone-2)."""
    ca = pg_home(tmp_path, pg_url)
    ca.submit(csr_pem(make_csr(cn="phone-1")))
    ca.approve([1])
    ca.submit(csr_pem(make_csr(cn="phone-2")))
    return ca, pg_url.rsplit("/", 1)[1]


def refused(cluster: PgCluster, db: str, sql: str, *fragments: str) -> None:
    with pytest.raises(RuntimeError) as caught:
        cluster.psql(sql, db)
    for fragment in fragments:
        assert fragment in str(caught.value)


def _copy_request(source: int, new_id: int, status: str = "queued", csr: str = "other") -> str:
    return (f"INSERT INTO requests (id, requester_key, status, spki, csr_sha, doc) SELECT {new_id}, requester_key, "
            f"'{status}', spki, '{csr}', doc FROM requests WHERE id = {source}")  # fmt: skip


def test_a_second_queued_request_for_a_requester(pg_cluster: PgCluster, stocked) -> None:
    _, db = stocked
    refused(pg_cluster, db, _copy_request(2, 3), "one_queued_request_per_requester")


def test_a_second_active_certificate_for_a_requester(pg_cluster: PgCluster, stocked) -> None:
    _, db = stocked
    pg_cluster.psql(_copy_request(1, 3, "approved", "x3") + "; UPDATE requests SET requester_key = 'elsewhere' "
                    "WHERE id = 3", db)  # fmt: skip
    refused(pg_cluster, db, "INSERT INTO certificates (id, requester_key, serial, spki, issued_at, not_after, doc) "
                            f"VALUES (3, 'phone-1', 'abc123', 'k', '{T0}', '{T1}', '{{}}')",
            "one_active_certificate_per_requester")  # fmt: skip


def test_a_serial_given_twice(pg_cluster: PgCluster, stocked) -> None:
    _, db = stocked
    pg_cluster.psql(_copy_request(1, 3, "approved", "x3") + "; UPDATE requests SET requester_key = 'other' "
                    "WHERE id = 3", db)  # fmt: skip
    refused(pg_cluster, db, "INSERT INTO certificates (id, requester_key, serial, spki, issued_at, not_after, doc) "
                            f"SELECT 3, 'other', serial, 'k', '{T0}', '{T1}', '{{}}' FROM certificates WHERE id = 1",
            "certificates_serial_key")  # fmt: skip
    refused(pg_cluster, db, "UPDATE serials SET cert_id = 2", "never given to another certificate")


def test_a_certificate_for_a_queued_request_or_a_second_one(pg_cluster: PgCluster, stocked) -> None:
    _, db = stocked
    insert = ("INSERT INTO certificates (id, requester_key, serial, spki, issued_at, not_after, doc) "
              f"VALUES ({{id}}, 'x', 'fedcba', 'k', '{T0}', '{T1}', '{{{{}}}}')")  # fmt: skip
    refused(pg_cluster, db, insert.format(id=2), "certificates_id_request_status_fkey")
    refused(pg_cluster, db, insert.format(id=1), "certificates_pkey")
    # An approved request cannot be put back in the queue under its certificate.
    refused(pg_cluster, db, "UPDATE requests SET status = 'queued' WHERE id = 1", "certificates_id_request_status_fkey")


def test_ids_are_burnt(pg_cluster: PgCluster, stocked) -> None:
    ca, db = stocked
    ca.reject(2, "wrong device")
    refused(pg_cluster, db, "DELETE FROM requests WHERE id = 2", "never removed")
    refused(pg_cluster, db, "DELETE FROM certificates WHERE id = 1", "never removed")
    refused(pg_cluster, db, _copy_request(1, 2, csr="again"), "requests_pkey")


def test_the_audit_log_is_append_only_and_chained(pg_cluster: PgCluster, stocked) -> None:
    _, db = stocked
    refused(pg_cluster, db, "UPDATE audit SET doc = '{}' WHERE seq = 1", "never changed")
    refused(pg_cluster, db, "DELETE FROM audit WHERE seq = (SELECT max(seq) FROM audit)", "never changed")
    refused(pg_cluster, db, "INSERT INTO audit (seq, hash, prev, doc) SELECT max(seq) + 2, 'h', hash, '{}' FROM audit "
                            "GROUP BY hash ORDER BY 1 DESC LIMIT 1", "audit_prev_seq_prev_fkey")  # fmt: skip
    refused(pg_cluster, db, "INSERT INTO audit (seq, hash, prev, doc) SELECT max(seq) + 1, 'h', 'not-the-head', '{}' "
                            "FROM audit", "audit_prev_seq_prev_fkey")  # fmt: skip


def test_a_key_revoked_for_key_compromise_is_refused_at_intake(pg_cluster: PgCluster, stocked) -> None:
    ca, db = stocked
    ca.revoke(1, RevocationReason.KEY_COMPROMISE)
    # Round the engine: a new request for the compromised key, by another requester.
    refused(pg_cluster, db, "INSERT INTO requests (id, requester_key, status, spki, csr_sha, doc) SELECT 3, 'someone', "
                            "'queued', spki, 'fresh', doc FROM requests WHERE id = 1",
            "revoked for keyCompromise (certificate 1)")  # fmt: skip
    refused(pg_cluster, db, "INSERT INTO compromised_keys SELECT spki, 1 FROM certificates WHERE id = 1",
            "compromised_keys_pkey")  # fmt: skip


def test_the_tampering_check_catches_on_files_is_refused_here(stocked) -> None:
    """What tests/engine/test_check_backup.py breaks by hand to see `check` name it cannot be done on PostgreSQL."""
    from tui_ca.engine import RuleError

    ca, _ = stocked
    view = ca.store.view()
    first = view.get_certificate(1)
    meta = view.meta()
    tamperings = {
        "CSR index to a request that does not exist": lambda txn: txn.put_csr(first["spki"], 999),
        "serial index to another certificate": lambda txn: txn.put_serial(int(first["serial"], 16), 2),
        "audit record off the chain": lambda txn: txn.append_audit(
            {"seq": meta["audit_seq"] + 1, "prev": "", "hash": "x", "action": "approve"}),
    }  # fmt: skip
    for what, action in tamperings.items():
        with pytest.raises(RuleError, match="the database refused the change"):
            with ca.store.transaction() as txn:
                action(txn)
        assert ca.check() == [], what

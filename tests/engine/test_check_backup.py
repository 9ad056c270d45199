"""``check`` names every broken invariant; ``backup``/``restore`` copy a CA consistently; listings stream.

Invariants are broken by hand through the store protocol itself (so on every
backend), one at a time, on a CA that ``check`` first finds sound.
"""

from __future__ import annotations

import json
import multiprocessing
import time

import pytest
from helpers import csr_pem, make_csr, run_cli

from tui_ca.cli import _jsonable
from tui_ca.engine import CertificateAuthority, CertStatus, RequestStatus, RevocationReason, RuleError
from tui_ca.engine.store import CRL_DER_BLOB


@pytest.fixture
def populated(ca):
    ids = [ca.submit(csr_pem(make_csr(cn=f"dev{i}.example.net"))).request.id for i in range(6)]
    ca.approve(ids[:4])
    ca.revoke(ids[0], RevocationReason.KEY_COMPROMISE)
    ca.revoke(ids[1])
    ca.reject(ids[4], "not ours")
    assert ca.check() == []
    return ca, ids  # ids[5] queued, ids[2:4] valid


def _break(ca, action) -> list[str]:
    with ca.store.transaction() as txn:
        action(txn)
    return ca.check()


def _named(problems: list[str], *fragments: str) -> None:
    assert any(all(f in p for f in fragments) for p in problems), problems


def test_requester_index_queued_pointer(populated):
    ca, ids = populated
    name = ca.request(ids[5]).requester
    problems = _break(ca, lambda txn: txn.put_requester(name, {"name": name, "queued": None, "active": None}))
    _named(problems, "requester index", repr(name), "queued None", str(ids[5]))


def test_requester_index_active_pointer(populated):
    ca, ids = populated
    name = ca.certificate(ids[2]).requester
    problems = _break(ca, lambda txn: txn.put_requester(name, {"name": name, "queued": None, "active": None}))
    _named(problems, "requester index", "active None", str(ids[2]))


@pytest.mark.breaks_a_database_rule
def test_csr_index(populated):
    ca, ids = populated
    sha = ca.request(ids[3]).details.csr_sha256
    _named(_break(ca, lambda txn: txn.put_csr(sha, 999)), "CSR index", f"request {ids[3]}", "999")


@pytest.mark.breaks_a_database_rule
def test_serial_index_and_ocsp(populated):
    ca, ids = populated
    serial = ca.certificate(ids[2]).serial
    problems = _break(ca, lambda txn: txn.put_serial(serial, ids[1]))
    _named(problems, "serial index", format(serial, "x"), str(ids[1]))
    _named(problems, "OCSP", format(serial, "x"), "revoked")  # it would answer for the revoked certificate


@pytest.mark.breaks_a_database_rule
def test_serial_uniqueness(populated):
    ca, ids = populated
    first = ca.store.view().get_certificate(ids[2])
    second = ca.store.view().get_certificate(ids[3])
    problems = _break(ca, lambda txn: txn.put_certificate({**second, "serial": first["serial"]}))
    _named(problems, f"certificate {ids[3]}", f"serial {first['serial']} is also certificate {ids[2]}")
    _named(problems, f"certificate {ids[3]}", "PEM says")


def test_compromised_key_index_and_crl_entries(populated):
    ca, ids = populated
    doc = ca.store.view().get_certificate(ids[3])
    problems = _break(ca, lambda txn: txn.put_certificate(
        {**doc, "revoked_at": doc["at"], "revoked_by": doc["by"], "reason": "keyCompromise"}))  # fmt: skip
    _named(problems, "compromised-key index", f"certificate {ids[3]}")
    _named(problems, "revocation entries", f"certificate {ids[3]}", "no CRL entry")
    _named(problems, "CRL:", f"certificate {ids[3]}", "not on the CRL")


def test_crl_entry_for_a_certificate_that_is_not_revoked(populated):
    ca, ids = populated
    doc = ca.store.view().get_certificate(ids[2])
    problems = _break(ca, lambda txn: txn.put_revoked({"id": ids[2], "serial": doc["serial"], "at": doc["at"],
                                                       "code": 0}))  # fmt: skip
    _named(problems, "revocation entries", f"certificate {ids[2]}", "not revoked")


def test_published_crl_differs_from_the_revoked_set(populated):
    ca, ids = populated
    old = ca.published_crl()
    ca.revoke(ids[2])
    problems = _break(ca, lambda txn: txn.put_blob(CRL_DER_BLOB, old))
    _named(problems, "CRL:", f"certificate {ids[2]}", "not on the CRL")
    _named(problems, "CRL:", "number")


def test_certificate_pem_that_is_another_certificate(populated):
    ca, ids = populated
    other = ca.store.view().get_cert_pem(ids[2])
    _named(_break(ca, lambda txn: txn.put_cert_pem(ids[3], other)), f"certificate {ids[3]}", "PEM says")


def test_counters(populated):
    ca, ids = populated
    meta = ca.store.view().meta()
    problems = _break(ca, lambda txn: txn.put_meta({**meta, "queued": 5, "next_id": 2}))
    _named(problems, "counters", "5 requests counted as queued, 1 are")
    _named(problems, "counters", "next Certificate ID 2")


def test_approved_request_without_certificate(populated):
    ca, ids = populated
    doc = ca.store.view().get_request(ids[5])
    _named(_break(ca, lambda txn: txn.put_request({**doc, "status": "approved"})), f"request {ids[5]}",
           "certificate is missing")  # fmt: skip


@pytest.mark.breaks_a_database_rule
def test_audit_chain(populated):
    ca, ids = populated
    meta = ca.store.view().meta()
    forged = {
        "seq": meta["audit_seq"] + 1,
        "at": "2026-03-14T09:26:53+00:00",
        "user": "mallory",
        "address": None,
        "action": "approve",
        "target": "request 1",
        "outcome": "issued",
        "extra": {},
        "prev": "",
        "hash": "x",
    }
    _named(_break(ca, lambda txn: txn.append_audit(forged)), "audit log", f"record {forged['seq']}")


# ------------------------------------------------------------------ backup


def test_backup_and_restore_round_trip(populated, tmp_path):
    ca, ids = populated
    copy = ca.backup(tmp_path / "backup")
    backup_reader = CertificateAuthority(copy, store="tinydb")  # a backup is a TinyDB home of its own
    assert backup_reader.check() == []
    assert [r.id for r in backup_reader.requests()] == ids
    assert backup_reader.published_crl() == ca.published_crl()
    target = tmp_path / "restored"
    assert CertificateAuthority.restore(copy, target) == []
    restored = CertificateAuthority(target)
    assert [c.serial for c in restored.certificates()] == [c.serial for c in ca.certificates()]
    assert restored.audit_records()[-1].action == "restore"
    assert (target / "ca" / "issuing.key").read_bytes() == (ca.home / "ca" / "issuing.key").read_bytes()
    # The restored CA works on: its rules still hold (the compromised key stays blocked).
    revoked_csr = restored.csr_pem(ids[0])
    with pytest.raises(RuleError, match="keyCompromise"):
        restored.submit(revoked_csr, requester="someone-else")
    issued = restored.approve([ids[5]])[0].certificate
    assert issued is not None and restored.check() == []


def test_backup_and_restore_refusals(populated, tmp_path):
    ca, _ = populated
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "something").write_text("x")
    with pytest.raises(RuleError, match="not empty"):
        ca.backup(busy)
    with pytest.raises(Exception, match="inside the home"):
        ca.backup(ca.home / "sub")
    copy = ca.backup(tmp_path / "backup")
    with pytest.raises(RuleError, match="not empty"):
        CertificateAuthority.restore(copy, busy)
    with pytest.raises(Exception, match="not a tui-ca backup"):
        CertificateAuthority.restore(busy, tmp_path / "new")
    assert not (tmp_path / "new").exists()


def _approver(home: str, rounds: int, started, stop, done) -> None:
    """Submit and approve until told to stop (after at least ``rounds``): backups must overlap it."""
    ca = CertificateAuthority(home)
    started.set()
    i = 0
    while i < rounds or not stop.is_set():
        request = ca.submit(csr_pem(make_csr(cn=f"stream-{i}.example.net"))).request
        ca.approve([request.id])
        i += 1
    done.set()


@pytest.mark.tinydb_only  # the approvals run in another process
def test_backup_during_a_stream_of_approvals_is_consistent(ca, home, tmp_path):
    context = multiprocessing.get_context("spawn")
    started, stop, done = context.Event(), context.Event(), context.Event()
    writer = context.Process(target=_approver, args=(str(home), 40, started, stop, done))
    writer.start()
    try:
        assert started.wait(60)
        copies = []
        deadline = time.monotonic() + 120
        while not done.is_set() and time.monotonic() < deadline:
            dest = tmp_path / f"backup-{len(copies)}"
            run_cli(home, "backup", str(dest), check=True)
            copies.append((dest, done.is_set()))
            if len(copies) >= 3:
                stop.set()  # the writer ends once it has also made its 40 approvals
        writer.join(60)
        assert writer.exitcode == 0
    finally:
        writer.join(5)
    overlapped = [dest for dest, finished in copies if not finished]
    assert overlapped, "no backup was taken while approvals were running; the test proved nothing"
    for dest in overlapped:
        result = run_cli(dest, "check")
        assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()
        reader = CertificateAuthority(dest)
        statuses = [r.status for r in reader.requests()]
        # Each approval whole: a certificate per approved request, and at most the
        # one request the writer had submitted but not yet approved.
        assert statuses.count(RequestStatus.APPROVED) == len(reader.certificates())
        assert statuses.count(RequestStatus.QUEUED) <= 1


# ---------------------------------------------------------------- listings


def test_streamed_dicts_are_the_models_as_json(populated):
    ca, _ = populated
    assert list(ca.iter_request_dicts()) == [_jsonable(r) for r in ca.requests()]
    now = ca.now()
    expected = []
    for cert in ca.certificates(CertStatus.VALID):
        data = _jsonable(cert)
        data["serial"], data["status"] = cert.serial_hex, cert.status_at(now).value
        expected.append(data)
    assert list(ca.iter_certificate_dicts(CertStatus.VALID)) == expected
    assert [d["id"] for d in ca.iter_request_dicts(RequestStatus.REJECTED)] == [
        r.id for r in ca.requests(RequestStatus.REJECTED)
    ]


@pytest.mark.tinydb_only
def test_cli_list_streams_one_json_array_or_lines(populated):
    ca, ids = populated
    array = json.loads(run_cli(ca.home, "list", "certs", "--json", check=True).stdout)
    assert [c["id"] for c in array] == [c.id for c in ca.certificates()]
    lines = run_cli(ca.home, "list", "--jsonl", "--status", "queued", check=True).stdout.decode().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [ids[5]]
    assert json.loads(run_cli(ca.home, "list", "--json", "--status", "expired", check=True).stdout) == []
    text = run_cli(ca.home, "list", "certs", "--status", "revoked", check=True).stdout.decode().splitlines()
    assert len(text) == 3 and text[1].split()[:2] == [str(ids[0]), "revoked"]


@pytest.mark.tinydb_only
def test_a_streamed_listing_keeps_nothing_in_memory(populated):
    ca, _ = populated
    fresh = CertificateAuthority(ca.home)
    assert sum(1 for _ in fresh.iter_certificate_dicts()) == 4
    assert sum(1 for _ in fresh.iter_requests()) == 6
    kept = [path for path in fresh.store.files._cache if path.parent.name in ("certs", "requests")]
    assert kept == []

"""``tui-ca audit --verify`` catches hand edits of the audit shards under db/audit/."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hardening_support import cli, csr_bytes, init_home

from tui_ca.engine import audit as audit_log
from tui_ca.engine.store.tinydb import ID_SHARD_SIZE


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    """A home with a handful of audit records (init, CRL, submits, approve, revoke, CRL)."""
    home = tmp_path_factory.mktemp("audit") / "home"
    ca = init_home(home)
    for n in range(3):
        ca.submit(csr_bytes(f"client-{n}"))
    ca.approve([1])
    ca.revoke(1)
    assert len(ca.audit_records()) >= 7
    return home


@pytest.fixture
def home(pristine: Path, tmp_path: Path) -> Path:
    import shutil

    copy = tmp_path / "home"
    shutil.copytree(pristine, copy)
    return copy


def _shard(home: Path) -> Path:
    return home / "db" / "audit" / "00000.json"


def _edit(home: Path, change) -> None:
    """Apply ``change`` to the audit table dict {doc_id: record} and write it back."""
    path = _shard(home)
    data = json.loads(path.read_text())
    change(data["audit"])
    path.write_text(json.dumps(data))


def _verify(home: Path):
    result = cli(home, "audit", "--verify")
    assert b"Traceback" not in result.stderr
    return result


def test_intact_log_verifies(home):
    result = _verify(home)
    assert result.returncode == 0 and b"intact" in result.stdout, result.stderr


def test_edited_record(home):
    _edit(home, lambda table: table["3"].update(user="mallory"))
    result = _verify(home)
    assert result.returncode == 1 and b"record 3: content does not match its hash" in result.stderr


def test_edited_record_with_its_hash_recomputed(home):
    def forge(table):
        table["3"]["outcome"] = "nothing happened"
        table["3"]["hash"] = audit_log.record_hash(table["3"])

    _edit(home, forge)
    result = _verify(home)
    assert result.returncode == 1 and b"record 4: does not follow" in result.stderr


def test_whole_chain_rewritten_after_an_edit_still_disagrees_with_the_head(home):
    """Re-hash every record after the forged one: the head kept in meta catches it."""

    def forge(table):
        table["3"]["outcome"] = "nothing happened"
        prev = table["2"]["hash"]
        for key in sorted(table, key=int)[2:]:
            table[key]["prev"] = prev
            table[key]["hash"] = prev = audit_log.record_hash(table[key])

    _edit(home, forge)
    assert _verify(home).returncode == 1


def test_deleted_record(home):
    _edit(home, lambda table: table.pop("4"))
    result = _verify(home)
    assert result.returncode == 1 and b"expected record 4" in result.stderr


def test_deleted_tail(home):
    _edit(home, lambda table: table.pop(max(table, key=int)))
    result = _verify(home)
    assert result.returncode == 1 and b"tail removed" in result.stderr


def test_inserted_record(home):
    def insert(table):
        # A well-formed, correctly hashed record slipped in after record 2.
        keys = sorted(table, key=int)
        shifted = {str(int(k) + 1): {**table[k], "seq": int(k) + 1} for k in keys[2:]}
        fake = audit_log.make_record(3, audit_log.to_model(table["2"]).at, "mallory", None, "approve",
                                     "request 2", "issued", {}, table["2"]["hash"])  # fmt: skip
        for k in keys[2:]:
            del table[k]
        table["3"] = fake
        table.update(shifted)

    _edit(home, insert)
    result = _verify(home)
    assert result.returncode == 1 and b"does not follow" in result.stderr


def test_reordered_records(home):
    def swap(table):
        a, b = table["3"], table["4"]
        table["3"], table["4"] = {**b, "seq": 3}, {**a, "seq": 4}

    _edit(home, swap)
    assert _verify(home).returncode == 1


def test_reordered_records_keeping_their_numbers(home):
    def swap(table):
        table["3"]["seq"], table["4"]["seq"] = 4, 3

    _edit(home, swap)
    result = _verify(home)
    assert result.returncode == 1 and b"record" in result.stderr


def test_unparseable_shard_is_reported_not_a_traceback(home):
    _shard(home).write_text('{"audit": {"1": ')
    result = _verify(home)
    assert result.returncode != 0
    assert result.stderr.count(b"\n") >= 1 and result.stderr.startswith(b"tui-ca: ")


def test_records_beyond_the_first_shard_are_checked(tmp_path):
    """A log longer than one shard: an edit in the second shard is still found."""
    home = tmp_path / "home"
    ca = init_home(home)
    from hardening_support import csr_bytes as make

    items = [(make(f"bulk-{n}"), None) for n in range(ID_SHARD_SIZE + 5)]
    ca.submit_many(items)
    assert len(ca.audit_records()) > ID_SHARD_SIZE
    assert _verify(home).returncode == 0
    second = home / "db" / "audit" / "00001.json"
    data = json.loads(second.read_text())
    first_key = min(data["audit"], key=int)
    data["audit"][first_key]["target"] = "request 9999"
    second.write_text(json.dumps(data))
    result = _verify(home)
    assert result.returncode == 1 and f"record {first_key}: content".encode() in result.stderr

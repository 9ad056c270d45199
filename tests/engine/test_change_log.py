"""The change log: small commits appended to db/changes.log, laid over the shards by every reader, folded later."""

from __future__ import annotations

import errno
import json
import os
import subprocess

import pytest
from helpers import TUI_CA, csr_pem, make_csr

from tui_ca.engine import CertificateAuthority
from tui_ca.engine.store import StoreDamagedError, change_log
from tui_ca.engine.store.protocol import StoreUnavailableError

pytestmark = pytest.mark.tinydb_only


def _shard_files(home) -> dict[str, bytes]:
    db = home / "db"
    return {str(p.relative_to(db)): p.read_bytes() for p in sorted(db.rglob("*.json"))}


def _log(home):
    return home / "db" / change_log.LOG_NAME


def _records(home) -> list[dict]:
    lines = _log(home).read_bytes().split(b"\n")[1:-1]
    return [json.loads(line.split(b" ", 2)[2]) for line in lines]


def _submit(ca: CertificateAuthority, cn: str) -> int:
    return ca.submit(csr_pem(make_csr(cn=cn))).request.id


def test_a_small_commit_is_one_record_and_other_processes_read_it(ca, home):
    _submit(ca, "first.example")  # the first commits after init create the log through the journal
    shards = _shard_files(home)
    before = len(_records(home))
    request_id = _submit(ca, "logged.example")
    assert _shard_files(home) == shards  # no shard file was rewritten
    records = _records(home)
    assert len(records) == before + 1
    assert any(str(request_id) in docs for key, docs in records[-1].items() if key.startswith("requests/"))
    fresh = CertificateAuthority(home)
    assert fresh.request(request_id).requester == "logged.example"
    shown = subprocess.run([*TUI_CA, "--home", str(home), "show", str(request_id), "--json"], capture_output=True,
                           timeout=60, check=False)  # fmt: skip
    assert shown.returncode == 0, shown.stderr.decode()
    assert json.loads(shown.stdout)["request"]["requester"] == "logged.example"


def test_a_full_log_is_folded_into_the_shards_with_the_same_records(ca, home, monkeypatch):
    monkeypatch.setattr(change_log, "LOG_MAX", 6000)
    ids = [_submit(ca, f"fold-{i}.example") for i in range(6)]
    ca.approve(ids[:2])
    seen = [(r.id, r.status, r.requester) for r in CertificateAuthority(home).requests()]
    sizes = []
    for i in range(6, 12):
        ids.append(_submit(ca, f"fold-{i}.example"))
        sizes.append(_log(home).stat().st_size)
    assert min(sizes) < max(sizes) and sizes != sorted(sizes)  # the log grew, then started again after a fold
    fresh = CertificateAuthority(home)
    assert [(r.id, r.status, r.requester) for r in fresh.requests()][: len(seen)] == seen
    assert [r.id for r in fresh.requests()] == ids
    assert fresh.check() == []


def test_a_large_commit_goes_through_the_journal_and_folds_the_log(ca, home, monkeypatch):
    first = _submit(ca, "small.example")
    _submit(ca, "small-2.example")
    assert len(_records(home)) >= 1
    results = ca.submit_many([(csr_pem(make_csr(cn=f"bulk-{i}.example")), None) for i in range(60)])
    assert _records(home) == []  # the bulk commit rewrote the shards, the log's changes with them
    assert json.loads(_log(home).read_bytes().split(b"\n")[0])["tui-ca changes"] == 1
    fresh = CertificateAuthority(home)
    assert fresh.request(first).requester == "small.example"
    assert len(fresh.requests()) == 62 and results[-1].request.id == 62
    assert fresh.check() == []


def test_a_torn_last_record_is_ignored_by_readers_and_cut_off_by_the_next_writer(ca, home):
    _submit(ca, "before.example")
    kept = _submit(ca, "kept.example")
    whole = _log(home).read_bytes()
    with open(_log(home), "ab") as log:
        log.write(b'2000 0badc0de {"requests/00000":{"99":{"id":99')  # a crash during an append
    fresh = CertificateAuthority(home)
    assert [r.id for r in fresh.requests()][-1] == kept
    added = _submit(fresh, "after.example")
    assert _log(home).read_bytes().startswith(whole) and b"0badc0de" not in _log(home).read_bytes()
    assert [r.id for r in CertificateAuthority(home).requests()][-2:] == [kept, added]


@pytest.mark.parametrize("where", ["header", "record"])
def test_damage_before_the_last_record_is_refused_by_name(ca, home, where):
    _submit(ca, "one.example")
    _submit(ca, "two.example")
    _submit(ca, "three.example")
    lines = _log(home).read_bytes().split(b"\n")
    target = 0 if where == "header" else 1
    lines[target] = lines[target].replace(b"example", b"exbmple", 1) if where == "record" else b"{}"
    _log(home).write_bytes(b"\n".join(lines))
    with pytest.raises(StoreDamagedError, match="changes.log"):
        CertificateAuthority(home).requests()
    with pytest.raises(StoreDamagedError, match="changes.log"):
        _submit(CertificateAuthority(home), "four.example")


@pytest.mark.parametrize("field", ["status", "id"])
def test_a_whole_record_that_breaks_a_shard_is_refused_by_name(ca, home, field):
    """Its length and checksum hold, but a document lacks what a request has, or names another ID.

    A merge is checked by the log's own documents (the shard's file was checked
    when it was parsed), so it is the bad document itself that must be refused.
    """
    _submit(ca, "one.example")
    _submit(ca, "two.example")
    lines = _log(home).read_bytes().split(b"\n")
    changes = json.loads(lines[1].split(b" ", 2)[2])
    ((key, docs),) = [(k, v) for k, v in changes.items() if k.startswith("requests/")]
    ((doc_id, doc),) = docs.items()
    if field == "id":
        doc["id"] = int(doc_id) + 7
    else:
        del doc["status"]
    lines[1] = change_log.encode_record(json.dumps(changes).encode()).rstrip(b"\n")
    _log(home).write_bytes(b"\n".join(lines))
    with pytest.raises(StoreDamagedError, match=f"changes.log.*{key}"):
        CertificateAuthority(home).requests()
    with pytest.raises(StoreDamagedError, match="changes.log"):
        _submit(CertificateAuthority(home), "three.example")


def test_a_new_log_in_the_same_inode_is_read_anew(ca, home):
    """A fold's new log may get the inode of an older one: its header's epoch tells them apart."""
    _submit(ca, "a.example")
    _submit(ca, "b.example")
    reader = CertificateAuthority(home)
    assert len(reader.requests()) == 2
    records = _log(home).read_bytes().split(b"\n")[1:]
    # The same inode, a header of another epoch, and records at least as long: a stale
    # parse would keep the old state and read only past its end.
    inode = _log(home).stat().st_ino
    with open(_log(home), "r+b") as log:
        log.truncate(0)
        log.write(change_log.header("0123456789abcdef") + (records[0] + b"\n") * 3)
    assert _log(home).stat().st_ino == inode
    assert [r.requester for r in reader.requests()] == ["a.example"]


def test_a_failed_append_leaves_nothing_behind(ca, home, monkeypatch):
    _submit(ca, "first.example")
    _submit(ca, "second.example")
    before = _log(home).read_bytes()

    def full(fd: int) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(change_log.os, "fdatasync", full)
    with pytest.raises(StoreUnavailableError, match="No space left on device"):
        _submit(ca, "refused.example")
    monkeypatch.undo()
    assert _log(home).read_bytes() == before
    assert [r.requester for r in CertificateAuthority(home).requests()] == ["first.example", "second.example"]
    assert _submit(ca, "third.example") == 3


def test_a_listing_shows_the_logged_records_and_check_holds(ca, home):
    ids = [_submit(ca, f"listed-{i}.example") for i in range(3)]
    ca.approve(ids[:1])
    listed = subprocess.run([*TUI_CA, "--home", str(home), "list", "--json"], capture_output=True, timeout=60,
                            check=False)  # fmt: skip
    assert listed.returncode == 0, listed.stderr.decode()
    rows = json.loads(listed.stdout)
    assert [row["id"] for row in rows] == ids
    assert CertificateAuthority(home).check() == []


def test_a_folding_commit_reads_only_the_queue_shards_it_changed(ca, home, monkeypatch):
    """A commit that folds the log counts its own queue shards, not all of them (once per ~200 EST enrollments)."""
    ids = [r.request.id for r in ca.submit_many([(csr_pem(make_csr(cn=f"qs{i}.example")), None) for i in range(300)])]
    ca.approve(ids[:255])  # the first queue shard emptied, by a commit large enough for the journal
    assert not any(key == "queue/00000" for record in _records(home) for key in record)
    _submit(ca, "logged-first.example")  # the log holds a record again, so the next commit can fold
    # Were the fold to open the empty shard that nothing changed, it would be refused as damage.
    (home / "db" / "queue" / "00000.json").write_bytes(b"null")
    monkeypatch.setattr(change_log, "LOG_MAX", _log(home).stat().st_size + 1)
    request_id = _submit(ca, "folding.example")
    assert _records(home) == []  # folded: the log was started again
    assert CertificateAuthority(home).request(request_id).requester == "folding.example"

"""The audit watch behind the metric: whole-chain checks now and then, and
after a commit only the records added since (real TinyDB files, edited as an
intruder would)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.helpers import csr_pem, make_csr
from tui_ca.engine import CertificateAuthority
from tui_ca.engine.audit_watch import AuditWatch


class Monotonic:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def edit_record(ca: CertificateAuthority, seq: int) -> None:
    for shard in Path(ca.home).rglob("audit/*.json"):
        data = json.loads(shard.read_text())
        if str(seq) in data.get("audit", {}):
            data["audit"][str(seq)]["outcome"] = "nothing happened"
            shard.write_text(json.dumps(data))
            return
    raise AssertionError(f"no audit record {seq}")


def submit(ca: CertificateAuthority, cn: str) -> None:
    ca.submit(csr_pem(make_csr(cn=cn)))


def test_one_whole_check_then_only_what_was_added(ca):
    clock = Monotonic()
    watch = AuditWatch(ca, full_every=900, monotonic=clock)
    assert watch.intact() and watch.intact()
    assert watch.full_checks == 1
    for n in range(3):
        submit(ca, f"phone-{n}")
        assert watch.intact()
    assert watch.full_checks == 1


@pytest.mark.journal_commits  # edits the audit shard's file by hand
def test_a_broken_record_added_since_shows_at_once(ca):
    watch = AuditWatch(ca, full_every=900, monotonic=Monotonic())
    assert watch.intact()
    head = len(ca.audit_records())
    submit(ca, "phone-1")
    submit(ca, "phone-2")
    edit_record(ca, head + 1)
    assert not watch.intact()
    assert watch.full_checks == 1


def test_an_old_record_edited_shows_at_the_next_whole_check(ca):
    clock = Monotonic()
    watch = AuditWatch(ca, full_every=900, monotonic=clock)
    submit(ca, "phone-1")
    assert watch.intact()
    edit_record(ca, 1)
    submit(ca, "phone-2")
    assert watch.intact()  # what was added since links up; the edit is older
    clock.now += 900
    assert not watch.intact()
    assert watch.full_checks == 2
    # and it stays broken: every later look is a whole check until it verifies
    submit(ca, "phone-3")
    assert not watch.intact()


@pytest.mark.journal_commits  # edits the audit shard's file by hand
def test_a_removed_tail_shows(ca):
    watch = AuditWatch(ca, full_every=900, monotonic=Monotonic())
    submit(ca, "phone-1")
    assert watch.intact()
    submit(ca, "phone-2")
    last = len(ca.audit_records())
    for shard in Path(ca.home).rglob("audit/*.json"):
        data = json.loads(shard.read_text())
        if data.get("audit", {}).pop(str(last), None) is not None:
            shard.write_text(json.dumps(data))
    assert not watch.intact()  # the records since the last look end short of the committed head

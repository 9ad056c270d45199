"""The queue cannot grow forever: requests older than an age expire, each
with its audit record, and the requester can ask again."""

from __future__ import annotations

import json
from datetime import timedelta

from hardening_support import (
    FIXED_NOW,
    PASSPHRASE,
    Clock,
    cli,
    csr_bytes,
    init_home,
    one_line_error,
    snapshot,
)

from tui_ca.engine import RequestStatus
from tui_ca.engine.reader import utc_now


def test_old_requests_expire_young_ones_stay(tmp_path):
    clock = Clock(FIXED_NOW)
    ca = init_home(tmp_path / "home", clock=clock)
    old_csr = csr_bytes("old-client")
    old = ca.submit(old_csr).request.id
    clock.now = FIXED_NOW + timedelta(days=20)
    young = ca.submit(csr_bytes("young-client")).request.id
    clock.now = FIXED_NOW + timedelta(days=30, seconds=1)
    seq_before = len(ca.audit_records())

    assert ca.expire_queue(timedelta(days=30)) == [old]
    assert ca.request(old).status == RequestStatus.EXPIRED
    assert ca.request(young).status == RequestStatus.QUEUED
    new_records = ca.audit_records()[seq_before:]
    assert [(r.action, r.target) for r in new_records] == [("expire", f"request {old}")]
    assert ca.verify_audit() == []
    assert ca.queued_count() == 1
    # Nothing more to expire: no change, no record.
    assert ca.expire_queue(timedelta(days=30)) == []
    assert len(ca.audit_records()) == seq_before + 1

    # The requester can ask again, with the very same CSR (a client polling) or a new one.
    again = ca.submit(old_csr)
    assert again.created and again.request.id not in (old, young)
    assert ca.request(again.request.id).requester == "old-client"


def test_exactly_at_the_age_a_request_stays(tmp_path):
    clock = Clock(FIXED_NOW)
    ca = init_home(tmp_path / "home", clock=clock)
    request = ca.submit(csr_bytes("edge")).request.id
    clock.now = FIXED_NOW + timedelta(days=30)
    assert ca.expire_queue(timedelta(days=30)) == []
    assert ca.request(request).status == RequestStatus.QUEUED


def test_cli_default_is_30_days_and_needs_no_key(tmp_path):
    home = tmp_path / "home"
    clock = Clock(utc_now() - timedelta(days=31))
    ca = init_home(home, passphrase=PASSPHRASE, clock=clock)  # encrypted: proves no unlock is needed
    old = ca.submit(csr_bytes("month-old")).request.id
    clock.now = utc_now() - timedelta(days=29)
    recent = ca.submit(csr_bytes("recent")).request.id

    result = cli(home, "expire-queue")
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.decode().strip() == f"1 queued request(s) expired: {old}"
    listed = {r["id"]: r["status"] for r in json.loads(cli(home, "list", "--json").stdout)}
    assert listed == {old: "expired", recent: "queued"}
    assert cli(home, "audit", "--verify").returncode == 0
    resubmitted = cli(home, "submit", "-", input=csr_bytes("month-old"))
    assert resubmitted.returncode == 0, resubmitted.stderr.decode()


def test_cli_refuses_a_nonsense_age(tmp_path):
    home = tmp_path / "home"
    init_home(home).submit(csr_bytes("x"))
    before = snapshot(home)
    one_line_error(cli(home, "expire-queue", "--days", "0"), 2, "--days")
    one_line_error(cli(home, "expire-queue", "--days", "soon"), 2)
    assert snapshot(home) == before

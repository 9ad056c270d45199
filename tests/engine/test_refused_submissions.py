"""Refused submissions are kept (issue 13): why a request never appeared, on every backend.

The refused submission itself stores nothing (tests/engine/test_intake.py);
its record lands in a transaction of its own, bounded to the newest
``REFUSALS_KEPT`` so that a flood cannot fill the disk.
"""

from __future__ import annotations

import pytest
from helpers import csr_pem, make_csr, refused_inputs

from tui_ca.engine import Actor, CAError, InputError, RuleError
from tui_ca.engine.ca import Submission
from tui_ca.engine.csr_policy import check_and_describe, load_csr
from tui_ca.engine.records import REFUSAL_TEXT_CAPS
from tui_ca.engine.store import protocol


def _entry(cn: str, actor: Actor, requester: str | None = None) -> Submission:
    csr = load_csr(csr_pem(make_csr("ec-p256", cn=cn)))
    return Submission(csr, check_and_describe(csr), requester=requester, actor=actor)


def test_a_policy_refusal_is_recorded_with_its_reason_and_csr(ca, clock):
    data = csr_pem(make_csr("rsa-1024", cn="small.example"))
    with pytest.raises(RuleError) as caught:
        ca.submit(data, requester="bob")
    [refusal] = ca.refusals()
    assert refusal.reason == str(caught.value)
    assert (refusal.source, refusal.requester, refusal.subject) == ("cli", "bob", "CN=small.example")
    assert (refusal.user, refusal.address, refusal.at, refusal.seq) == ("alice", "192.0.2.10", clock.now, 1)


def test_the_refused_submission_itself_changes_no_counter_and_no_audit(ca):
    meta, audit = ca.store.read(lambda v: v.meta()), ca.audit_records()
    with pytest.raises(InputError):
        ca.submit(b"not a CSR", requester="bob")
    assert ca.store.read(lambda v: v.meta()) == meta
    assert ca.audit_records() == audit
    assert ca.requests() == []
    # The next accepted request still gets the next ID: none was burnt.
    assert ca.submit(csr_pem(make_csr("ec-p256", cn="next"))).request.id == meta["next_id"]


@pytest.mark.parametrize("case", ["not-a-csr", "bad-signature", "no-cn-no-san", "over-64KiB"])
def test_every_kind_of_bad_input_is_recorded(ca, case):
    data, _code, fragment = refused_inputs()[case]
    with pytest.raises((InputError, RuleError)):
        ca.submit(data)
    [refusal] = ca.refusals()
    assert fragment in refusal.reason
    # What cannot be read as a CSR, or names nobody, has no subject to show.
    assert (refusal.subject is None) == (case != "bad-signature")


def test_a_rule_refusal_names_the_request_it_collides_with(ca):
    ca.submit(csr_pem(make_csr("ec-p256", cn="host")), requester="host")
    with pytest.raises(RuleError):
        ca.submit(csr_pem(make_csr("ec-p256", cn="host2")), requester="host")
    [refusal] = ca.refusals()
    assert "already has request 1 in the queue" in refusal.reason


def test_group_commit_keeps_the_accepted_and_records_each_refused_client(ca):
    ca.submit(csr_pem(make_csr("ec-p256", cn="taken")), requester="taken")
    outcomes = ca.submit_each([
        _entry("fresh", Actor("est-user", "198.51.100.1")),
        _entry("taken-again", Actor("mallory", "203.0.113.9"), requester="taken"),
    ], source="est")  # fmt: skip
    assert not isinstance(outcomes[0], CAError) and isinstance(outcomes[1], RuleError)
    assert [r.requester for r in ca.requests()] == ["taken", "fresh"]
    [refusal] = ca.refusals()
    assert (refusal.source, refusal.user, refusal.address, refusal.requester) == (
        "est", "mallory", "203.0.113.9", "taken")  # fmt: skip
    assert refusal.subject == "CN=taken-again" and refusal.reason == str(outcomes[1])


def test_a_face_records_what_it_refused_before_intake_with_text_capped(ca):
    ca.record_refusal("x" * 5000, source="est", actor=Actor("u" * 500, "a" * 500), requester="r" * 500,
                      subject="s" * 5000)  # fmt: skip
    [refusal] = ca.refusals()
    assert len(refusal.reason) == REFUSAL_TEXT_CAPS["reason"] and refusal.reason.endswith("…")
    assert len(refusal.user or "") == REFUSAL_TEXT_CAPS["user"]
    assert len(refusal.address or "") == REFUSAL_TEXT_CAPS["address"]
    assert len(refusal.requester or "") == REFUSAL_TEXT_CAPS["requester"]
    assert len(refusal.subject or "") == REFUSAL_TEXT_CAPS["subject"]


def test_client_text_is_kept_as_it_came(ca):
    hostile = "[bold red]boom[/] \x1b[31m\u202e"
    ca.record_refusal(hostile, source="scep", actor=Actor("scep", None), subject=hostile)
    [refusal] = ca.refusals()
    assert refusal.reason == hostile and refusal.subject == hostile and refusal.address is None


def test_only_the_newest_are_kept_newest_first(ca, monkeypatch):
    monkeypatch.setattr(protocol, "REFUSALS_KEPT", 5)
    for number in range(1, 9):
        ca.record_refusal(f"refusal {number}", source="cli")
    kept = ca.refusals()
    assert [r.reason for r in kept] == [f"refusal {n}" for n in (8, 7, 6, 5, 4)]
    assert [r.seq for r in kept] == [8, 7, 6, 5, 4]
    assert [r.reason for r in ca.refusals(limit=2)] == ["refusal 8", "refusal 7"]
    assert ca.refusals(limit=0) == []


def test_no_refusals_is_an_empty_list(ca):
    assert ca.refusals() == []


@pytest.mark.journal_commits
@pytest.mark.tinydb_only
def test_the_ring_rewrites_one_small_shard_not_a_growing_file(ca, home, monkeypatch):
    monkeypatch.setattr(protocol, "REFUSALS_KEPT", 70)
    for number in range(300):
        ca.record_refusal(f"refusal {number}", source="est", actor=Actor("est", "198.51.100.7"))
    files = sorted(p.name for p in (home / "db" / "refusals").iterdir())
    # 70 slots in shards of 64: two ring shards and the head, however many came.
    assert files == ["head.json", "r0000.json", "r0001.json"]
    assert [r.reason for r in ca.refusals(limit=3)] == ["refusal 299", "refusal 298", "refusal 297"]
    assert len(ca.refusals(limit=1000)) == 70


def test_a_backup_keeps_the_refusals_in_order(ca, tmp_path):
    for number in range(3):
        ca.record_refusal(f"refusal {number}", source="est", actor=Actor("est", "198.51.100.7"))
    dest = ca.backup(tmp_path / "backup")
    from tui_ca.engine import CertificateAuthority

    copied = CertificateAuthority(dest, store="tinydb").refusals()
    assert [r.reason for r in copied] == ["refusal 2", "refusal 1", "refusal 0"]
    assert copied[0].address == "198.51.100.7"

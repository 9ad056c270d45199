"""K-of-N approval and roles, on every store backend."""

from __future__ import annotations

import grp
import os

import pytest

from tests.helpers import csr_pem, make_csr
from tui_ca.engine import Actor, CertificateAuthority
from tui_ca.engine.approval_policy import ApprovalPolicy, ApprovalRule, PolicyTamperedError
from tui_ca.engine.errors import RuleError
from tui_ca.engine.models import RequestStatus
from tui_ca.engine.roles import Identity, RoleError, RoleGroups

ALICE, BOB, CAROL = Actor("alice", "192.0.2.10"), Actor("bob", "192.0.2.11"), Actor("carol")


def _as(ca: CertificateAuthority, actor: Actor) -> CertificateAuthority:
    """Another admin's session on the same home (same clock, same store)."""
    other = CertificateAuthority(ca.home, clock=ca.now, actor=actor)
    other._keys = ca._keys  # the same unlocked key, as each admin would unlock it
    return other


def _queue(ca: CertificateAuthority, cn: str, sans: tuple[str, ...] = ()) -> int:
    return ca.submit(csr_pem(make_csr(cn=cn, sans=sans)), requester=cn).request.id


def test_without_a_policy_one_approval_issues(ca):
    request_id = _queue(ca, "one")
    [outcome] = ca.approve([request_id])
    assert outcome.certificate is not None and not outcome.pending
    assert ca.request(request_id).approvals == (ALICE,)


def test_two_of_n_needs_two_distinct_admins(ca):
    ca.set_policy(ApprovalPolicy(approvals=2))
    request_id = _queue(ca, "two")
    [first] = ca.approve([request_id])
    assert first.pending and first.approvals == ("alice",) and first.needed == 2
    request = ca.request(request_id)
    assert request.status is RequestStatus.QUEUED
    assert [a.user for a in request.approvals] == ["alice"]
    assert ca.approvals_needed(request) == 2
    [again] = ca.approve([request_id])
    assert again.error and "alice has already approved request" in again.error
    assert ca.request(request_id).status is RequestStatus.QUEUED
    [second] = _as(ca, BOB).approve([request_id])
    assert second.certificate is not None and second.approvals == ("alice", "bob")
    issued = [r for r in ca.audit_records() if r.action == "approve" and r.outcome == "issued"]
    assert issued[-1].user == "bob" and issued[-1].extra["approvers"] == ["alice", "bob"]
    partial = [r for r in ca.audit_records() if r.outcome == "approval 1 of 2"]
    assert [r.user for r in partial] == ["alice"]


def test_rules_and_renewals_change_the_number(ca):
    ca.set_policy(ApprovalPolicy(approvals=2, rules=(ApprovalRule("*.bank.example", 3),)))
    plain = _queue(ca, "plain")
    bank = _queue(ca, "teller", sans=("DNS:pay.bank.example",))
    assert ca.approvals_needed(ca.request(plain)) == 2
    assert ca.approvals_needed(ca.request(bank)) == 3
    ca.approve([bank])
    _as(ca, BOB).approve([bank])
    assert ca.request(bank).status is RequestStatus.QUEUED
    [third] = _as(ca, CAROL).approve([bank])
    assert third.certificate is not None


def test_a_rejection_by_any_one_admin_ends_the_request(ca):
    ca.set_policy(ApprovalPolicy(approvals=2))
    request_id = _queue(ca, "ended")
    ca.approve([request_id])
    _as(ca, BOB).reject(request_id, "not ours")
    assert ca.request(request_id).status is RequestStatus.REJECTED
    [late] = _as(ca, CAROL).approve([request_id])
    assert late.error and "rejected, not queued" in late.error


def test_setting_the_policy_is_audited_and_readable(ca):
    ca.set_policy(ApprovalPolicy(approvals=2, renewal_approvals=1))
    assert ca.approval_policy() == ApprovalPolicy(approvals=2, renewal_approvals=1)
    record = [r for r in ca.audit_records() if r.action == "policy"][-1]
    assert record.extra["approvals"] == "2 approvals; renewals 1"
    assert ca.verify_audit() == []


def test_a_policy_lowered_without_the_key_stops_approvals(ca):
    ca.set_policy(ApprovalPolicy(approvals=2))
    request_id = _queue(ca, "guarded")
    with ca.store.transaction() as txn:
        config = dict(txn.config())
        stored = dict(config["governance"])
        stored["policy"] = {**stored["policy"], "approvals": 1}
        config["governance"] = stored
        txn.put_config(config)
    with pytest.raises(PolicyTamperedError, match="changed without the CA key"):
        ca.approve([request_id])
    assert ca.request(request_id).status is RequestStatus.QUEUED
    assert ca.request(request_id).approvals == ()


def _group_without(identity: Identity) -> str:
    for group in grp.getgrall():
        if group.gr_name not in identity.groups:
            return group.gr_name
    raise AssertionError("every group on this machine includes the test's user")


def test_roles_refuse_and_audit_what_this_user_may_not_do(ca):
    me = Identity.of_process()
    mine = grp.getgrgid(os.getgid()).gr_name
    other = _group_without(me)
    ca.set_policy(ApprovalPolicy(), RoleGroups(approver=mine, revoker=other, viewer=other))
    request_id = _queue(ca, "roles")
    [outcome] = ca.approve([request_id])
    assert outcome.certificate is not None
    with pytest.raises(RoleError, match=f"{me.user} may not revoke: that needs the revoker role, held by members of group '{other}'"):
        ca.revoke(request_id)
    assert ca.certificate(request_id).revoked_at is None
    refused = ca.audit_records()[-1]
    assert (refused.action, refused.outcome) == ("revoke", "refused: role missing")
    assert refused.extra["uid"] == me.uid
    assert ca.may("revoke") is not None and ca.may("approve") is None
    assert ca.verify_audit() == []


def test_roles_need_the_key_to_change_and_an_existing_group(ca):
    from tui_ca.engine.errors import InputError

    with pytest.raises(InputError, match="no Unix group named"):
        ca.set_policy(ApprovalPolicy(), RoleGroups(approver="no-such-group-tuica"))
    assert not ca.role_groups().enabled
    keyless = CertificateAuthority(ca.home, clock=ca.now, actor=BOB, passphrase=None)
    assert isinstance(keyless.approval_policy(), ApprovalPolicy)
    assert issubclass(RoleError, RuleError)

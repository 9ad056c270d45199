"""Roles from Unix groups, decided on the process's real identity."""

from __future__ import annotations

import grp
import os
import pwd

import pytest

from tui_ca.engine.errors import InputError
from tui_ca.engine.roles import Identity, Role, RoleError, RoleGroups


def test_identity_is_the_real_uid_not_the_environment(monkeypatch):
    monkeypatch.setenv("USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    identity = Identity.of_process()
    assert identity.uid == os.getuid()
    assert identity.user == pwd.getpwuid(os.getuid()).pw_name
    assert grp.getgrgid(os.getgid()).gr_name in identity.groups


def test_roles_off_allow_everything():
    nobody = Identity("eve", 4242, frozenset())
    RoleGroups().require(nobody, "approve")
    assert RoleGroups().roles_of(nobody) == frozenset(Role)


def test_roles_follow_group_membership():
    groups = RoleGroups(approver="ca-approvers", revoker="ca-revokers", viewer="helpdesk")
    alice = Identity("alice", 1001, frozenset({"ca-approvers"}))
    helpdesk = Identity("hd", 1002, frozenset({"helpdesk"}))
    groups.require(alice, "approve")
    groups.require(alice, "submit")  # intake needs no role
    with pytest.raises(RoleError, match="alice may not revoke: that needs the revoker role"):
        groups.require(alice, "revoke")
    for operation in ("approve", "reject", "revoke", "unhold"):
        assert groups.why_not(helpdesk, operation) is not None
    assert groups.roles_of(helpdesk) == {Role.VIEWER}


def test_a_role_without_a_group_is_held_by_nobody():
    groups = RoleGroups(viewer="helpdesk")
    with pytest.raises(RoleError, match="nobody"):
        groups.require(Identity("root", 0, frozenset({"root"})), "approve")


def test_unknown_group_is_refused_when_set():
    with pytest.raises(InputError, match="no Unix group named 'no-such-group-tuica'"):
        RoleGroups(approver="no-such-group-tuica").validated()


def test_round_trip_and_damaged_doc():
    groups = RoleGroups(approver="a", viewer="v")
    assert RoleGroups.from_doc(groups.to_doc()) == groups
    assert not RoleGroups.from_doc(None).enabled
    with pytest.raises(RoleError.__mro__[1]):
        RoleGroups.from_doc({"approver": 7})

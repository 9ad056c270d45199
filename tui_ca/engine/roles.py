"""Who may do what: admin roles from Unix groups, and the identity they attach to.

Roles are off until ``policy roles`` names a group for each; then every
decision checks the role of the *process*, not of a name the caller passes:
the identity is the real uid (``os.getuid()``), looked up in the password
database, so neither ``$USER`` nor ``sudo -E`` changes who an admin is. A
process that changes its effective uid keeps its real one, which is the
person who started it.

A role is held by membership of its group (primary or supplementary, as the
group database says). Anyone who can write the home can still edit files by
hand; roles stop mistakes and make every refusal visible in the audit, and
the audit chain shows tampering (SECURITY.md).
"""

from __future__ import annotations

import grp
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from tui_ca.engine.errors import InputError, RuleError


class Role(StrEnum):
    """What an admin may change; ``viewer`` may change nothing."""

    APPROVER = "approver"
    REVOKER = "revoker"
    VIEWER = "viewer"


class RoleError(RuleError):
    """The process's user lacks the role an operation needs."""


# Which role each changing operation needs. Submitting is what clients do
# and is left to anyone who can reach the store (the server, the CLI); so is
# expiring stale requests, housekeeping that the server does on its own.
OPERATION_ROLES: Mapping[str, Role] = {
    "approve": Role.APPROVER,
    "reject": Role.APPROVER,
    "revoke": Role.REVOKER,
    "unhold": Role.REVOKER,
}


@dataclass(frozen=True)
class Identity:
    """The person a process acts for, from its real uid."""

    user: str
    """Login name of the real uid (``uid:N`` when the password database has none)."""
    uid: int
    """The real uid."""
    groups: frozenset[str]
    """Names of every group the user belongs to."""

    @classmethod
    def of_process(cls) -> Identity:
        """The identity of this process's real uid."""
        uid = os.getuid()
        try:
            entry = pwd.getpwuid(uid)
        except KeyError:
            return cls(user=f"uid:{uid}", uid=uid, groups=frozenset(_group_names(os.getgroups())))
        try:
            gids = os.getgrouplist(entry.pw_name, entry.pw_gid)
        except OSError:
            gids = [entry.pw_gid, *os.getgroups()]
        return cls(user=entry.pw_name, uid=uid, groups=frozenset(_group_names(gids)))


def _group_names(gids: list[int]) -> list[str]:
    names = []
    for gid in gids:
        try:
            names.append(grp.getgrgid(gid).gr_name)
        except KeyError:
            names.append(str(gid))
    return names


@dataclass(frozen=True)
class RoleGroups:
    """The Unix group that grants each role; roles are off when empty."""

    approver: str | None = None
    """Group whose members approve and reject."""
    revoker: str | None = None
    """Group whose members revoke and release holds."""
    viewer: str | None = None
    """Group whose members may read (the UI and listings) but change nothing."""

    @property
    def enabled(self) -> bool:
        """Whether any role is configured."""
        return any((self.approver, self.revoker, self.viewer))

    def to_doc(self) -> dict[str, str]:
        """The form kept in the CA's configuration."""
        return {role.value: group for role in Role if (group := getattr(self, role.value))}

    @classmethod
    def from_doc(cls, doc: Mapping[str, object] | None) -> RoleGroups:
        """Read the configuration's form back (absent: roles off)."""
        if not doc:
            return cls()
        values = {role.value: doc.get(role.value) for role in Role}
        for role, group in values.items():
            if group is not None and not isinstance(group, str):
                raise RuleError(f"the configured group for role {role} is not a name")
        return cls(**values)  # type: ignore[arg-type]

    def validated(self) -> RoleGroups:
        """Refuse a group the group database does not know (a typo would lock everyone out)."""
        for role in Role:
            group = getattr(self, role.value)
            if group is None:
                continue
            try:
                grp.getgrnam(group)
            except KeyError:
                raise InputError(f"no Unix group named {group!r} (for role {role.value})") from None
        return self

    def roles_of(self, identity: Identity) -> frozenset[Role]:
        """The roles ``identity`` holds; every role when roles are off."""
        if not self.enabled:
            return frozenset(Role)
        return frozenset(role for role in Role if (group := getattr(self, role.value)) and group in identity.groups)

    def require(self, identity: Identity, operation: str) -> None:
        """Refuse (RoleError) unless ``identity`` may perform ``operation``."""
        needed = OPERATION_ROLES.get(operation)
        if needed is None or not self.enabled or needed in self.roles_of(identity):
            return
        group = getattr(self, needed.value)
        where = f"members of group {group!r}" if group else "nobody (the role has no group)"
        raise RoleError(f"{identity.user} may not {operation}: that needs the {needed.value} role, held by {where}")

    def why_not(self, identity: Identity, operation: str) -> str | None:
        """The refusal ``require`` would give, or None: for faces that grey out a key."""
        try:
            self.require(identity, operation)
        except RoleError as exc:
            return str(exc)
        return None

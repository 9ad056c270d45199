"""Who may decide, and how many must agree: the approval policy and roles in the engine.

Both are off until an admin holding the CA key sets them (``set_policy``):
they are stored in the configuration with a signature by the issuing key, and
read back only if it verifies (approval_policy.py). Roles are checked against
the real uid of this process (roles.py); every refusal is written to the audit
log in a commit of its own, since the refused operation commits nothing.
"""

from __future__ import annotations

import functools
from typing import Any

from tui_ca.engine.approval_policy import (
    GOVERNANCE_CONFIG_KEY,
    ApprovalPolicy,
    approvals_needed,
    governance_in_force,
    sign_policy,
)
from tui_ca.engine.authority import AuthorityBase
from tui_ca.engine.models import Actor, Request
from tui_ca.engine.roles import Identity, RoleError, RoleGroups


class Governance(AuthorityBase):
    @functools.cached_property
    def identity(self) -> Identity:
        """The person this process acts for: its real uid and groups."""
        return Identity.of_process()

    def _governance(self, config: dict[str, Any] | None = None) -> tuple[ApprovalPolicy, RoleGroups]:
        policy, roles = governance_in_force(self.config() if config is None else config,
                                            lambda: self.issuing_cert().public_key())  # fmt: skip
        return policy, RoleGroups.from_doc(roles)

    def approval_policy(self) -> ApprovalPolicy:
        """The approval policy in force (verified against the CA key)."""
        return self._governance()[0]

    def role_groups(self) -> RoleGroups:
        """The Unix groups that grant each role (none: roles are off)."""
        return self._governance()[1]

    def approvals_needed(self, request: Request) -> int:
        """How many distinct admins must approve ``request`` under the policy in force."""
        return approvals_needed(self.approval_policy(), request.requester, request.details.common_name,
                                request.details.sans, renewal=request.renewal_of is not None)  # fmt: skip

    def may(self, operation: str) -> str | None:
        """Why this process may not perform ``operation`` (None: it may); for faces that grey out keys."""
        return self.role_groups().why_not(self.identity, operation)

    def set_policy(self, policy: ApprovalPolicy, roles: RoleGroups | None = None, *,
                   actor: Actor | None = None) -> ApprovalPolicy:  # fmt: skip
        """Record a new policy (and role groups, unchanged when None), signed with the CA key."""
        self._require_ca()
        key = self.signing_key()
        current_roles = self.role_groups()
        roles = current_roles if roles is None else roles.validated()
        with self._operation(actor) as op:
            config = dict(op.txn.config())
            config[GOVERNANCE_CONFIG_KEY] = sign_policy(policy, key, roles.to_doc())
            op.txn.put_config(config)
            op.audit("policy", "approval policy", "set", approvals=policy.describe(),
                     roles=roles.to_doc() or "off")  # fmt: skip
        return policy

    def _require_role(self, operation: str, target: str, actor: Actor | None = None) -> None:
        """Refuse, with an audit record, unless this process's user holds the role for ``operation``."""
        try:
            self.role_groups().require(self.identity, operation)
        except RoleError as exc:
            with self._operation(actor) as op:
                op.audit(operation, target, "refused: role missing", reason=str(exc), uid=self.identity.uid)
            raise


def approvals_needed_for_doc(policy: ApprovalPolicy, doc: dict[str, Any]) -> int:
    """``approvals_needed`` for a stored request document (inside a transaction)."""
    return approvals_needed(policy, doc["requester"], (doc.get("fields") or {}).get("common_name"),
                            doc.get("sans") or [], renewal=doc.get("renewal_of") is not None)  # fmt: skip

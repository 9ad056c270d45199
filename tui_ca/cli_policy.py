"""``tui-ca policy``: show or set the approval policy and the admin roles.

Kept apart from cli.py so that the main command table only names it; the
engine does the work (governance.py) and signs the result with the CA key.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from tui_ca.engine.approval_policy import ApprovalPolicy, parse_rule
from tui_ca.engine.errors import InputError
from tui_ca.engine.roles import RoleGroups

HELP = "show or set the K-of-N approval policy and the admin roles (setting uses the CA key)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["show", "set", "roles"],
                   help="show the policy in force; set the approvals; set the role groups")  # fmt: skip
    p.add_argument("--approvals", type=int, help="with set: distinct admins who must approve a request (1-9)")
    p.add_argument("--renewal-approvals", type=int, help="with set: approvals a renewal needs, when it differs")
    p.add_argument("--rule", action="append", default=[], metavar="PATTERN=N",
                   help="with set: requests naming a match (requester, CN, SAN; '*.bank.example') need N (repeat)")  # fmt: skip
    p.add_argument("--approver", metavar="GROUP", help="with roles: Unix group whose members approve and reject")
    p.add_argument("--revoker", metavar="GROUP", help="with roles: Unix group whose members revoke")
    p.add_argument("--viewer", metavar="GROUP", help="with roles: Unix group whose members may only read")
    p.add_argument("--off", action="store_true", help="with roles: turn roles off (everyone may do everything)")
    p.add_argument("--json", action="store_true", help="with show: machine-readable output")


def _policy_doc(policy: ApprovalPolicy, roles: RoleGroups) -> dict[str, Any]:
    return {**policy.to_doc(), "roles": roles.to_doc() or None}


def run(ca: Any, args: argparse.Namespace) -> int:
    if args.action == "show":
        policy, roles = ca.approval_policy(), ca.role_groups()
        if args.json:
            json.dump(_policy_doc(policy, roles), sys.stdout, indent=2)
            sys.stdout.write("\n")
            return 0
        print(f"approvals: {policy.describe()}")
        groups = roles.to_doc()
        print("roles: " + (", ".join(f"{role} = group {group}" for role, group in groups.items()) if groups else "off"))
        return 0
    if args.action == "set":
        if args.approvals is None:
            raise InputError("policy set needs --approvals N (1 turns the policy off)")
        policy = ApprovalPolicy(approvals=args.approvals, renewal_approvals=args.renewal_approvals,
                                rules=tuple(parse_rule(text) for text in args.rule))  # fmt: skip
        ca.set_policy(policy)
        print(f"approvals: {policy.describe()}")
        return 0
    if args.off:
        if args.approver or args.revoker or args.viewer:
            raise InputError("policy roles --off takes no groups")
        roles = RoleGroups()
    elif not (args.approver or args.revoker or args.viewer):
        raise InputError("policy roles needs --approver, --revoker and/or --viewer GROUP (or --off)")
    else:
        roles = RoleGroups(approver=args.approver, revoker=args.revoker, viewer=args.viewer)
    ca.set_policy(ca.approval_policy(), roles)
    groups = roles.to_doc()
    print("roles: " + (", ".join(f"{role} = group {group}" for role, group in groups.items()) if groups else "off"))
    return 0

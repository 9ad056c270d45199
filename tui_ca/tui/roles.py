"""Roles in the UI (issue 15): what this admin's role does not allow is greyed out, and the reason said.

The engine decides (``CertificateAuthority.may``, from the real uid's groups)
and still refuses and audits whatever reaches it; the UI only reads the
answer so that a helpdesk admin sees greyed keys and one line saying which
role and group each needs, rather than a refusal after a dialog. A greyed key
pressed anyway gets the engine's sentence as a toast.
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import events
from textual.screen import Screen
from textual.widgets import Input

from tui_ca.engine import CAError
from tui_ca.engine.roles import OPERATION_ROLES

# The actions of the screens that change the CA, by the engine operation each needs.
ROLE_OPERATIONS = ("approve", "reject", "revoke", "unhold")
_VERBS = {"approve": "approve", "reject": "reject", "revoke": "revoke", "unhold": "release holds"}


def denials(ca: Any) -> dict[str, str]:
    """``operation -> why not`` for each operation this process may not perform (empty: roles off or all held)."""
    try:
        groups = ca.role_groups()
    except CAError:
        # No CA yet, or a configuration the engine refuses: the engine says so when asked to act.
        return {}
    if not groups.enabled:
        return {}
    identity = ca.identity
    return {operation: why for operation in ROLE_OPERATIONS if (why := groups.why_not(identity, operation))}


def explanation(ca: Any, denied: dict[str, str]) -> Text:
    """One line: which operations need which role and group."""
    groups = ca.role_groups()
    parts = []
    for role in dict.fromkeys(OPERATION_ROLES[operation] for operation in denied):
        verbs = [_VERBS[operation] for operation in denied if OPERATION_ROLES[operation] is role]
        group = getattr(groups, role.value)
        holder = f"group {group!r}" if group else "no group: nobody holds it"
        parts.append(f"{' or '.join(verbs)} (needs the {role.value} role, {holder})")
    text = Text(f"Roles: {ca.identity.user} may not ", style="bold")
    text.append("; ".join(parts) + ".", style="")
    return text


class RoleKeys(Screen):
    """A screen whose keys ``ROLE_KEYS`` are greyed when the role is missing, with a toast if pressed."""

    ROLE_KEYS: dict[str, str] = {}
    """Key -> the action (and engine operation) it runs."""

    def role_denied(self, operation: str) -> str | None:
        """Why this admin may not perform ``operation`` (None: may)."""
        return getattr(self.app, "denied", {}).get(operation)

    def role_key_applies(self, operation: str) -> bool:
        """Whether the key for ``operation`` would act here now but for the role (e.g. the right list has focus)."""
        return True

    def on_key(self, event: events.Key) -> None:
        # A greyed binding lets its key through to here: say why instead of nothing.
        if isinstance(self.focused, Input):
            return
        operation = self.ROLE_KEYS.get(event.key)
        why = self.role_denied(operation) if operation else None
        if why and self.role_key_applies(operation or ""):
            event.stop()
            self.app.notify(why, title="Not allowed", severity="warning", markup=False, timeout=8)

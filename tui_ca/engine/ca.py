"""The certificate authority: every operation that changes a CA home.

Each changing operation is one store transaction (operation.py): the rules are
checked on state re-read inside it, the change and its audit record are
written together, and a revocation publishes its CRL in the same commit.
Crypto that does not depend on stored state (parsing, policy) runs before the
transaction so that it is held briefly. The operations live by responsibility:
setup.py (init, import), intake.py (submit), decisions.py (approve, reject,
expire, revoke) and publishing.py (the CRL).
"""

from __future__ import annotations

from pathlib import Path

from tui_ca.engine.authority import (
    DEFAULT_CA_DAYS,
    DEFAULT_CRL_DAYS,
    DEFAULT_LEAF_DAYS,
    DEFAULT_QUEUE_DAYS,
    MAX_LEAF_DAYS,
    MAX_REASON_CHARS,
    MAX_REQUESTER_CHARS,
    Passphrase,
)
from tui_ca.engine.decisions import Decisions
from tui_ca.engine.intake import Intake
from tui_ca.engine.models import Actor
from tui_ca.engine.setup import Setup, root_common_name
from tui_ca.engine.store import RecordStore

__all__ = [
    "DEFAULT_CA_DAYS", "DEFAULT_CRL_DAYS", "DEFAULT_LEAF_DAYS", "DEFAULT_QUEUE_DAYS", "MAX_LEAF_DAYS",
    "MAX_REASON_CHARS", "MAX_REQUESTER_CHARS", "CertificateAuthority", "Passphrase", "root_common_name",
]  # fmt: skip


class CertificateAuthority(Setup, Intake, Decisions):
    """One CA home, with its keys. Thread-safe for the UI's workers; safe across processes.

    ``CertificateAuthority(home, store="memory")`` keeps the records in this
    process's memory instead of the home's default store (keys stay files).
    """

    @classmethod
    def restore(cls, source: Path | str, home: Path | str, *, store: RecordStore | str | None = None,
                actor: Actor | None = None) -> list[str]:  # fmt: skip
        """Put a backup onto the empty ``home``; the check of the result (empty when sound)."""
        from tui_ca.engine.backup import restore

        return restore(source, home, store=store, actor=actor)

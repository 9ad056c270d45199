"""Refused submissions: kept in the store (newest ``REFUSALS_KEPT``) and announced as ``refused`` events.

A refused submission stores nothing, so without this record an admin cannot
tell a user why their request never appeared. The record is written in a
transaction of its own, after the refused one has been rolled back (or, for
a group commit, has committed the others), and writing it never raises: the
submitter hears the refusal whatever happens here.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from cryptography import x509

from tui_ca.engine import records
from tui_ca.engine.errors import CAError, InputError, NoCAError, RuleError, UnsafeHomeError
from tui_ca.engine.models import Actor, Refusal
from tui_ca.engine.store.protocol import StoreDamagedError, StoreUnavailableError

F = TypeVar("F", bound=Callable[..., Any])


def csr_subject(data: bytes | x509.CertificateSigningRequest) -> str | None:
    """The subject of whatever CSR ``data`` holds, for the record; None when it cannot be read."""
    from tui_ca.engine.csr_policy import load_csr

    try:
        # A name past X.520's bounds (the reason it was refused, say) makes cryptography warn on stderr.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            csr = load_csr(data) if isinstance(data, bytes) else data
            subject = csr.subject.rfc4514_string()
    except (CAError, ValueError, TypeError):
        return None
    return subject or None


def record_refusals(ca: Any, refusals: Sequence[Refusal]) -> None:
    """Keep ``refusals`` and queue their events, in one transaction of their own; never raises."""
    if not refusals:
        return
    # Imported here: every command that opens the CA imports this module, and
    # only a refusal needs the outbox (~10 ms of a one-shot approve's start-up).
    from tui_ca.engine.notify import events
    from tui_ca.engine.notify.outbox import enqueue
    from tui_ca.engine.notify.store_outbox import OpRecords, channels_for

    try:
        channels = channels_for(ca.home)("refused")
        with ca._operation() as op:
            for refusal in refusals:
                op.txn.append_refusal(records.refusal_doc(refusal))
            if channels:
                outbox = OpRecords(op)
                for refusal in refusals:
                    actor = Actor(refusal.user or "?", refusal.address)
                    enqueue(outbox, events.refused_event(refusal.reason, refusal.source, refusal.at, actor), channels,
                            refusal.at)  # fmt: skip
                outbox.finish()
    except (CAError, OSError):
        return


def refusal_of(ca: Any, exc: CAError, source: str, actor: Actor | None, *, requester: str | None = None,
               subject: str | None = None) -> Refusal:  # fmt: skip
    """The record of ``exc`` refusing a submission by ``actor``."""
    who = actor or ca.actor
    return Refusal(at=ca.now(), source=source, reason=str(exc), user=who.user, address=who.address,
                   requester=requester, subject=subject)  # fmt: skip


def worth_recording(exc: CAError) -> bool:
    """Whether a refusal is about the submission, not about the CA (missing, unsafe home, store damaged or full)."""
    about_the_ca = (NoCAError, UnsafeHomeError, StoreDamagedError, StoreUnavailableError)
    return isinstance(exc, (InputError, RuleError)) and not isinstance(exc, about_the_ca)


def refusals_recorded(submit_many: F) -> F:
    """Wrap the engine's intake so that a refused submission is recorded and announced."""

    @functools.wraps(submit_many)
    def submit(self: Any, items: Any, *, source: str = "cli", actor: Actor | None = None, **options: Any) -> Any:
        try:
            return submit_many(self, items, source=source, actor=actor, **options)
        except (InputError, RuleError) as exc:
            if worth_recording(exc):
                data, requester = items[0] if len(items) == 1 else (b"", None)
                subject = csr_subject(data) if data else f"{len(items)} CSRs submitted together"
                record_refusals(self, [refusal_of(self, exc, source, actor, requester=requester, subject=subject)])
            raise

    return submit  # type: ignore[return-value]

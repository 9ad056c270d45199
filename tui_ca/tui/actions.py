"""Approve, reject and revoke: one flow whether started from an item's screen or from a list.

Each flow asks once (the same dialog for one row as the item screens use; for
marked rows, one dialog that lists them all), runs the engine work in one
thread worker and announces the outcome. Several requests are approved in a
single ``CertificateAuthority.approve`` call (one transaction); the engine has
no bulk reject or revoke, so those loop inside one worker, each row its own
transaction (each revocation publishes its CRL). A bulk action ends in a
report that says, per row, what happened.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rich.text import Text

from tui_ca.engine import CAError, Certificate, Request, RevocationReason
from tui_ca.engine.ca import MAX_LEAF_DAYS
from tui_ca.engine.models import ApproveOutcome
from tui_ca.tui.screens.dialogs import ApproveDialog, RejectDialog, RevokeDialog
from tui_ca.tui.text import visible

if TYPE_CHECKING:
    from tui_ca.tui.app import CAApp

# The product's own warning (seed text), kept in its words.
REVOKE_WARNING = (
    "Do not revoke to disable a phone set or device: revoking is for a certificate that must never be trusted "
    "again (lost, stolen, replaced). The requester can then make another request. A new CRL is published at once."
)

Done = Callable[[Any], None] | None


@dataclass(frozen=True)
class RowOutcome:
    """What one row of a bulk action became."""

    key: int
    """The Certificate ID."""
    ok: bool
    """Whether the engine did it."""
    text: str
    """``issued, serial …`` or the engine's reason for refusing."""


class Refused(CAError):
    """An approval the engine refused for this ID (its reason is the message)."""


def _request_line(request: Request) -> Text:
    line = Text(f"{request.id:>6}  ")
    line.append(visible(request.requester, 24), style="bold")
    line.append(f"  {visible(request.details.common_name, 30)}  SPKI {request.details.fingerprint_groups[:19]}…")
    return line


def _certificate_line(cert: Certificate) -> Text:
    line = Text(f"{cert.id:>6}  ")
    line.append(visible(cert.requester, 24), style="bold")
    line.append(f"  {visible(cert.common_name, 30)}  serial {cert.short_serial}…")
    return line


def _listing(intro: str, lines: list[Text]) -> Text:
    body = Text(intro)
    for line in lines:
        body.append("\n")
        body.append_text(line)
    return body


def _one_request(request: Request) -> Text:
    text = Text(f"Request {request.id} from ")
    text.append(visible(request.requester, 60), style="bold")
    text.append(f"\nSPKI SHA-256 {request.details.fingerprint_groups}")
    return text


def _tally(outcomes: list[RowOutcome], done: str) -> str:
    ok = sum(o.ok for o in outcomes)
    refused = len(outcomes) - ok
    return f"{ok} of {len(outcomes)} {done}" + (f", {refused} refused (see the report)" if refused else "")


def _report(app: CAApp, title: str) -> Callable[[list[RowOutcome]], None]:
    from tui_ca.tui.screens.report import BulkReportScreen

    def show(outcomes: list[RowOutcome]) -> None:
        app.push_screen(BulkReportScreen(title, outcomes))

    return show


# ---------------------------------------------------------------- approve


def ask_approve(app: CAApp, requests: Sequence[Request], default_days: int, after: Done = None) -> None:
    """Ask the validity (one dialog), then approve every request in one engine call."""
    if len(requests) == 1:
        request = requests[0]
        dialog = ApproveDialog(f"Approve request {request.id}?", _one_request(request), default_days, MAX_LEAF_DAYS)
    else:
        body = _listing(f"{len(requests)} marked requests; compare each SPKI with its requester first:",
                        [_request_line(r) for r in requests])  # fmt: skip
        dialog = ApproveDialog(f"Approve {len(requests)} requests?", body, default_days, MAX_LEAF_DAYS)
    app.push_screen(dialog, lambda days: _approve(app, [r.id for r in requests], days, after))


def _approve(app: CAApp, ids: list[int], days: int | None, after: Done) -> None:
    if days is None:
        return
    ca = app.ca
    if len(ids) == 1:
        request_id = ids[0]

        def one():
            outcome = ca.approve([request_id], days=days)[0]
            if outcome.certificate is None:
                if outcome.pending:
                    return outcome  # recorded; more admins must approve before it is issued
                raise Refused(str(outcome.error))
            return outcome

        app.operate(one, lambda o: _approved(request_id, o), after)
        return

    def many() -> list[RowOutcome]:
        return [_row_outcome(o) for o in ca.approve(ids, days=days)]

    app.operate(many, lambda outcomes: _tally(outcomes, "approved"), _then(_report(app, "Approve"), after))


def _approved(request_id: int, outcome: ApproveOutcome) -> str:
    """The result line of one approval: issued (and whether the CA's end cut it short), or recorded under K-of-N."""
    cert = outcome.certificate
    if cert is None:
        return (
            f"Request {request_id}: your approval is recorded, {len(outcome.approvals)} of {outcome.needed}; "
            "it is issued once enough admins approve."
        )
    # The warning says when the issuing CA's end cut the certificate short of the days asked.
    note = f" Note: {outcome.warning}." if outcome.warning else ""
    return (f"Request {request_id} approved: certificate serial {cert.serial_hex}, "
            f"valid until {cert.not_after:%Y-%m-%d}.{note}")  # fmt: skip


def _row_outcome(outcome: ApproveOutcome) -> RowOutcome:
    if outcome.certificate is not None:
        warning = f" ({outcome.warning})" if outcome.warning else ""
        return RowOutcome(outcome.id, True, f"issued, serial {outcome.certificate.serial_hex}{warning}")
    if outcome.pending:
        return RowOutcome(outcome.id, True, f"approval recorded, {len(outcome.approvals)} of {outcome.needed}")
    return RowOutcome(outcome.id, False, f"refused: {outcome.error}")


# ---------------------------------------------------------------- reject


def ask_reject(app: CAApp, requests: Sequence[Request], after: Done = None) -> None:
    """Ask one reason, then reject every request (one worker)."""
    if len(requests) == 1:
        dialog = RejectDialog(f"Reject request {requests[0].id}?", _one_request(requests[0]))
    else:
        body = _listing(f"{len(requests)} marked requests, all with the reason below:",
                        [_request_line(r) for r in requests])  # fmt: skip
        dialog = RejectDialog(f"Reject {len(requests)} requests?", body)
    app.push_screen(dialog, lambda reason: _reject(app, [r.id for r in requests], reason, after))


def _reject(app: CAApp, ids: list[int], reason: str | None, after: Done) -> None:
    if reason is None:
        return
    ca = app.ca
    if len(ids) == 1:
        app.operate(lambda: ca.reject(ids[0], reason), lambda r: f"Request {r.id} rejected.", after)
        return

    def many() -> list[RowOutcome]:
        outcomes = []
        for request_id in ids:
            try:
                ca.reject(request_id, reason)
            except CAError as exc:
                outcomes.append(RowOutcome(request_id, False, f"refused: {exc}"))
            else:
                outcomes.append(RowOutcome(request_id, True, "rejected"))
        return outcomes

    app.operate(many, lambda outcomes: _tally(outcomes, "rejected"), _then(_report(app, "Reject"), after))


# ---------------------------------------------------------------- revoke


def ask_revoke(app: CAApp, certs: Sequence[Certificate], after: Done = None) -> None:
    """Ask the RFC 5280 reason (one dialog), then revoke every certificate (one worker)."""
    if len(certs) == 1:
        cert = certs[0]
        body = Text(f"Certificate {cert.id}, serial {cert.serial_hex}, held by ")
        body.append(visible(cert.requester, 60), style="bold")
        body.append(f"\n{REVOKE_WARNING}\nReason (RFC 5280):")
        dialog = RevokeDialog(f"Revoke certificate {cert.id}?", body)
    else:
        body = _listing(f"{len(certs)} marked certificates:", [_certificate_line(c) for c in certs])
        body.append(f"\n{REVOKE_WARNING}\nReason (RFC 5280), for all of them:")
        dialog = RevokeDialog(f"Revoke {len(certs)} certificates?", body)
    app.push_screen(dialog, lambda reason: _revoke(app, [c.id for c in certs], reason, after))


def _revoke(app: CAApp, ids: list[int], reason: RevocationReason | None, after: Done) -> None:
    if reason is None:
        return
    ca = app.ca
    if len(ids) == 1:
        cert_id = ids[0]

        def one():
            cert = ca.revoke(cert_id, reason)
            return cert, ca.info().crl_number

        app.operate(one, lambda result: f"Certificate {cert_id} (serial {result[0].short_serial}…) revoked, "
                                        f"reason {reason.value}; CRL {result[1]} published.", after)  # fmt: skip
        return

    def many() -> list[RowOutcome]:
        outcomes = []
        for cert_id in ids:
            try:
                cert = ca.revoke(cert_id, reason)
            except CAError as exc:
                outcomes.append(RowOutcome(cert_id, False, f"refused: {exc}"))
            else:
                outcomes.append(RowOutcome(cert_id, True, f"revoked ({reason.value}), serial {cert.serial_hex}"))
        return outcomes

    app.operate(many, lambda outcomes: _tally(outcomes, f"revoked, reason {reason.value}"),
                _then(_report(app, "Revoke"), after))  # fmt: skip


def _then(first: Callable[[Any], None], second: Done) -> Callable[[Any], None]:
    def both(result: Any) -> None:
        first(result)
        if second is not None:
            second(result)

    return both

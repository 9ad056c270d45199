"""What the main screen shows, read from the engine in one go (in a worker).

Nothing here touches Textual widgets: a ``Snapshot`` is built in a thread and
handed to the screen, which only swaps rows into its lists.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tui_ca.engine import CAInfo, Certificate, CertStatus, CertificateAuthority, Request, RequestStatus
from tui_ca.tui.text import day, days_left, span, visible
from tui_ca.tui.widgets.record_list import Row

# The issue asks that certificates close to their end stand out.
EXPIRY_WARNING = timedelta(days=30)


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of a CA home."""

    token: object
    """The store's change token when the read began."""
    now: datetime
    """The clock at the read."""
    info: CAInfo
    """The signing certificate and CRL freshness."""
    queued: list[Row] = field(default_factory=list)
    """Rows of the Queued CSRs list."""
    certificates: list[Row] = field(default_factory=list)
    """Rows of the Approved Certificates list (valid ones)."""
    closed: list[Row] = field(default_factory=list)
    """Revoked and expired certificates, rejected and expired requests."""


def queued_row(r: Request, now: datetime) -> Row:
    d = r.details
    requester, cn = visible(r.requester, 64), visible(d.common_name, 64)
    cells = (str(r.id), requester, cn, d.key_type, span(now - r.submitted_at))
    return Row(r.id, cells, search=f"{r.id} {requester} {cn} {d.key_type}".casefold())


def certificate_row(c: Certificate, now: datetime) -> Row:
    left = days_left(c.not_after, now)
    requester, cn = visible(c.requester, 64), visible(c.common_name, 64)
    status = c.status_at(now)
    label = "expiring" if status is CertStatus.VALID and c.not_after - now <= EXPIRY_WARNING else status.value
    style = "bold $warning" if label == "expiring" else ""
    cells = (str(c.id), requester, cn, c.short_serial, f"{day(c.not_after)} ({left}d)", label)
    return Row(c.id, cells, style=_rich(style), search=f"{c.id} {requester} {cn} {c.serial_hex} {label}".casefold())


def closed_certificate_row(c: Certificate, now: datetime) -> Row:
    requester, cn = visible(c.requester, 64), visible(c.common_name, 64)
    if c.revoked_at is not None:
        by = visible(c.revoked_by.describe() if c.revoked_by else None, 40)
        cells = (str(c.id), requester, cn, "revoked", day(c.revoked_at), by, c.revocation_reason.value)
    else:
        cells = (str(c.id), requester, cn, "expired", day(c.not_after), "-", "validity ended")
    return Row(c.id, cells, style="dim", search=" ".join(cells).casefold(), kind="certificate")


def closed_request_row(r: Request) -> Row:
    requester, cn = visible(r.requester, 64), visible(r.details.common_name, 64)
    by = visible(r.decided_by.describe() if r.decided_by else None, 40)
    cells = (str(r.id), requester, cn, r.status.value, day(r.decided_at), by, visible(r.reason, 120))
    return Row(r.id, cells, style="dim", search=" ".join(cells).casefold(), kind="request")


def _rich(style: str) -> str:
    # Row styles are rich styles (no CSS variables in the render path).
    return "bold yellow" if style else ""


def read_snapshot(ca: CertificateAuthority) -> Snapshot:
    """Everything the main screen shows. Runs in a worker thread."""
    token = ca.change_token()
    now = ca.now()
    info = ca.info()
    queued, closed = [], []
    for r in ca.requests():
        if r.status is RequestStatus.QUEUED:
            queued.append(queued_row(r, now))
        elif r.status in (RequestStatus.REJECTED, RequestStatus.EXPIRED):
            closed.append(closed_request_row(r))
    valid = []
    for c in ca.certificates():
        if c.revoked_at is None and now < c.not_after:
            valid.append(certificate_row(c, now))
        else:
            closed.append(closed_certificate_row(c, now))
    closed.sort(key=lambda row: row.key)
    return Snapshot(token=token, now=now, info=info, queued=queued, certificates=valid, closed=closed)


def active_certificate_of(ca: CertificateAuthority, requester: str) -> Certificate | None:
    """The requester's active certificate, if any (a warning before approving)."""
    wanted = requester.casefold()
    now = ca.now()
    for c in ca.certificates():
        if c.requester.casefold() == wanted and c.is_active(now):
            return c
    return None

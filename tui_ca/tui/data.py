"""What the main screen shows: the engine's overview, turned into rows on demand.

At 100,000 certificates, building every model and then every display row
takes seconds (measured: 3.7 s for the models, 8 s for the rows), while a
screen shows twenty rows. The engine's ``overview`` sorts the records into
the lists without building models (``LazyList``); this module turns a model
into a row only when the list draws it, and filters on the lists' cheap
search text. It reads no store files and knows no stored field names.
Nothing here touches Textual widgets.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tui_ca.engine import CAInfo, Certificate, Request
from tui_ca.engine.listing import LazyList, Overview
from tui_ca.engine.models import group_fingerprint  # noqa: F401  (re-exported for screens)
from tui_ca.tui.text import day, days_left, span, visible
from tui_ca.tui.widgets.record_list import Row

# The issue asks that certificates close to their end stand out.
EXPIRY_WARNING = timedelta(days=30)
# The word the expiring-soon filter looks for (no requester's text can hold it:
# the search text is escaped, and this one has a colon and a status name).
EXPIRING_WORD = "status:expiring"
# Enough valid certificates for the tallest terminal before the full read.
FIRST_SCREEN_ROWS = 200


def pause() -> None:
    """Parsing a shard holds the GIL; after each one, the UI thread gets a real turn."""
    time.sleep(0.001)


@dataclass(frozen=True)
class ListData:
    """One list's content: keys in display order and a way to build a row."""

    keys: list[int] = field(default_factory=list)
    """Certificate IDs, ascending."""
    fetch: Callable[[int], Row] = field(default=lambda key: _no_row(key))
    """Builds the row for a key (raises KeyError for others)."""
    search: Callable[[int], str] | None = None
    """A key's lower-cased filter text, cheaper than building its row."""


@dataclass(frozen=True)
class Snapshot:
    """One consistent read of a CA home, as the main screen's lists."""

    token: object
    """The store's change token when the read began."""
    now: datetime
    """The clock at the read."""
    info: CAInfo
    """The signing certificate and CRL freshness."""
    queued: ListData
    """The Queued CSRs list."""
    certificates: ListData
    """The Approved Certificates list (valid ones)."""
    closed: ListData
    """Revoked and expired certificates, rejected and expired requests."""
    partial: bool = False
    """A first screenful only (the whole queue, the first certificates); the full read follows."""
    overview: Overview | None = None
    """The engine read behind the lists (rows are re-made from it as the clock moves)."""


def _no_row(key: int) -> Row:
    raise KeyError(key)


def _actor(actor) -> str:
    return "-" if actor is None else visible(actor.describe(), 40)


def _words(*parts: object) -> str:
    return " ".join(visible(str(p), 400) for p in parts if p is not None).casefold()


def request_search(request: Request, now: datetime) -> str:
    """Every field of a request an admin may look for: shown or only stored."""
    d = request.details
    return _words(request.id, request.requester, d.subject, ", ".join(d.sans), d.key_type, d.key_size,
                  request.status.value, request.source, request.submitted_by.describe(),
                  request.submitted_at.isoformat(sep=" "), request.decided_at and request.decided_at.isoformat(sep=" "),
                  request.decided_by and request.decided_by.describe(), request.reason, d.spki_sha256,
                  request.renewal_of and f"renews {request.renewal_of}")  # fmt: skip


def certificate_search(cert: Certificate, now: datetime) -> str:
    """Every field of a certificate: serial, SANs, key, status words, who issued it, dates."""
    status = cert.status_at(now).value
    words = [status, f"status:{status}"]
    if status == "valid" and cert.not_after - now <= EXPIRY_WARNING:
        words += ["expiring", EXPIRING_WORD]
    return _words(cert.id, cert.requester, cert.subject, ", ".join(cert.sans), cert.key_type, cert.serial_hex,
                  *words, cert.not_before.isoformat(sep=" "), cert.not_after.isoformat(sep=" "),
                  cert.issued_at.isoformat(sep=" "), cert.issued_by.describe(),
                  cert.revoked_at and cert.revoked_at.isoformat(sep=" "), cert.revoked_by and cert.revoked_by.describe(),
                  cert.revocation_reason and cert.revocation_reason.value, cert.spki_sha256, cert.sha256)  # fmt: skip


def age_seconds(cell: str) -> int:
    """The Age column back into seconds, so it sorts as time, not text."""
    units = {"d": 86400, "h": 3600, "m": 60}
    return int(cell[:-1]) * units[cell[-1]] if cell[:-1].isdigit() and cell[-1:] in units else 0


def queued_row(request: Request, now: datetime) -> Row:
    requester, cn = visible(request.requester, 64), visible(request.details.common_name, 64)
    key_type = request.details.key_type
    cells = (str(request.id), requester, cn, key_type, span(now - request.submitted_at))
    return Row(request.id, cells, search=f"{request.id} {requester} {cn} {key_type}".casefold())


def certificate_row(cert: Certificate, now: datetime) -> Row:
    requester, cn = visible(cert.requester, 64), visible(cert.common_name, 64)
    expiring = cert.not_after - now <= EXPIRY_WARNING
    label = "expiring" if expiring else "valid"
    cells = (str(cert.id), requester, cn, cert.short_serial,
             f"{day(cert.not_after)} ({days_left(cert.not_after, now)}d)", label)  # fmt: skip
    search = f"{cert.id} {requester} {cn} {cert.serial_hex} {label}".casefold()
    return Row(cert.id, cells, style="bold yellow" if expiring else "", search=search)


def closed_certificate_row(cert: Certificate) -> Row:
    requester, cn = visible(cert.requester, 64), visible(cert.common_name, 64)
    if cert.revoked_at is not None:
        reason = cert.revocation_reason.value if cert.revocation_reason else "unspecified"
        cells = (str(cert.id), requester, cn, "revoked", day(cert.revoked_at), _actor(cert.revoked_by), reason)
    else:
        cells = (str(cert.id), requester, cn, "expired", day(cert.not_after), "-", "validity ended")
    return Row(cert.id, cells, style="dim", search=" ".join(cells).casefold() + f" {cert.serial_hex}",
               kind="certificate")  # fmt: skip


def closed_request_row(request: Request) -> Row:
    requester, cn = visible(request.requester, 64), visible(request.details.common_name, 64)
    cells = (str(request.id), requester, cn, request.status.value, day(request.decided_at),
             _actor(request.decided_by), visible(request.reason, 120))  # fmt: skip
    return Row(request.id, cells, style="dim", search=" ".join(cells).casefold(), kind="request")


def _lazy(items: LazyList, row: Callable[[object], Row], search: Callable[[object], str]) -> ListData:
    # The search text covers every stored field, so it is built from the
    # model, once per read and only when a search starts.
    return ListData(items.ids, lambda key: row(items.get(key)), lambda key: search(items.get(key)))


def _closed(requests: LazyList[Request], certificates: LazyList[Certificate], now: datetime) -> ListData:
    # A rejected or expired request never got a certificate, so the two lists
    # share no ID; merged, they read in ID order like the others.
    def fetch(key: int) -> Row:
        if key in requests:
            return closed_request_row(requests.get(key))
        return closed_certificate_row(certificates.get(key))

    def search(key: int) -> str:
        if key in requests:
            return request_search(requests.get(key), now)
        return certificate_search(certificates.get(key), now)

    return ListData(sorted(requests.ids + certificates.ids), fetch, search)


def snapshot_of(overview: Overview, now: datetime | None = None) -> Snapshot:
    """The main screen's lists over one engine overview (rows built when drawn), ages as of ``now``."""
    now = now or overview.now
    return Snapshot(
        token=overview.token, now=now, info=overview.info, partial=overview.partial, overview=overview,
        queued=_lazy(overview.queued, lambda r: queued_row(r, now), lambda r: request_search(r, now)),
        certificates=_lazy(overview.valid, lambda c: certificate_row(c, now), lambda c: certificate_search(c, now)),
        closed=_closed(overview.closed_requests, overview.closed_certificates, now),
    )  # fmt: skip


def aged(snapshot: Snapshot, now: datetime) -> Snapshot:
    """The same read with ages and days left as of ``now`` (the clock moves while the UI is idle)."""
    return snapshot if snapshot.overview is None else snapshot_of(snapshot.overview, now)


def read_first_screen(ca, rows: int = FIRST_SCREEN_ROWS) -> Snapshot:
    """The header, the whole queue and at least ``rows`` valid certificates, without reading every shard."""
    return snapshot_of(ca.overview(first_screen_rows=rows, pause=pause))


def read_snapshot(ca) -> Snapshot:
    """Everything the main screen shows. Runs in a worker thread."""
    return snapshot_of(ca.overview(pause=pause))


def count_expiring(snapshot: Snapshot) -> int:
    """Valid certificates that end within ``EXPIRY_WARNING`` (one model at a time; runs in a worker)."""
    if snapshot.overview is None:
        return 0
    valid, limit = snapshot.overview.valid, snapshot.now + EXPIRY_WARNING
    return sum(1 for key in valid.ids if valid.get(key).not_after <= limit)


def covers_everything(first: Snapshot, rows: int = FIRST_SCREEN_ROWS) -> bool:
    """Whether a first-screen read already saw every certificate (a small CA).

    The early read stops once it holds ``rows`` valid certificates; with fewer,
    it read every certificate shard, so the full read that follows comes from
    memory and a second paint would only cost time.
    """
    return len(first.certificates.keys) < rows

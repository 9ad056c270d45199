"""What the main screen shows: the engine's compact listing, turned into rows on demand.

At 100,000 certificates, keeping every stored document (or model) cost ~450
MiB, while a screen shows twenty rows. The engine's ``listing`` keeps only the
shown fields, packed (engine/columns.py); this module turns an entry into a
row only when the list draws it. A search looks at every stored field, so it
streams the store again through the engine (``matching_ids``), in the list's
worker, never on the UI thread. It reads no store files and knows no stored
field names. Nothing here touches Textual widgets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tui_ca.engine import CAInfo
from tui_ca.engine.listing import CertificateEntries, CertificateEntry, Listing, RequestEntries, RequestEntry
from tui_ca.engine.models import group_fingerprint  # noqa: F401  (re-exported for screens)
from tui_ca.tui.text import day, days_left, span, visible
from tui_ca.tui.widgets.record_list import Row, SearchStopped

# The issue asks that certificates close to their end stand out.
EXPIRY_WARNING = timedelta(days=30)
# The word the expiring-soon filter looks for (no requester's text can hold it:
# the search text is escaped, and this one has a colon and a status name).
EXPIRING_WORD = "status:expiring"
# Enough valid certificates for the tallest terminal before the full read.
FIRST_SCREEN_ROWS = 200

Find = Callable[..., set[int]]


# A worker lets the UI thread in once it has used this much CPU since its last turn.
PAUSE_EVERY = 0.002
_last_pause = threading.local()


def pause() -> None:
    """Parsing a shard holds the GIL; once a few ms of that have passed, the UI thread gets a real turn.

    Called after every shard read. Not a sleep each time: a store has hundreds of
    nearly empty shards (the queue index at 100,000 certificates: 392 files, one
    request), and a 1 ms sleep after each (1–3 ms on a busy machine) made
    the first screen wait half a second for nothing.
    """
    # This thread's CPU time: on a busy machine, time spent waiting for a core is not work done.
    now = time.thread_time()
    last = getattr(_last_pause, "at", None)
    if last is None or now < last:
        _last_pause.at = now
    elif now - last >= PAUSE_EVERY:
        time.sleep(0.001)
        _last_pause.at = time.thread_time()


@dataclass(frozen=True)
class ListData:
    """One list's content: keys in display order and a way to build a row."""

    keys: list[int] = field(default_factory=list)
    """Certificate IDs, ascending."""
    fetch: Callable[[int], Row] = field(default=lambda key: _no_row(key))
    """Builds the row for a key (raises KeyError for others)."""
    find: Callable[..., set[int]] | None = None
    """``find(text, stop=...)``: the keys whose stored fields hold a lower-cased text.

    Slow (reads the store): call it in a worker. It raises ``SearchStopped`` once ``stop()`` is true.
    """


@dataclass(frozen=True)
class Snapshot:
    """One read of a CA home, as the main screen's lists."""

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
    listing: Listing | None = None
    """The engine read behind the lists (rows are re-made from it as the clock moves)."""
    multi_approval: bool = False
    """The approval policy asks more than one approval of some request: the queue shows how many were given."""
    find: Find | None = None
    """The engine's search over every stored field (slow: for workers)."""


def _no_row(key: int) -> Row:
    raise KeyError(key)


def age_seconds(cell: str) -> int:
    """The Age column back into seconds, so it sorts as time, not text."""
    units = {"d": 86400, "h": 3600, "m": 60}
    return int(cell[:-1]) * units[cell[-1]] if cell[:-1].isdigit() and cell[-1:] in units else 0


def approvals_cell(entry: RequestEntry) -> str:
    """``1 of 2 alice``: approvals given, approvals needed, who gave them."""
    names = " ".join(visible(name, 32) for name in entry.approvals)
    return f"{len(entry.approvals)} of {entry.needed}" + (f" {names}" if names else "")


def queued_row(entry: RequestEntry, now: datetime, approvals: bool = False) -> Row:
    requester, cn = visible(entry.requester, 64), visible(entry.common_name, 64)
    key_type = entry.key_type or "-"
    age = span(now - entry.submitted_at) if entry.submitted_at is not None else "-"
    cells = (str(entry.id), requester, cn, key_type, *((approvals_cell(entry),) if approvals else ()), age)
    return Row(entry.id, cells, search=f"{entry.id} {requester} {cn} {key_type}".casefold())


def certificate_row(entry: CertificateEntry, now: datetime) -> Row:
    requester, cn = visible(entry.requester, 64), visible(entry.common_name, 64)
    not_after = entry.not_after or now
    expiring = not_after - now <= EXPIRY_WARNING
    label = "expiring" if expiring else "valid"
    cells = (str(entry.id), requester, cn, visible(entry.serial_prefix, 8),
             f"{day(not_after)} ({days_left(not_after, now)}d)", label)  # fmt: skip
    search = f"{entry.id} {requester} {cn} {entry.serial_prefix} {label}".casefold()
    return Row(entry.id, cells, style="bold yellow" if expiring else "", search=search)


def closed_certificate_row(entry: CertificateEntry) -> Row:
    requester, cn = visible(entry.requester, 64), visible(entry.common_name, 64)
    if entry.revoked_at is not None:
        reason = visible(entry.reason, 40) if entry.reason else "unspecified"
        by = "-" if entry.revoked_by is None else visible(entry.revoked_by, 40)
        cells = (str(entry.id), requester, cn, "revoked", day(entry.revoked_at), by, reason)
    else:
        cells = (str(entry.id), requester, cn, "expired", day(entry.not_after), "-", "validity ended")
    return Row(entry.id, cells, style="dim", search=" ".join(cells).casefold(), kind="certificate")


def closed_request_row(entry: RequestEntry) -> Row:
    requester, cn = visible(entry.requester, 64), visible(entry.common_name, 64)
    by = "-" if entry.decided_by is None else visible(entry.decided_by, 40)
    cells = (str(entry.id), requester, cn, visible(entry.status, 20), day(entry.decided_at), by,
             visible(entry.reason, 120))  # fmt: skip
    return Row(entry.id, cells, style="dim", search=" ".join(cells).casefold(), kind="request")


def _finder(find: Find | None, keys: list[int], **where: bool) -> Callable[..., set[int]] | None:
    if find is None:
        return None

    def run(text: str, stop: Callable[[], bool] = lambda: False) -> set[int]:
        # The set of keys is made here, in the worker, not held by every snapshot.
        return find(text, stop, **where).intersection(keys)

    return run


def _closed(requests: RequestEntries, certificates: CertificateEntries, find: Find | None) -> ListData:
    # A rejected or expired request never got a certificate, so the two lists
    # share no ID; merged, they read in ID order like the others.
    def fetch(key: int) -> Row:
        if key in requests:
            return closed_request_row(requests.get(key))
        return closed_certificate_row(certificates.get(key))

    keys = sorted(requests.ids + certificates.ids)
    return ListData(keys, fetch, _finder(find, keys))


def _valid_finder(valid: CertificateEntries, find: Find | None, now: datetime) -> Callable[..., set[int]] | None:
    plain = _finder(find, valid.ids, requests=False)
    if plain is None:
        return None

    def run(text: str, stop: Callable[[], bool] = lambda: False) -> set[int]:
        # The expiring filter needs only notAfter, which the listing holds: no store read.
        if text == EXPIRING_WORD:
            return set(valid.ending_by(now + EXPIRY_WARNING))
        return plain(text, stop)

    return run


def snapshot_of(listing: Listing, now: datetime | None = None, find: Find | None = None) -> Snapshot:
    """The main screen's lists over one engine listing (rows built when drawn), ages as of ``now``.

    ``find(text, requests=, certificates=, queued_only=)``: the engine's search over every stored field.
    """
    now = now or listing.now
    approvals = listing.multi_approval
    return Snapshot(
        token=listing.token, now=now, info=listing.info, partial=listing.partial, listing=listing,
        multi_approval=approvals, find=find,
        queued=ListData(listing.queued.ids, lambda key: queued_row(listing.queued.get(key), now, approvals),
                        _finder(find, listing.queued.ids, certificates=False, queued_only=True)),
        certificates=ListData(listing.valid.ids, lambda key: certificate_row(listing.valid.get(key), now),
                              _valid_finder(listing.valid, find, now)),
        closed=_closed(listing.closed_requests, listing.closed_certificates, find),
    )  # fmt: skip


def _find_in(ca) -> Find:
    def find(text: str, stop: Callable[[], bool], **where: bool) -> set[int]:
        def paused() -> None:
            pause()
            if stop():
                raise SearchStopped(text)

        return ca.matching_ids(text, EXPIRY_WARNING, pause=paused, **where)

    return find


def aged(snapshot: Snapshot, now: datetime) -> Snapshot:
    """The same read with ages and days left as of ``now`` (the clock moves while the UI is idle)."""
    return snapshot if snapshot.listing is None else snapshot_of(snapshot.listing, now, snapshot.find)


def read_first_screen(ca, rows: int = FIRST_SCREEN_ROWS) -> Snapshot:
    """The header, the whole queue and at least ``rows`` valid certificates, without reading every shard."""
    return snapshot_of(ca.listing(first_screen_rows=rows, pause=pause), find=_find_in(ca))


def read_snapshot(ca) -> Snapshot:
    """Everything the main screen shows. Runs in a worker thread."""
    return snapshot_of(ca.listing(pause=pause), find=_find_in(ca))


def count_expiring(snapshot: Snapshot) -> int:
    """Valid certificates that end within ``EXPIRY_WARNING`` (from the listing's notAfter column)."""
    if snapshot.listing is None:
        return 0
    return len(snapshot.listing.valid.ending_by(snapshot.now + EXPIRY_WARNING))


def covers_everything(first: Snapshot, rows: int = FIRST_SCREEN_ROWS) -> bool:
    """Whether a first-screen read already saw every certificate (a small CA).

    The early read stops once it holds ``rows`` valid certificates; with fewer,
    it read every certificate shard, so the full read that follows would only
    add the closed lists; the app paints once, after it.
    """
    return len(first.certificates.keys) < rows

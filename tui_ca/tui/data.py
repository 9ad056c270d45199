"""What the main screen shows, read from the store in one go (in a worker).

At 100,000 certificates, turning every stored document into engine models and
then into display rows takes seconds (measured: 3.7 s for the models, 8 s for
the rows). The main screen needs neither up front: it needs each list's keys
in order, and cells for the twenty rows on screen. So this module reads the
raw documents (re-reading only shards whose file changed), sorts them into
the three lists by looking at two or three fields, and builds a row only when
the list draws it. Nothing here touches Textual widgets.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from tui_ca.engine import CAInfo, CertificateAuthority
from tui_ca.engine import repository as repo
from tui_ca.engine.models import group_fingerprint  # noqa: F401  (re-exported for screens)
from tui_ca.tui.text import day, days_left, span, visible
from tui_ca.tui.widgets.record_list import Row

# The issue asks that certificates close to their end stand out.
EXPIRY_WARNING = timedelta(days=30)
# Enough valid certificates for the tallest terminal before the full read.
FIRST_SCREEN_ROWS = 200
# Up to this many shard files (~1,000 records) one full read is as quick as a
# first screen, and a second paint would only cost time.
SMALL_CA_SHARDS = 8


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
    """One consistent read of a CA home."""

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


class ShardCache:
    """Raw documents per shard file, re-read only when that file changed."""

    def __init__(self) -> None:
        self._memo: dict[object, tuple[object, list[dict]]] = {}
        self._lock = threading.Lock()

    def shards(self, ca: CertificateAuthority, collection: str) -> list[str]:
        """Shard names in ID order."""
        return sorted(ca.store.view().shards(collection))

    def shard_docs(self, ca: CertificateAuthority, collection: str, shard: str) -> list[dict]:
        store = ca.store
        path = store.shard_path(collection, shard)
        with self._lock:
            signature = store.signature(path)
            memo = self._memo.get(path)
            if memo is not None and memo[0] == signature:
                return memo[1]
            data = store.load(path) or {}
            memo = (signature, list(data.get(collection, {}).values()))
            self._memo[path] = memo
        # Parsing holds the GIL; after each parsed shard, give the UI thread
        # a real turn so scrolling stays smooth during a big first read.
        time.sleep(0.001)
        return memo[1]

    def docs(self, ca: CertificateAuthority, collection: str) -> list[dict]:
        found: list[dict] = []
        for shard in self.shards(ca, collection):
            found.extend(self.shard_docs(ca, collection, shard))
        return found


def _no_row(key: int) -> Row:
    raise KeyError(key)


def _parse(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


def _actor(doc: dict | None) -> str:
    if not doc:
        return "-"
    return visible(f"{doc['u']} from {doc['a']}" if doc.get("a") else doc["u"], 40)


def _cert_search(doc: dict) -> str:
    # Same words as certificate_row's search text, minus the status label.
    return f"{doc['id']} {doc['requester']} {doc.get('cn')} {doc['serial']}".casefold()


def queued_row(doc: dict, now: datetime) -> Row:
    requester, cn = visible(doc["requester"], 64), visible(doc.get("fields", {}).get("common_name"), 64)
    age = span(now - _parse(doc["at"]))
    cells = (str(doc["id"]), requester, cn, doc["key_type"], age)
    return Row(doc["id"], cells, search=f"{doc['id']} {requester} {cn} {doc['key_type']}".casefold())


def certificate_row(doc: dict, now: datetime) -> Row:
    not_after = _parse(doc["na"])
    requester, cn = visible(doc["requester"], 64), visible(doc.get("cn"), 64)
    expiring = not_after - now <= EXPIRY_WARNING
    label = "expiring" if expiring else "valid"
    cells = (str(doc["id"]), requester, cn, doc["serial"][:8], f"{day(not_after)} ({days_left(not_after, now)}d)", label)
    search = f"{doc['id']} {requester} {cn} {doc['serial']} {label}".casefold()
    return Row(doc["id"], cells, style="bold yellow" if expiring else "", search=search)


def closed_certificate_row(doc: dict, now: datetime) -> Row:
    requester, cn = visible(doc["requester"], 64), visible(doc.get("cn"), 64)
    if doc.get("revoked_at") is not None:
        cells = (str(doc["id"]), requester, cn, "revoked", day(_parse(doc["revoked_at"])), _actor(doc.get("revoked_by")),
                 doc.get("reason") or "unspecified")  # fmt: skip
    else:
        cells = (str(doc["id"]), requester, cn, "expired", day(_parse(doc["na"])), "-", "validity ended")
    return Row(doc["id"], cells, style="dim", search=" ".join(cells).casefold() + f" {doc['serial']}", kind="certificate")


def closed_request_row(doc: dict) -> Row:
    requester, cn = visible(doc["requester"], 64), visible(doc.get("fields", {}).get("common_name"), 64)
    cells = (str(doc["id"]), requester, cn, doc["status"], day(_parse(doc.get("decided_at"))),
             _actor(doc.get("decided_by")), visible(doc.get("reason"), 120))  # fmt: skip
    return Row(doc["id"], cells, style="dim", search=" ".join(cells).casefold(), kind="request")


def _snapshot(token, now, info, queued: dict, valid: dict, closed: dict, partial: bool) -> Snapshot:
    def closed_row(key: int) -> Row:
        kind, doc = closed[key]
        return closed_request_row(doc) if kind == "request" else closed_certificate_row(doc, now)

    return Snapshot(
        token=token, now=now, info=info, partial=partial,
        queued=ListData(sorted(queued), lambda key: queued_row(queued[key], now)),
        certificates=ListData(sorted(valid), lambda key: certificate_row(valid[key], now),
                              lambda key: _cert_search(valid[key])),
        closed=ListData(sorted(closed), closed_row),
    )  # fmt: skip


def read_first_screen(ca: CertificateAuthority, cache: ShardCache, rows: int = FIRST_SCREEN_ROWS) -> Snapshot:
    """The header, the whole queue and the first certificates, without reading every shard.

    Queued requests are the newest, so request shards are read newest first
    until the store's count of queued requests is reached; certificate shards
    oldest first until a screenful of valid ones is found.
    """
    token = ca.change_token()
    now = ca.now()
    info = ca.info()
    now_text = now.isoformat()
    want = repo.get_meta(ca.store.view()).get("queued", 0)
    queued: dict[int, dict] = {}
    for shard in reversed(cache.shards(ca, "requests")):
        if len(queued) >= want:
            break
        queued.update((d["id"], d) for d in cache.shard_docs(ca, "requests", shard) if d["status"] == "queued")
    valid: dict[int, dict] = {}
    for shard in cache.shards(ca, "certs"):
        if len(valid) >= rows:
            break
        valid.update((d["id"], d) for d in cache.shard_docs(ca, "certs", shard)
                     if d.get("revoked_at") is None and d["na"] > now_text)  # fmt: skip
    return _snapshot(token, now, info, queued, valid, {}, partial=True)


def worth_a_first_screen(ca: CertificateAuthority, cache: ShardCache) -> bool:
    """Whether the full read is big enough to show a first screen before it (a few shards are not)."""
    return len(cache.shards(ca, "requests")) + len(cache.shards(ca, "certs")) > SMALL_CA_SHARDS


def read_snapshot(ca: CertificateAuthority, cache: ShardCache) -> Snapshot:
    """Everything the main screen shows. Runs in a worker thread."""
    token = ca.change_token()
    now = ca.now()
    info = ca.info()
    # Stored times are UTC ISO strings of one format, so they compare as text.
    now_text = now.isoformat()
    queued: dict[int, dict] = {}
    closed: dict[int, tuple[str, dict]] = {}
    valid: dict[int, dict] = {}
    for doc in cache.docs(ca, "requests"):
        status = doc["status"]
        if status == "queued":
            queued[doc["id"]] = doc
        elif status in ("rejected", "expired"):
            closed[doc["id"]] = ("request", doc)
    for doc in cache.docs(ca, "certs"):
        if doc.get("revoked_at") is None and doc["na"] > now_text:
            valid[doc["id"]] = doc
        else:
            closed[doc["id"]] = ("certificate", doc)
    return _snapshot(token, now, info, queued, valid, closed, partial=False)


def active_certificate_id(ca: CertificateAuthority, cache: ShardCache, requester: str) -> int | None:
    """The requester's active certificate, if any (a warning before approving)."""
    wanted = requester.casefold()
    now_text = ca.now().isoformat()
    for doc in cache.docs(ca, "certs"):
        if doc["requester"].casefold() == wanted and doc.get("revoked_at") is None and doc["na"] > now_text:
            return doc["id"]
    return None

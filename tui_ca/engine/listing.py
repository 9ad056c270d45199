"""The lists a face shows, fast at 100,000 records.

Turning every stored document into a model takes seconds at 100,000
certificates (measured: 3.7 s), while a screen shows twenty rows. An
:class:`Overview` sorts the records into the lists by looking at two or three
stored fields and builds a model only when one is asked for (the store keeps
parsed documents and re-reads only what changed).
"""

from __future__ import annotations

import bisect
from array import array
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, NamedTuple, TypeVar

from tui_ca.engine import records
from tui_ca.engine.columns import Interned, TextColumn, TimeColumn
from tui_ca.engine.models import CAInfo, Certificate, Request
from tui_ca.engine.store import StoreView

T = TypeVar("T")


class LazyList(Generic[T]):
    """Certificate IDs in ascending order; a model is built when asked for."""

    def __init__(self, docs: dict[int, dict], build: Callable[[dict], T], search: Callable[[dict], str]) -> None:
        self._docs = docs
        self._build = build
        self._search = search
        self.ids: list[int] = sorted(docs)
        """The IDs, ascending."""

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self._docs

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def get(self, item_id: int) -> T:
        """The model for one ID (KeyError if it is not in this list)."""
        return self._build(self._docs[item_id])

    def search_text(self, item_id: int) -> str:
        """Lower-cased words a filter matches: ID, requester, CN (and serial for certificates)."""
        return self._search(self._docs[item_id])


def _request_search(doc: dict) -> str:
    return f"{doc['id']} {doc['requester']} {doc.get('fields', {}).get('common_name') or ''}".casefold()


def _certificate_search(doc: dict) -> str:
    return f"{doc['id']} {doc['requester']} {doc.get('cn') or ''} {doc['serial']}".casefold()


def request_list(docs: dict[int, dict]) -> LazyList[Request]:
    return LazyList(docs, records.request_model, _request_search)


def certificate_list(docs: dict[int, dict]) -> LazyList[Certificate]:
    return LazyList(docs, records.certificate_model, _certificate_search)


@dataclass(frozen=True)
class Overview:
    """One read of a CA home: the header and every list of the main screen."""

    token: object
    """The store's change token when the read began (compare with ``change_token()``)."""
    now: datetime
    """The clock at the read; statuses and ages are relative to it."""
    info: CAInfo
    """The signing certificate and CRL freshness."""
    queued: LazyList[Request]
    """Requests waiting for a decision."""
    valid: LazyList[Certificate]
    """Certificates neither revoked nor expired."""
    closed_requests: LazyList[Request]
    """Rejected and expired requests."""
    closed_certificates: LazyList[Certificate]
    """Revoked and expired certificates."""
    partial: bool = False
    """Only the whole queue and the first valid certificates; a full read should follow."""


def read_overview(view: StoreView, token: object, now: datetime, info: CAInfo,
                  first_screen_rows: int | None = None, pause: Callable[[], None] | None = None) -> Overview:  # fmt: skip
    """Sort every record into the lists; with ``first_screen_rows``, stop early.

    The early read takes the whole queue (queued requests are the newest, so
    requests are read newest first until the store's queued count is reached)
    and at least the first ``first_screen_rows`` valid certificates; the
    closed lists are left for the full read. ``pause`` is passed to the store:
    parsing holds the GIL, so a UI passes a short sleep to give its own thread
    a turn during a big first read.
    """
    # Stored times are UTC ISO strings of one format, so they compare as text.
    now_text = now.isoformat()
    queued: dict[int, dict] = {}
    closed_requests: dict[int, dict] = {}
    valid: dict[int, dict] = {}
    closed_certificates: dict[int, dict] = {}
    partial = first_screen_rows is not None
    want_queued = view.meta().get("queued", 0)
    for doc in view.iter_requests(newest_first=partial, pause=pause):
        status = doc["status"]
        if status == "queued":
            queued[doc["id"]] = doc
            if partial and len(queued) >= want_queued:
                break
        elif status in ("rejected", "expired") and not partial:
            closed_requests[doc["id"]] = doc
    for doc in view.iter_certificates(pause=pause):
        if doc.get("revoked_at") is None and doc["na"] > now_text:
            valid[doc["id"]] = doc
            if partial and len(valid) >= first_screen_rows:  # type: ignore[operator]
                break
        elif not partial:
            closed_certificates[doc["id"]] = doc
    return Overview(
        token=token, now=now, info=info, partial=partial,
        queued=request_list(queued), valid=certificate_list(valid),
        closed_requests=request_list(closed_requests), closed_certificates=certificate_list(closed_certificates),
    )  # fmt: skip


# ----------------------------------------------------------------- compact lists
#
# The lazy overview above keeps every stored document (and the store keeps
# everything it parsed): ~450 MiB at 100,000 certificates. A listing keeps only
# the fields a list shows, packed in columns (columns.py), read through a view
# that keeps nothing it parsed, so its size is a few dozen bytes a record.


class RequestEntry(NamedTuple):
    """What a list shows of a request."""

    id: int
    requester: str
    common_name: str | None
    key_type: str | None
    status: str | None
    submitted_at: datetime | None
    decided_at: datetime | None
    decided_by: str | None
    """The deciding admin as ``Actor.describe`` gives it."""
    reason: str | None
    approvals: tuple[str, ...]
    """Users who approved it so far (a K-of-N policy)."""
    needed: int
    """Approvals it needs under the policy in force (1 when there is none)."""


class CertificateEntry(NamedTuple):
    """What a list shows of a certificate."""

    id: int
    requester: str
    common_name: str | None
    serial_prefix: str
    """The first 8 hex digits of the serial."""
    not_after: datetime | None
    revoked_at: datetime | None
    revoked_by: str | None
    reason: str | None


E = TypeVar("E")


class EntryList(Generic[E]):
    """Entries by ascending Certificate ID, stored column by column."""

    def __init__(self) -> None:
        self.ids: list[int] = []
        """The IDs, ascending."""

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[int]:
        return iter(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return self._index(item_id) is not None

    def _index(self, item_id: object) -> int | None:
        if not isinstance(item_id, int):
            return None
        index = bisect.bisect_left(self.ids, item_id)
        return index if index < len(self.ids) and self.ids[index] == item_id else None

    def get(self, item_id: int) -> E:
        """The entry for one ID (KeyError if it is not in this list)."""
        index = self._index(item_id)
        if index is None:
            raise KeyError(item_id)
        return self._entry(index)

    def _entry(self, index: int) -> E:
        raise NotImplementedError

    def _add_id(self, item_id: int) -> None:
        if self.ids and item_id <= self.ids[-1]:
            raise ValueError(f"records out of ID order: {item_id} after {self.ids[-1]}")
        self.ids.append(item_id)


def _describe_actor(doc: dict | None) -> str | None:
    if doc is None:
        return None
    return f"{doc['u']} from {doc['a']}" if doc.get("a") else doc["u"]


class RequestEntries(EntryList[RequestEntry]):
    def __init__(self) -> None:
        super().__init__()
        self._requester, self._cn, self._reason = TextColumn(), TextColumn(), TextColumn()
        self._key_type, self._status, self._decided_by = Interned(), Interned(), Interned()
        self._at, self._decided_at = TimeColumn(), TimeColumn()
        self._approvals: list[tuple[str, ...]] = []
        self._needed = array("B")

    def add(self, doc: dict, needed: int = 1) -> None:
        self._add_id(doc["id"])
        requester = doc["requester"]
        self._requester.append(requester)
        self._cn.append((doc.get("fields") or {}).get("common_name"), same_as=requester)
        self._key_type.append(doc.get("key_type"))
        self._status.append(doc.get("status"))
        self._at.append(doc.get("at"))
        self._decided_at.append(doc.get("decided_at"))
        self._decided_by.append(_describe_actor(doc.get("decided_by")))
        self._reason.append(doc.get("reason"))
        given = tuple(a["u"] for a in doc.get("approvals") or ())
        self._approvals.append(given or ())
        self._needed.append(min(max(needed, 0), 255))

    def _entry(self, index: int) -> RequestEntry:
        requester = self._requester.get(index) or ""
        return RequestEntry(
            self.ids[index], requester, self._cn.get(index, requester), self._key_type.get(index),
            self._status.get(index), self._at.get(index), self._decided_at.get(index), self._decided_by.get(index),
            self._reason.get(index), self._approvals[index], self._needed[index],
        )  # fmt: skip


class CertificateEntries(EntryList[CertificateEntry]):
    def __init__(self) -> None:
        super().__init__()
        self._requester, self._cn, self._serial, self._reason = TextColumn(), TextColumn(), TextColumn(), TextColumn()
        self._revoked_by = Interned()
        self._not_after, self._revoked_at = TimeColumn(), TimeColumn()

    def add(self, doc: dict) -> None:
        self._add_id(doc["id"])
        requester = doc["requester"]
        self._requester.append(requester)
        self._cn.append(doc.get("cn"), same_as=requester)
        self._serial.append(str(doc["serial"])[:8])
        self._not_after.append(doc.get("na"))
        self._revoked_at.append(doc.get("revoked_at"))
        self._revoked_by.append(_describe_actor(doc.get("revoked_by")))
        self._reason.append(doc.get("reason"))

    def _entry(self, index: int) -> CertificateEntry:
        requester = self._requester.get(index) or ""
        return CertificateEntry(
            self.ids[index], requester, self._cn.get(index, requester), self._serial.get(index) or "",
            self._not_after.get(index), self._revoked_at.get(index), self._revoked_by.get(index),
            self._reason.get(index),
        )  # fmt: skip

    def ending_by(self, moment: datetime) -> list[int]:
        """IDs whose notAfter is at or before ``moment`` (no entry built)."""
        limit = int(moment.timestamp())
        return [self.ids[i] for i in range(len(self.ids)) if self._not_after.seconds(i) <= limit]


@dataclass(frozen=True)
class Listing:
    """One read of a CA home for the main screen's lists, a few dozen bytes a record."""

    token: object
    """The store's change token when the read began (a commit during the read moves it on)."""
    now: datetime
    """The clock at the read; statuses are relative to it."""
    info: CAInfo
    """The signing certificate and CRL freshness."""
    queued: RequestEntries
    """Requests waiting for a decision."""
    valid: CertificateEntries
    """Certificates neither revoked nor expired."""
    closed_requests: RequestEntries
    """Rejected and expired requests."""
    closed_certificates: CertificateEntries
    """Revoked and expired certificates."""
    partial: bool = False
    """Only the whole queue and the first valid certificates; a full read should follow."""
    multi_approval: bool = False
    """The approval policy in force asks more than one approval of some request."""


def read_listing(view: StoreView, token: object, now: datetime, info: CAInfo, *,
                 needed: Callable[[dict], int] | None = None, multi_approval: bool = False,
                 first_screen_rows: int | None = None, pause: Callable[[], None] | None = None) -> Listing:  # fmt: skip
    """Sort every record into the lists, keeping only what they show; with ``first_screen_rows``, stop early.

    ``view`` should keep nothing it parsed (``RecordStore.view(keep=False)``):
    only the documents of one batch the store reads are alive at a time. The early read takes the queue and
    the first ``first_screen_rows`` valid certificates; the closed lists wait
    for the full read. ``needed`` gives a queued request's required approvals.
    """
    now_text = now.isoformat()
    listing = Listing(token=token, now=now, info=info, queued=RequestEntries(), valid=CertificateEntries(),
                      closed_requests=RequestEntries(), closed_certificates=CertificateEntries(),
                      partial=first_screen_rows is not None, multi_approval=multi_approval)  # fmt: skip
    for doc in view.iter_requests(status="queued", pause=pause):
        listing.queued.add(doc, needed(doc) if needed is not None else 1)
    if first_screen_rows is None:
        for doc in view.iter_requests(pause=pause):
            if doc["status"] in ("rejected", "expired"):
                listing.closed_requests.add(doc)
    for doc in view.iter_certificates(pause=pause):
        if doc.get("revoked_at") is None and doc["na"] > now_text:
            listing.valid.add(doc)
            if first_screen_rows is not None and len(listing.valid) >= first_screen_rows:
                break
        elif first_screen_rows is None:
            listing.closed_certificates.add(doc)
    return listing


def _iso(text: object) -> str:
    return text.replace("T", " ", 1) if isinstance(text, str) else ""


def _actor_words(doc: object) -> str:
    return _describe_actor(doc) or "" if isinstance(doc, dict) else ""


def request_words(doc: dict) -> str:
    """Every field of a stored request an admin may search for, lower-cased."""
    fields = doc.get("fields") or {}
    parts = [doc.get("id"), doc.get("requester"), doc.get("subject"), fields.get("common_name"),
             ", ".join(doc.get("sans") or ()), doc.get("key_type"), doc.get("key_size"), doc.get("status"),
             doc.get("source"), _actor_words(doc.get("by")), _iso(doc.get("at")), _iso(doc.get("decided_at")),
             _actor_words(doc.get("decided_by")), doc.get("reason"), doc.get("spki"),
             doc.get("renewal_of") and f"renews {doc['renewal_of']}",
             " ".join(a.get("u", "") for a in doc.get("approvals") or ())]  # fmt: skip
    return " ".join(str(p) for p in parts if p).casefold()


def certificate_words(doc: dict, now_text: str, expiring_text: str) -> str:
    """Every field of a stored certificate, with its status words (``revoked``, ``expiring``...), lower-cased.

    ``expiring_text``: the ISO time before which a valid certificate counts as ending soon.
    """
    status = records.certificate_status(doc, now_text)
    words = [status, f"status:{status}"]
    if status == "valid" and doc["na"] <= expiring_text:
        words += ["expiring", "status:expiring"]
    parts = [doc.get("id"), doc.get("requester"), doc.get("subject"), ", ".join(doc.get("sans") or ()),
             doc.get("key_type"), doc.get("serial"), *words, _iso(doc.get("nb")), _iso(doc.get("na")),
             _iso(doc.get("at")), _actor_words(doc.get("by")), _iso(doc.get("revoked_at")),
             _actor_words(doc.get("revoked_by")), doc.get("reason"), doc.get("spki"), doc.get("sha256")]  # fmt: skip
    return " ".join(str(p) for p in parts if p).casefold()


def matching_ids(view: StoreView, query: str, now: datetime, expiring_within: timedelta, *,
                 requests: bool = True, certificates: bool = True, queued_only: bool = False,
                 pause: Callable[[], None] | None = None) -> set[int]:  # fmt: skip
    """The IDs of records any of whose fields holds ``query`` (case-insensitive), streamed."""
    wanted = query.casefold()
    found: set[int] = set()
    if requests:
        for doc in view.iter_requests(status="queued" if queued_only else None, pause=pause):
            if wanted in request_words(doc):
                found.add(doc["id"])
    if certificates:
        now_text, expiring_text = now.isoformat(), (now + expiring_within).isoformat()
        for doc in view.iter_certificates(pause=pause):
            if wanted in certificate_words(doc, now_text, expiring_text):
                found.add(doc["id"])
    return found

"""The lists a face shows, fast at 100,000 records.

Turning every stored document into a model takes seconds at 100,000
certificates (measured: 3.7 s), while a screen shows twenty rows. An
:class:`Overview` sorts the records into the lists by looking at two or three
stored fields and builds a model only when one is asked for (the store keeps
parsed documents and re-reads only what changed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Generic, TypeVar

from tui_ca.engine import records
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

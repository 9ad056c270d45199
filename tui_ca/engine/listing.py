"""The lists a face shows, fast at 100,000 records.

Turning every stored document into a model takes seconds at 100,000
certificates (measured: 3.7 s), while a screen shows twenty rows. An
:class:`Overview` sorts the records into the lists by looking at two or three
stored fields and builds a model only when one is asked for. Raw documents
are kept per shard file and re-read only when that file changed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Generic, TypeVar

from tui_ca.engine import records
from tui_ca.engine import repository as repo
from tui_ca.engine.models import CAInfo, Certificate, Request
from tui_ca.engine.store import Store

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


class ShardDocs:
    """Raw documents per shard file, parsed again only when the file changed."""

    def __init__(self, store: Store, pause: Callable[[], None] | None = None) -> None:
        self._store = store
        self.pause = pause
        """Called after each shard parsed: parsing holds the GIL, so a UI passes
        a short sleep to give its own thread a turn during a big first read."""
        self._memo: dict[Path, tuple[object, list[dict]]] = {}
        self._lock = threading.Lock()

    def shards(self, collection: str) -> list[str]:
        return sorted(self._store.shard_names(collection))

    def shard(self, collection: str, shard: str) -> list[dict]:
        path = self._store.shard_path(collection, shard)
        with self._lock:
            signature = self._store.signature(path)
            memo = self._memo.get(path)
            if memo is not None and memo[0] == signature:
                return memo[1]
            data = self._store.load(path) or {}
            memo = (signature, list(data.get(collection, {}).values()))
            self._memo[path] = memo
        if self.pause is not None:
            self.pause()
        return memo[1]

    def all(self, collection: str) -> Iterator[dict]:
        for shard in self.shards(collection):
            yield from self.shard(collection, shard)


def read_overview(store: Store, docs: ShardDocs, token: object, now: datetime, info: CAInfo,
                  first_screen_rows: int | None = None) -> Overview:  # fmt: skip
    """Sort every record into the lists; with ``first_screen_rows``, stop early.

    The early read takes the whole queue (queued requests are the newest, so
    request shards are read newest first until the store's queued count is
    reached) and at least the first ``first_screen_rows`` valid certificates
    (whole shards are read); the closed lists are left for the full read.
    """
    # Stored times are UTC ISO strings of one format, so they compare as text.
    now_text = now.isoformat()
    queued: dict[int, dict] = {}
    closed_requests: dict[int, dict] = {}
    valid: dict[int, dict] = {}
    closed_certificates: dict[int, dict] = {}
    partial = first_screen_rows is not None
    want_queued = repo.get_meta(store.view()).get("queued", 0)
    request_shards = docs.shards("requests")
    for shard in reversed(request_shards):
        if partial and len(queued) >= want_queued:
            break
        for doc in docs.shard("requests", shard):
            status = doc["status"]
            if status == "queued":
                queued[doc["id"]] = doc
            elif status in ("rejected", "expired") and not partial:
                closed_requests[doc["id"]] = doc
    for shard in docs.shards("certs"):
        if partial and len(valid) >= first_screen_rows:
            break
        for doc in docs.shard("certs", shard):
            if doc.get("revoked_at") is None and doc["na"] > now_text:
                valid[doc["id"]] = doc
            elif not partial:
                closed_certificates[doc["id"]] = doc
    return Overview(
        token=token, now=now, info=info, partial=partial,
        queued=request_list(queued), valid=certificate_list(valid),
        closed_requests=request_list(closed_requests), closed_certificates=certificate_list(closed_certificates),
    )  # fmt: skip

"""Listings of certificates and of requests as text a store can keep beside its records, and read back fast.

``tui-ca list certs`` and ``tui-ca list`` at 100,000 records spent their time
parsing every stored document, building a dict per record and encoding it
again (bench/: 3.9 s and 6.2 s of CPU against awk's 0.06 s over an ``openssl
ca`` index.txt). A *listing body* holds, for the records of one store shard,
exactly what a listing prints, already encoded: a store keeps one per shard,
rewritten by the commit that changes the shard, and a listing reads the bodies
instead of the records. Only a certificate's expiry depends on the clock; it is
applied at read time from the stored not-after. A request's listing depends on
its stored fields alone.

A body is ASCII text, one item a line (JSON escapes every control character):

* line 0: ``{"n": N, "until": T, "rows": L}``, T the earliest time at which a
  record of the body is listed otherwise than it is written (for certificates,
  the earliest not-after of one not revoked; null if none): before T the
  objects stand as written; L the length of the rows that follow;
* N rows, tab-separated fields (``Kind``):

  - a certificate: ``id TAB not_after TAB R|V TAB serial TAB requester-as-JSON``;
  - a request: ``id TAB status TAB key_type TAB submitted_at TAB requester``,
    each field after the ID as it is if it is a string of printable ASCII not
    starting with a quote, else a quote followed by its JSON;

* N JSON objects: for a certificate the fields of ``records.certificate_json``
  with the serial as openssl prints it and the status as it stands before
  expiry; for a request exactly ``records.request_json``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any

from tui_ca.engine.records import certificate_json, request_json

_encode = json.JSONEncoder().encode  # the listing's JSON form: stdlib defaults, ASCII only
_loads = json.loads
_VALID_END = '"valid"}'
_EXPIRED_END = '"expired"}'
# (id, status, ...): certificates (id, status, requester, not_after, serial),
# requests (id, status, requester, key_type, submitted_at).
Row = tuple[int, str, str, str, str]
Memo = dict[int, tuple[dict, str, str]]


def openssl_serial(hex_serial: str) -> str:
    """A stored serial (lower-case hex) as ``openssl x509 -serial`` prints it: upper case, whole bytes."""
    digits = hex_serial.upper()
    return "0" + digits if len(digits) % 2 else digits


def _field(value: object) -> str:
    """A row field: a plain string as it is, anything else (escapes, another type) as a quote and its JSON."""
    if type(value) is str and value.isascii() and value.isprintable() and value[:1] != '"':
        return value
    return '"' + _encode(value)


def _value(field: str) -> Any:
    """A row field read back (``_field``): another type than a string, where a hand-edited record holds one."""
    return _loads(field[1:]) if field[:1] == '"' else field


class Kind:
    """What the listing of one kind of record keeps of each, and how its rows read back."""

    name = ""

    def entry(self, doc: dict) -> tuple[str, str]:  # pragma: no cover - each kind has its own
        """The row (no newline) and the JSON object of one record."""
        raise NotImplementedError

    def until(self, doc: dict) -> str | None:
        """When the record stops being listed as its object stands (None: never)."""
        return None

    def parse(self, row_text: str, now_text: str) -> list[Row]:  # pragma: no cover
        """The rows of one body, from its rows part."""
        raise NotImplementedError

    def shown(self, data: str, state: str) -> str:
        """A record's JSON object as listed in ``state`` (from the object as written)."""
        return data


class _Certificates(Kind):
    name = "certificates"

    def entry(self, doc: dict) -> tuple[str, str]:
        data = certificate_json(doc, "")  # no clock: valid unless revoked
        serial = data["serial"] = openssl_serial(doc["serial"])
        flag = "R" if doc.get("revoked_at") is not None else "V"
        return f"{doc['id']}\t{doc['na']}\t{flag}\t{serial}\t{_encode(doc['requester'])}", _encode(data)

    def until(self, doc: dict) -> str | None:
        return doc["na"] if doc.get("revoked_at") is None else None

    def parse(self, row_text: str, now_text: str) -> list[Row]:
        fields = _fields(row_text)
        # A list per body: a comprehension costs less per row than a loop that yields.
        return [
            (int(cert_id), "revoked" if flag == "R" else "expired" if na <= now_text else "valid",
             requester[1:-1] if "\\" not in requester else _loads(requester), na, serial)
            for cert_id, na, flag, serial, requester in zip(fields, fields, fields, fields, fields, strict=True)
        ]  # fmt: skip

    def shown(self, data: str, state: str) -> str:
        return data[: -len(_VALID_END)] + _EXPIRED_END if state == "expired" else data


class _Requests(Kind):
    name = "requests"

    def entry(self, doc: dict) -> tuple[str, str]:
        data = request_json(doc)
        fields = (data["status"], data["details"]["key_type"], data["submitted_at"], data["requester"])
        return f"{doc['id']}\t" + "\t".join(map(_field, fields)), _encode(data)

    def parse(self, row_text: str, now_text: str) -> list[Row]:
        fields = _fields(row_text)
        if '\t"' not in row_text:  # every field as it is (only one that is not starts with a quote)
            return [(int(request_id), status, requester, key_type, at)
                    for request_id, status, key_type, at, requester in zip(fields, fields, fields, fields, fields,
                                                                           strict=True)]  # fmt: skip
        return [(int(request_id), _value(status), _value(requester), _value(key_type), _value(at))
                for request_id, status, key_type, at, requester in zip(fields, fields, fields, fields, fields,
                                                                       strict=True)]  # fmt: skip


CERTIFICATES: Kind = _Certificates()
REQUESTS: Kind = _Requests()


def render(kind: Kind, docs: Iterable[dict], memo: Memo | None = None) -> str:
    """The listing body of some records of one kind (in ID order).

    ``memo`` (filled here) keeps each record's row and object: a commit that
    changes one record of a full shard renders that one again, not 256
    (bench/: rendering was the largest part of an approval's CPU).
    """
    rows: list[str] = []
    objects: list[str] = []
    until: str | None = None
    seen: Memo = {}
    for doc in docs:
        changes = kind.until(doc)
        if changes is not None and (until is None or changes < until):
            until = changes
        kept = memo.get(doc["id"]) if memo is not None else None
        if kept is None or kept[0] != doc:
            # A copy: the memo must not change when the caller's record does.
            kept = (dict(doc), *kind.entry(doc))
        seen[doc["id"]] = kept
        rows.append(kept[1])
        objects.append(kept[2])
    if memo is not None:
        memo.clear()
        memo.update(seen)
    row_text = "".join(row + "\n" for row in rows)
    head = _encode({"n": len(rows), "until": until, "rows": len(row_text)})
    return f"{head}\n{row_text}" + "".join(data + "\n" for data in objects)


def rows_part(body: str) -> str:
    """The head and rows of a body, without its objects: all a table needs."""
    end = body.index("\n") + 1
    return body[: end + _loads(body[:end])["rows"]]


def _split(body: str) -> tuple[str, str, str | None]:
    """The rows and the objects of a body (each a run of lines), and its ``until``."""
    end = body.index("\n") + 1
    head = _loads(body[:end])
    middle = end + head["rows"]
    return body[end:middle], body[middle:], head["until"]


def entries(body: str) -> Iterator[tuple[int, str, str]]:
    """(id, row, object) of each record of a body, as ``render`` made them."""
    row_text, objects, _ = _split(body)
    for row, data in zip(row_text.splitlines(), objects.splitlines(), strict=True):
        yield int(row.split("\t", 1)[0]), row, data


def _fields(row_text: str) -> Iterator[str]:
    # One split for every field of every row: a split per line cost a third of the listing.
    return iter(row_text[:-1].replace("\n", "\t").split("\t") if row_text else ())


def rows(kind: Kind, bodies: Iterable[str], now_text: str, status: str | None = None) -> Iterator[Row]:
    """The rows of each record (status second), optionally of one status.

    A body may end after its rows (``rows_part``): the objects are not needed here.
    """
    for body in bodies:
        found = kind.parse(_split(body)[0], now_text)
        yield from found if status is None else [row for row in found if row[1] == status]


def json_chunks(kind: Kind, bodies: Iterable[str], now_text: str, status: str | None = None) -> Iterator[str]:
    """The JSON objects, one a line (each followed by a newline), a chunk per body; empty chunks skipped."""
    for body in bodies:
        row_text, objects, until = _split(body)
        stands = until is None or now_text < until
        if status is None and stands:
            # Nothing of this body is listed otherwise than written: its objects are the output as they stand.
            if objects:
                yield objects
            continue
        states = [row[1] for row in kind.parse(row_text, now_text)]
        if status is not None and stands and states.count(status) == len(states):
            if objects:
                yield objects  # every record of the body is of the status asked for, as written
            continue
        data = objects.splitlines()
        if not stands:
            data = [kind.shown(text, state) for text, state in zip(data, states, strict=True)]
        kept = data if status is None else [text for text, state in zip(data, states, strict=True) if state == status]
        if kept:
            yield "\n".join(kept) + "\n"

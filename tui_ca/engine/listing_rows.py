"""Certificate listings as text a store can keep beside its records, and read back fast.

``tui-ca list certs`` at 100,000 certificates spent its time parsing every
stored document, building a dict per record and encoding it again (bench/:
3.9 s of CPU against awk's 0.06 s over an ``openssl ca`` index.txt). A
*listing body* holds, for the certificates of one store shard, exactly what a
listing prints, already encoded: a store keeps one per shard, rewritten by the
commit that changes the shard, and a listing reads the bodies instead of the
records. Only a certificate's expiry depends on the clock; it is applied at
read time from the stored not-after.

A body is ASCII text, one item a line (JSON escapes every control character):

* line 0: ``{"n": N, "until": T, "rows": L}``, T the earliest not-after of a
  certificate not revoked (null if none): before T, no certificate of the
  body has expired; L the length of the rows that follow;
* N rows ``id TAB not_after TAB R|V TAB serial TAB requester-as-JSON``;
* N JSON objects, the fields of ``records.certificate_json`` with the serial
  as openssl prints it and the status as it stands before expiry.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

from tui_ca.engine.records import certificate_json

_encode = json.JSONEncoder().encode  # the listing's JSON form: stdlib defaults, ASCII only
_VALID_END = '"valid"}'
_EXPIRED_END = '"expired"}'
Row = tuple[int, str, str, str, str]


def openssl_serial(hex_serial: str) -> str:
    """A stored serial (lower-case hex) as ``openssl x509 -serial`` prints it: upper case, whole bytes."""
    digits = hex_serial.upper()
    return "0" + digits if len(digits) % 2 else digits


Memo = dict[int, tuple[dict, str, str]]


def render(docs: Iterable[dict], memo: Memo | None = None) -> str:
    """The listing body of some certificate records (in ID order).

    ``memo`` (filled here) keeps each record's row and object: a commit that
    changes one certificate of a full shard renders that one again, not 256
    (bench/: rendering was the largest part of an approval's CPU).
    """
    rows: list[str] = []
    objects: list[str] = []
    until: str | None = None
    seen: Memo = {}
    for doc in docs:
        revoked = doc.get("revoked_at") is not None
        if not revoked and (until is None or doc["na"] < until):
            until = doc["na"]
        kept = memo.get(doc["id"]) if memo is not None else None
        if kept is not None and kept[0] == doc:
            row, text = kept[1], kept[2]
        else:
            data = certificate_json(doc, "")  # no clock: valid unless revoked
            serial = data["serial"] = openssl_serial(doc["serial"])
            row = f"{doc['id']}\t{doc['na']}\t{'R' if revoked else 'V'}\t{serial}\t{_encode(doc['requester'])}"
            text = _encode(data)
        seen[doc["id"]] = (dict(doc), row, text)
        rows.append(row)
        objects.append(text)
    if memo is not None:
        memo.clear()
        memo.update(seen)
    row_text = "".join(row + "\n" for row in rows)
    head = _encode({"n": len(rows), "until": until, "rows": len(row_text)})
    return f"{head}\n{row_text}" + "".join(data + "\n" for data in objects)


def rows_part(body: str) -> str:
    """The head and rows of a body, without its objects: all a table of certificates needs."""
    end = body.index("\n") + 1
    return body[: end + json.loads(body[:end])["rows"]]


def _split(body: str) -> tuple[str, str, str | None]:
    """The rows and the objects of a body (each a run of lines), and its ``until``."""
    end = body.index("\n") + 1
    head = json.loads(body[:end])
    middle = end + head["rows"]
    return body[end:middle], body[middle:], head["until"]


def _status(na: str, flag: str, now_text: str) -> str:
    if flag == "R":
        return "revoked"
    return "expired" if na <= now_text else "valid"


def rows(bodies: Iterable[str], now_text: str, status: str | None = None) -> Iterator[Row]:
    """(id, status, requester, not_after, serial) of each certificate, optionally of one status.

    A body may end after its rows (``rows_part``): the objects are not needed here.
    """
    for body in bodies:
        row_text = _split(body)[0]
        # One split for every field of every row: a split per line cost a third of the listing.
        fields = iter(row_text[:-1].replace("\n", "\t").split("\t") if row_text else ())
        # A list per body: a comprehension costs less per row than a loop that yields.
        found = [
            (int(cert_id), "revoked" if flag == "R" else "expired" if na <= now_text else "valid",
             requester[1:-1] if "\\" not in requester else json.loads(requester), na, serial)
            for cert_id, na, flag, serial, requester in zip(fields, fields, fields, fields, fields, strict=True)
        ]  # fmt: skip
        yield from found if status is None else [row for row in found if row[1] == status]


def json_chunks(bodies: Iterable[str], now_text: str, status: str | None = None) -> Iterator[str]:
    """The JSON objects, one a line (each followed by a newline), a chunk per body; empty chunks skipped."""
    for body in bodies:
        row_text, objects, until = _split(body)
        if status is None and (until is None or now_text < until):
            # Nothing of this body has expired: its objects are the output as they stand.
            if objects:
                yield objects
            continue
        kept = []
        for line, data in zip(row_text.splitlines(), objects.splitlines(), strict=True):
            _, na, flag, _ = line.split("\t", 3)
            state = _status(na, flag, now_text)
            if status is not None and state != status:
                continue
            kept.append(data[: -len(_VALID_END)] + _EXPIRED_END if state == "expired" else data)
        if kept:
            yield "\n".join(kept) + "\n"

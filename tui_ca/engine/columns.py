"""Records packed column by column, for lists that hold 100,000 of them.

A stored document parsed by ``json`` costs about 3 KB of Python objects (a
dict, its keys' slots, a str object of ~50 bytes of header per value); a
face that keeps one per record holds ~450 MiB at 100,000 certificates. A list
shows a handful of fields, so these columns keep only those: text as UTF-8 in
one buffer (about one byte a character), times as seconds in an ``array``.
An entry (a small named tuple) is rebuilt only for the rows a face draws.
"""

from __future__ import annotations

from array import array
from datetime import UTC, datetime

# Single bytes that no UTF-8 encoding of a string can be on their own: they
# stand for "no value" and "same text as the requester" (most CNs are).
_NONE = b"\xff"
_SAME = b"\xfe"
# Times are whole seconds; 0 cannot be a CA's time, so it stands for "none".
_NO_TIME = 0


class TextColumn:
    """Strings (or None) by position, packed in one UTF-8 buffer."""

    def __init__(self) -> None:
        self._data = bytearray()
        self._ends = array("Q")

    def __len__(self) -> int:
        return len(self._ends)

    def append(self, text: str | None, *, same_as: str | None = None) -> None:
        """Add ``text``; when it equals ``same_as`` only a marker is stored."""
        if text is None:
            self._data += _NONE
        elif same_as is not None and text == same_as:
            self._data += _SAME
        else:
            self._data += text.encode("utf-8", "surrogatepass")
        self._ends.append(len(self._data))

    def get(self, index: int, same: str | None = None) -> str | None:
        """The text at ``index`` (``same`` where it was stored as equal to ``same_as``)."""
        start = self._ends[index - 1] if index else 0
        raw = self._data[start : self._ends[index]]
        if raw == _NONE:
            return None
        if raw == _SAME:
            return same
        return raw.decode("utf-8", "surrogatepass")


class TimeColumn:
    """Stored ISO times (UTC, whole seconds) as seconds since the epoch."""

    def __init__(self) -> None:
        self._seconds = array("q")

    def __len__(self) -> int:
        return len(self._seconds)

    def append(self, text: str | None) -> None:
        self._seconds.append(_NO_TIME if text is None else int(datetime.fromisoformat(text).timestamp()))

    def get(self, index: int) -> datetime | None:
        seconds = self._seconds[index]
        return None if seconds == _NO_TIME else datetime.fromtimestamp(seconds, UTC)

    def seconds(self, index: int) -> int:
        """The raw value (0 for none): compares and subtracts without building a datetime."""
        return self._seconds[index]


class Interned:
    """Values with few distinct texts (key types, statuses, user names) kept once each."""

    def __init__(self) -> None:
        self._values: dict[str | None, str | None] = {}
        self.by_index: list[str | None] = []

    def __len__(self) -> int:
        return len(self.by_index)

    def append(self, text: str | None) -> None:
        self.by_index.append(self._values.setdefault(text, text))

    def get(self, index: int) -> str | None:
        return self.by_index[index]

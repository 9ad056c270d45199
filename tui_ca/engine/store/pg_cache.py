"""What a PostgreSQL writer's transaction has read or written, by key, so a bulk operation
does not pay one round trip to the server per record.

Valid for the life of one writer's transaction only: it holds the writers'
advisory lock, so no other process changes a row meanwhile, and every write of
the transaction goes through ``put`` as well as to the server. Reads by
Certificate ID fetch a window of the following IDs, growing while the calls
walk the IDs in order (a bulk approval) and staying at one row otherwise (a
single approval reads no more than before).
"""

from __future__ import annotations

import json
from typing import Any

# Rows fetched at once at most; a window costs one round trip whatever its size.
MAX_WINDOW = 512


def _copy(value: Any) -> Any:
    # The engine may change a record it read before writing it back: it gets its own copy, as from the server.
    return json.loads(json.dumps(value)) if isinstance(value, dict | list) else value


class WriterCache:
    def __init__(self) -> None:
        self._values: dict[tuple[str, Any], Any] = {}
        self._windows: dict[str, tuple[int, int]] = {}
        """kind -> (the ID after the last window fetched, that window's size)."""

    def get(self, kind: str, key: Any) -> Any:
        """The cached value (a copy); None for a row known absent or not known (ask ``knows`` first)."""
        return _copy(self._values.get((kind, key)))

    def knows(self, kind: str, key: Any) -> bool:
        return (kind, key) in self._values

    def put(self, kind: str, key: Any, value: Any) -> None:
        """A value written (or read) by the transaction; None records that the row does not exist."""
        self._values[kind, key] = _copy(value)

    def fill(self, kind: str, key: Any, value: Any) -> None:
        """A value read from the server, unless the transaction knows a newer one."""
        self._values.setdefault((kind, key), value)

    def window(self, kind: str, first: int) -> int:
        """How many IDs from ``first`` to fetch: more while the reads go up one ID after another."""
        following, size = self._windows.get(kind, (None, 0))
        size = min(size * 4, MAX_WINDOW) if following == first else 1
        self._windows[kind] = (first + size, size)
        return size

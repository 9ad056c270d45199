"""A compact, read-only set of certificate serials for the OCSP responder.

Every serial is kept as 20 big-endian bytes (RFC 5280 §4.1.2.2 caps serials
at 20 octets, so every positive one fits) in one sorted bytes object, looked
up by bisection: 100,000 serials take 2 MB, where a Python set of ints takes
about 9 MB and a dict of them more. Byte order of equal-width big-endian
strings is numeric order, so no key function is needed. The odd serial that
does not fit (negative, or wider than 20 octets: never ours, but a store may
hold an imported one) sits in a small frozenset beside it.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable, Iterator

WIDTH = 20
_LIMIT = 1 << (8 * WIDTH)
_RUN = 4096


class SerialSet:
    """Membership of serials, made once from an iterable (of any size: only the bytes are kept)."""

    def __init__(self, serials: Iterable[int]) -> None:
        # Sorted runs of a few thousand, merged: a list of every serial as its own bytes object
        # would take three times the set itself, and the server's peak RSS with it.
        runs: list[bytes] = []
        keys: list[bytes] = []
        odd: set[int] = set()
        for serial in serials:
            if 0 <= serial < _LIMIT:
                keys.append(serial.to_bytes(WIDTH, "big"))
                if len(keys) == _RUN:
                    runs.append(_run(keys))
                    keys = []
            else:
                odd.add(serial)
        if keys:
            runs.append(_run(keys))
        # Filled in place, never grown or copied: the runs and the set are all there is at the peak.
        self._blob = merged = bytearray(sum(map(len, runs)))
        for start, key in zip(range(0, len(merged), WIDTH), heapq.merge(*map(_keys, runs)), strict=True):
            merged[start : start + WIDTH] = key
        self._count = len(self._blob) // WIDTH
        self._odd = frozenset(odd)

    def __len__(self) -> int:
        return self._count + len(self._odd)

    def __contains__(self, serial: object) -> bool:
        if not isinstance(serial, int):
            return False
        if not 0 <= serial < _LIMIT:
            return serial in self._odd
        key, blob = serial.to_bytes(WIDTH, "big"), self._blob
        low, high = 0, self._count
        while low < high:
            middle = (low + high) // 2
            start = middle * WIDTH
            found = blob[start : start + WIDTH]
            if found < key:
                low = middle + 1
            elif found > key:
                high = middle
            else:
                return True
        return False


def _run(keys: list[bytes]) -> bytes:
    keys.sort()
    return b"".join(keys)


def _keys(run: bytes) -> Iterator[bytes]:
    return (run[start : start + WIDTH] for start in range(0, len(run), WIDTH))

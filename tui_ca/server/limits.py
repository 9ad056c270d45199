"""Per-client rate of new requests: a token bucket per peer address.

Only requests that would add to the queue spend a token; polling with a CSR
already queued is free, since EST clients are told to come back.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

# A client may send a few requests at once (a device with several keys)
# before the steady rate applies.
DEFAULT_BURST = 5
# Forget buckets idle this long so that many distinct addresses cannot grow memory.
_IDLE_SECONDS = 600.0
_MAX_BUCKETS = 100_000


class RateLimiter:
    def __init__(self, rate: float, burst: int = DEFAULT_BURST, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = max(1, burst)
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, client: str) -> float:
        """0 when the client may go ahead; else the seconds to wait."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
            if tokens >= 1.0:
                self._buckets[client] = (tokens - 1.0, now)
                wait = 0.0
            else:
                self._buckets[client] = (tokens, now)
                wait = (1.0 - tokens) / self.rate
            if len(self._buckets) > _MAX_BUCKETS:
                self._prune(now)
        return wait

    def wait(self, client: str) -> float:
        """Seconds until ``take`` would let the client go ahead, spending nothing."""
        if self.rate <= 0:
            return 0.0
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(client, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - stamp) * self.rate)
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / self.rate

    def _prune(self, now: float) -> None:
        for key in [k for k, (_, stamp) in self._buckets.items() if now - stamp > _IDLE_SECONDS]:
            del self._buckets[key]


# Refusals made here (before intake) are kept for the admins, each one a
# store commit: per client address, a burst and then one every few seconds,
# so a client refused over and over (a flood, a device retrying in a loop)
# costs a few commits a minute, not one per attempt.
REFUSAL_RECORDS_BURST = 10
REFUSAL_RECORDS_PER_SECOND = 1 / 6


def refusal_throttle() -> RateLimiter:
    """The per-address allowance of refusal records (``take`` returns 0: record this one)."""
    return RateLimiter(REFUSAL_RECORDS_PER_SECOND, REFUSAL_RECORDS_BURST)


def retry_after(seconds: float) -> str:
    """An integer Retry-After (RFC 9110 delay-seconds), at least 1."""
    return str(max(1, math.ceil(seconds)))

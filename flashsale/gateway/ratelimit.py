"""Per-buyer token buckets: a burst of honest taps passes, a script hammering does not.

Kept in the gateway process for now, so each gateway enforces its own share.
"""

from __future__ import annotations

import math
import time

from flashsale.gateway.errors import ApiError

_PRUNE_AT = 100_000


class RateLimiter:
    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._buckets: dict[str, tuple[float, float]] = {}  # who -> (tokens, at)

    def check(self, who: str) -> None:
        """Takes one token for `who`, or raises 429 with the seconds until the next one."""
        if self.rate <= 0:
            return
        now = time.monotonic()
        tokens, at = self._buckets.get(who, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - at) * self.rate)
        if tokens < 1:
            self._buckets[who] = (tokens, now)
            wait = math.ceil((1 - tokens) / self.rate)
            raise ApiError(
                429, "rate_limited", "too many requests; slow down", {"Retry-After": str(wait)}
            )
        self._buckets[who] = (tokens - 1, now)
        if len(self._buckets) > _PRUNE_AT:
            self._prune(now)

    def _prune(self, now: float) -> None:
        # A bucket that has refilled is the same as no bucket.
        full_after = self.burst / self.rate
        self._buckets = {k: v for k, v in self._buckets.items() if now - v[1] < full_after}

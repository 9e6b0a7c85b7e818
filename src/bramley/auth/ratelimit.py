"""Per-tenant rate limits (50/s and 10,000/h by default), in-process or shared through Redis."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from bramley.config import Settings


@dataclass
class Verdict:
    allowed: bool
    headers: list[tuple[bytes, bytes]]
    retry_after: int = 0


class FixedWindows:
    """In-process fixed windows, as limits' FixedWindowRateLimiter counts them (a window opens with its first hit;
    a refused hit still counts), as a dict of counters. limits' in-memory storages expire keys from the side, the
    sync one with a timer thread, the async one with a task per hit: a tenth of a device-list request's CPU. Here a
    key's window is replaced when it has run out, and there are only two keys per tenant."""

    def __init__(self):
        self._windows: dict[tuple[str, int], list] = {}  # (key, seconds) -> [count, end]

    def hit(self, key: str, amount: int, seconds: int) -> tuple[bool, float, int]:
        """Count a hit: (allowed, the window's end, hits left in it)."""
        now = time.time()
        window = self._windows.get((key, seconds))
        if window is None or window[1] <= now:
            window = self._windows[(key, seconds)] = [0, now + seconds]
        window[0] += 1
        return window[0] <= amount, window[1], max(0, amount - window[0])

    def stats(self, key: str, amount: int, seconds: int) -> tuple[float, int]:
        """(the window's end, hits left) without counting one."""
        window = self._windows.get((key, seconds))
        now = time.time()
        if window is None or window[1] <= now:
            return now + seconds, amount
        return window[1], max(0, amount - window[0])


class TenantRateLimiter:
    """In process: FixedWindows, on the event loop. Shared: limits over Redis, sync, in the threadpool (an async
    Redis pool is bound to one event loop, and test clients run a loop per request)."""

    def __init__(self, settings: Settings):
        self.enabled = settings.rate_limit_enabled
        self.shared = bool(settings.redis_url)
        self.limiter = FixedWindowRateLimiter(storage_from_string(settings.redis_url)) if self.shared else None
        self.windows = FixedWindows()
        self.per_second = RateLimitItemPerSecond(settings.rate_limit_per_second)
        self.per_hour = RateLimitItemPerHour(settings.rate_limit_per_hour)

    async def hit(self, tenant_id: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, [])
        if self.shared:
            return await run_in_threadpool(self._verdict_sync, tenant_id)
        key, second, hour = tenant_id, self.per_second.amount, self.per_hour.amount
        sec_ok, sec_reset, sec_left = self.windows.hit(key, second, 1)
        if sec_ok:
            hour_ok, hour_reset, hour_left = self.windows.hit(key, hour, 3600)
        else:
            hour_ok, (hour_reset, hour_left) = False, self.windows.stats(key, hour, 3600)
        return self._verdict(sec_ok, hour_ok, sec_reset, sec_left, hour_reset, hour_left)

    def _verdict_sync(self, tenant_id: str) -> Verdict:
        key = f"bramley:{tenant_id}"
        sec_ok = self.limiter.hit(self.per_second, key)
        hour_ok = sec_ok and self.limiter.hit(self.per_hour, key)
        sec_reset, sec_left = self.limiter.get_window_stats(self.per_second, key)
        hour_reset, hour_left = self.limiter.get_window_stats(self.per_hour, key)
        return self._verdict(sec_ok, hour_ok, sec_reset, sec_left, hour_reset, hour_left)

    def _verdict(self, sec_ok, hour_ok, sec_reset, sec_left, hour_reset, hour_left) -> Verdict:
        now = time.time()
        sec_wait = max(1, math.ceil(sec_reset - now))
        headers = [
            (b"ratelimit-limit", str(self.per_second.amount).encode()),
            (b"ratelimit-remaining", str(sec_left).encode()),
            (b"ratelimit-reset", str(sec_wait).encode()),
            (b"x-ratelimit-limit-second", str(self.per_second.amount).encode()),
            (b"x-ratelimit-remaining-second", str(sec_left).encode()),
            (b"x-ratelimit-limit-hour", str(self.per_hour.amount).encode()),
            (b"x-ratelimit-remaining-hour", str(hour_left).encode()),
        ]
        if not sec_ok:
            return Verdict(False, headers, sec_wait)
        if not hour_ok:
            return Verdict(False, headers, max(1, math.ceil(hour_reset - now)))
        return Verdict(True, headers)

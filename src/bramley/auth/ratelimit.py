"""Per-tenant rate limits (50/s and 10,000/h by default), in-process or shared through Redis."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.aio.storage import MemoryStorage as AsyncMemoryStorage
from limits.aio.strategies import FixedWindowRateLimiter as AsyncFixedWindowRateLimiter
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from starlette.concurrency import run_in_threadpool

from bramley.config import Settings


@dataclass
class Verdict:
    allowed: bool
    headers: list[tuple[bytes, bytes]]
    retry_after: int = 0


class TenantRateLimiter:
    """In process, the async in-memory storage runs on the event loop: the sync one starts a timer thread every
    few requests to expire keys, a measurable share of a device-list request. Redis stays sync, in the threadpool:
    an async Redis pool is bound to one event loop, and test clients run a loop per request."""

    def __init__(self, settings: Settings):
        self.enabled = settings.rate_limit_enabled
        self.shared = bool(settings.redis_url)
        if self.shared:
            self.limiter = FixedWindowRateLimiter(storage_from_string(settings.redis_url))
        else:
            self.limiter = AsyncFixedWindowRateLimiter(AsyncMemoryStorage())
        self.per_second = RateLimitItemPerSecond(settings.rate_limit_per_second)
        self.per_hour = RateLimitItemPerHour(settings.rate_limit_per_hour)

    async def hit(self, tenant_id: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, [])
        if self.shared:
            return await run_in_threadpool(self._verdict_sync, tenant_id)
        key = f"bramley:{tenant_id}"
        sec_ok = await self.limiter.hit(self.per_second, key)
        hour_ok = sec_ok and await self.limiter.hit(self.per_hour, key)
        sec_reset, sec_left = await self.limiter.get_window_stats(self.per_second, key)
        hour_reset, hour_left = await self.limiter.get_window_stats(self.per_hour, key)
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

    async def reset(self) -> None:
        if self.shared:
            await run_in_threadpool(self.limiter.storage.reset)
        else:
            await self.limiter.storage.reset()

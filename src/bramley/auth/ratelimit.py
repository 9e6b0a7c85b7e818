"""Per-tenant rate limits (50/s and 10,000/h by default), in-process or shared through Redis."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from limits import RateLimitItemPerHour, RateLimitItemPerSecond
from limits.storage import MemoryStorage, storage_from_string
from limits.strategies import FixedWindowRateLimiter

from bramley.config import Settings


@dataclass
class Verdict:
    allowed: bool
    headers: list[tuple[bytes, bytes]]
    retry_after: int = 0


class TenantRateLimiter:
    def __init__(self, settings: Settings):
        self.enabled = settings.rate_limit_enabled
        storage = storage_from_string(settings.redis_url) if settings.redis_url else MemoryStorage()
        self.limiter = FixedWindowRateLimiter(storage)
        self.per_second = RateLimitItemPerSecond(settings.rate_limit_per_second)
        self.per_hour = RateLimitItemPerHour(settings.rate_limit_per_hour)

    def hit(self, tenant_id: str) -> Verdict:
        if not self.enabled:
            return Verdict(True, [])
        key = f"bramley:{tenant_id}"
        sec_ok = self.limiter.hit(self.per_second, key)
        hour_ok = sec_ok and self.limiter.hit(self.per_hour, key)
        sec_reset, sec_left = self.limiter.get_window_stats(self.per_second, key)
        hour_reset, hour_left = self.limiter.get_window_stats(self.per_hour, key)
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

    def reset(self) -> None:
        self.limiter.storage.reset()

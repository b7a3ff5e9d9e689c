"""Retry policy: exponential backoff with jitter, in the job's own routing key."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Delay before retry ``n`` (1-based) is ``min(cap, base * factor**(n-1))``, then
    spread by +/- ``jitter`` (a fraction) so failed jobs do not come back in lockstep."""

    base: float = 2.0
    factor: float = 2.0
    cap: float = 3600.0
    jitter: float = 0.1

    def delay(self, retry_number: int, rng: random.Random | None = None) -> float:
        raw = min(self.cap, self.base * self.factor ** max(0, retry_number - 1))
        spread = (rng or random).uniform(-self.jitter, self.jitter)
        return max(0.0, raw * (1.0 + spread))


def should_retry(attempts: int, max_retries: int) -> bool:
    """``attempts`` counts attempts started; ``max_retries=3`` allows 4 attempts in all."""
    return attempts <= max_retries

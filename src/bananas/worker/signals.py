"""Exceptions a handler raises on purpose to steer its job (not errors of Bananas)."""

from __future__ import annotations


class Retry(Exception):
    """Retry this job, optionally after ``delay`` seconds (counts as an attempt)."""

    def __init__(self, reason: str = "retry requested", *, delay: float | None = None) -> None:
        self.reason = reason
        self.delay = delay
        super().__init__(reason)


class Fail(Exception):
    """Fail this job now, without retries; it goes to the dead letter list."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)

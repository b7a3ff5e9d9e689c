"""Retry policy: base 2 s doubling with jitter, capped; max_retries=3 means 4 attempts."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pytest

from bananas import Priority
from bananas.core.job import JobStatus, new_job
from bananas.core.lifecycle import Verdict, apply_failure, decide_failure, mark_started
from bananas.core.retry import RetryPolicy, should_retry

NOW = datetime(2025, 1, 1, tzinfo=UTC)


def test_default_policy_is_base_2_doubling() -> None:
    policy = RetryPolicy()
    assert policy.base == 2.0 and policy.factor == 2.0
    exact = RetryPolicy(jitter=0.0)
    assert [exact.delay(n) for n in (1, 2, 3, 4)] == [2.0, 4.0, 8.0, 16.0]


def test_delay_is_capped() -> None:
    policy = RetryPolicy(jitter=0.0, cap=60.0)
    assert policy.delay(5) == 32.0
    assert policy.delay(6) == 60.0
    assert policy.delay(100) == 60.0


def test_jitter_spreads_within_bounds() -> None:
    policy = RetryPolicy(jitter=0.1)
    rng = random.Random(7)
    delays = [policy.delay(3, rng) for _ in range(200)]
    assert all(8.0 * 0.9 <= d <= 8.0 * 1.1 for d in delays)
    assert len(set(delays)) > 100  # not in lockstep
    capped = [RetryPolicy(cap=10.0).delay(50, rng) for _ in range(50)]
    assert all(d <= 11.0 for d in capped)


@pytest.mark.parametrize(("attempts", "allowed"), [(1, True), (2, True), (3, True), (4, False), (5, False)])
def test_should_retry_counts_attempts_started(attempts: int, allowed: bool) -> None:
    assert should_retry(attempts, 3) is allowed


def test_max_retries_3_gives_4_attempts_with_growing_delays() -> None:
    job = new_job("flaky", None, Priority.LOW, "gpu", now=NOW, max_retries=3)
    policy = RetryPolicy(jitter=0.0)
    now = 1000.0
    delays = []
    for _ in range(10):
        mark_started(job, NOW)
        decision = decide_failure(job, now, policy)
        apply_failure(job, decision, "ValueError: boom", now)
        if decision.verdict is Verdict.DEAD:
            break
        assert decision.due is not None
        delays.append(decision.due - now)
        assert job.status is JobStatus.SCHEDULED and job.routing_key == "gpu" and job.priority is Priority.LOW
    assert job.attempts == 4
    assert delays == [2.0, 4.0, 8.0]
    assert job.status is JobStatus.FAILED and job.error == "ValueError: boom"


def test_max_retries_0_fails_at_once() -> None:
    job = new_job("once", None, Priority.NORMAL, "default", now=NOW, max_retries=0)
    mark_started(job, NOW)
    assert decide_failure(job, 0.0, RetryPolicy()).verdict is Verdict.DEAD


def test_permanent_failure_skips_retries() -> None:
    job = new_job("x", None, Priority.NORMAL, "default", now=NOW)
    mark_started(job, NOW)
    assert decide_failure(job, 0.0, RetryPolicy(), permanent=True).verdict is Verdict.DEAD

"""Settings objects. Read from the environment only by the edges (CLI, API), via
``WorkerSettings.from_env``; everything else receives a frozen settings object.

Precedence: command-line flags > environment variables > defaults.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from bananas.core.codec import DEFAULT_MAX_PAYLOAD_BYTES
from bananas.core.job import DEFAULT_MAX_RETRIES
from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.retry import RetryPolicy
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.errors import ConfigurationError, ValidationError
from bananas.redis.connection import DEFAULT_REDIS_URL, validate_url

T = TypeVar("T")

DEFAULT_CONCURRENCY = 10
DEFAULT_LEASE_SECONDS = 30.0
DEFAULT_JOB_TIMEOUT = 300.0
DEFAULT_SHUTDOWN_GRACE = 30.0
DEFAULT_COMPLETED_TTL = 24 * 3600
DEFAULT_FAILED_TTL = 7 * 24 * 3600
DEFAULT_DEAD_LETTER_CAP = 100_000
DEFAULT_MAX_RECOVERIES = 3
DEFAULT_RESULT_TTL = 3600
DEFAULT_RESULT_FAILURE_TTL = 24 * 3600


@dataclass(frozen=True, slots=True)
class WorkerSettings:
    redis_url: str = DEFAULT_REDIS_URL
    routing_keys: tuple[str, ...] = (DEFAULT_ROUTING_KEY,)
    priorities: tuple[Priority, ...] = DEFAULT_PRIORITIES
    concurrency: int = DEFAULT_CONCURRENCY
    processes: int = 1
    #: Seconds an attempt may run before it is failed (async handlers are cancelled).
    job_timeout: float | None = DEFAULT_JOB_TIMEOUT
    #: Seconds a delivery stays leased without a heartbeat before another worker may take it.
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    #: ``max_retries`` for records that do not carry one.
    max_retries: int = DEFAULT_MAX_RETRIES
    shutdown_grace: float = DEFAULT_SHUTDOWN_GRACE
    completed_ttl: int = DEFAULT_COMPLETED_TTL
    failed_ttl: int = DEFAULT_FAILED_TTL
    dead_letter_cap: int = DEFAULT_DEAD_LETTER_CAP
    #: Times a job may lose its worker (crash, kill) before it is parked as a poison pill.
    max_recoveries: int = DEFAULT_MAX_RECOVERIES
    retry_policy: RetryPolicy = field(default_factory=RetryPolicy)
    #: Seconds a stored result lives after success / after final failure (0: not stored).
    result_ttl: int = DEFAULT_RESULT_TTL
    result_failure_ttl: int = DEFAULT_RESULT_FAILURE_TTL

    def with_overrides(self, **changes: Any) -> WorkerSettings:
        return replace(self, **{k: v for k, v in changes.items() if v is not None})

    @classmethod
    def from_env(cls, env: Mapping[str, str], **flags: str | int | float | None) -> WorkerSettings:
        """Build settings from environment variables and CLI flags (flags win).

        ``flags`` maps a field name to the raw flag value (``None`` when not given).
        Raises ``ConfigurationError`` naming the variable or flag with the bad value.
        """

        def pick(field_name: str, env_name: str, parse: Callable[[str, str], T], default: T) -> T:
            flag = flags.get(field_name)
            if flag is not None:
                return parse(f"--{field_name.replace('_', '-')}", str(flag))
            raw = env.get(env_name)
            if raw is not None and raw.strip() != "":
                return parse(env_name, raw)
            return default

        d = cls()
        policy = RetryPolicy(
            base=pick("retry_base", "RETRY_BACKOFF_BASE", _positive_float, d.retry_policy.base),
            cap=pick("retry_cap", "RETRY_BACKOFF_MAX", _positive_float, d.retry_policy.cap),
        )
        return cls(
            redis_url=pick("redis_url", "REDIS_URL", _redis_url, d.redis_url),
            routing_keys=pick("routing_keys", "WORKER_ROUTING_KEYS", parse_routing_keys, d.routing_keys),
            priorities=pick("priorities", "WORKER_PRIORITIES", parse_priorities, d.priorities),
            concurrency=pick("concurrency", "WORKER_CONCURRENCY", _positive_int, d.concurrency),
            processes=pick("processes", "WORKER_PROCESSES", _positive_int, d.processes),
            job_timeout=pick("job_timeout", "JOB_TIMEOUT", _optional_timeout, d.job_timeout),
            lease_seconds=pick("lease_seconds", "JOB_LEASE_SECONDS", _lease, d.lease_seconds),
            max_retries=pick("max_retries", "MAX_RETRIES", _non_negative_int, d.max_retries),
            shutdown_grace=pick("shutdown_grace", "WORKER_SHUTDOWN_GRACE", _non_negative_float, d.shutdown_grace),
            completed_ttl=pick("completed_ttl", "JOB_COMPLETED_TTL", _non_negative_int, d.completed_ttl),
            failed_ttl=pick("failed_ttl", "JOB_FAILED_TTL", _non_negative_int, d.failed_ttl),
            dead_letter_cap=pick("dead_letter_cap", "DEAD_LETTER_MAX", _non_negative_int, d.dead_letter_cap),
            max_recoveries=pick("max_recoveries", "JOB_MAX_RECOVERIES", _positive_int, d.max_recoveries),
            retry_policy=policy,
            result_ttl=pick("result_ttl", "RESULT_TTL", _non_negative_int, d.result_ttl),
            result_failure_ttl=pick(
                "result_failure_ttl", "RESULT_FAILURE_TTL", _non_negative_int, d.result_failure_ttl
            ),
        )


# -- parsers: (setting name, raw text) -> value, raising ConfigurationError ----------


def _redis_url(name: str, raw: str) -> str:
    return validate_url(raw.strip(), name)


def parse_routing_keys(name: str, raw: str) -> tuple[str, ...]:
    keys = [part.strip() for part in raw.split(",")]
    if not any(keys):
        raise ConfigurationError(name, "needs at least one routing key")
    seen: list[str] = []
    for key in keys:
        try:
            validate_routing_key(key)
        except ValidationError as exc:
            raise ConfigurationError(name, str(exc)) from None
        if key in seen:
            raise ConfigurationError(name, f"routing key {key!r} is listed twice")
        seen.append(key)
    return tuple(seen)


def parse_priorities(name: str, raw: str) -> tuple[Priority, ...]:
    out: list[Priority] = []
    for part in raw.split(","):
        try:
            prio = Priority.parse(part)
        except ValidationError as exc:
            raise ConfigurationError(name, str(exc)) from None
        if prio in out:
            raise ConfigurationError(name, f"priority {prio.value!r} is listed twice")
        out.append(prio)
    return tuple(out)


def _number(name: str, raw: str, kind: Callable[[str], T]) -> T:
    try:
        return kind(raw.strip())
    except ValueError:
        what = "a whole number" if kind is int else "a number"
        raise ConfigurationError(name, f"expected {what}, got {raw!r}") from None


def _positive_int(name: str, raw: str) -> int:
    value = _number(name, raw, int)
    if value < 1:
        raise ConfigurationError(name, f"must be at least 1, got {value}")
    return value


def _non_negative_int(name: str, raw: str) -> int:
    value = _number(name, raw, int)
    if value < 0:
        raise ConfigurationError(name, f"must be 0 or more, got {value}")
    return value


def _finite(name: str, raw: str) -> float:
    value = _number(name, raw, float)
    if not math.isfinite(value):
        raise ConfigurationError(name, f"must be a finite number, got {raw!r}")
    return value


def _positive_float(name: str, raw: str) -> float:
    value = _finite(name, raw)
    if value <= 0:
        raise ConfigurationError(name, f"must be greater than 0, got {raw!r}")
    return value


def _non_negative_float(name: str, raw: str) -> float:
    value = _finite(name, raw)
    if value < 0:
        raise ConfigurationError(name, f"must be 0 or more, got {raw!r}")
    return value


def _lease(name: str, raw: str) -> float:
    value = _positive_float(name, raw)
    if value < 0.5:
        raise ConfigurationError(name, f"must be at least 0.5 seconds, got {raw!r}")
    return value


def _optional_timeout(name: str, raw: str) -> float | None:
    if raw.strip().lower() in ("none", "off", "0"):
        return None
    return _positive_float(name, raw)


def max_payload_bytes_from_env(env: Mapping[str, str]) -> int | None:
    """The producers' payload limit from ``BANANAS_MAX_PAYLOAD_BYTES``: bytes >= 1, or
    ``none`` for no limit; unset means ``DEFAULT_MAX_PAYLOAD_BYTES`` (1 MiB)."""
    name = "BANANAS_MAX_PAYLOAD_BYTES"
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_MAX_PAYLOAD_BYTES
    if raw.lower() in ("none", "unlimited"):
        return None
    return _positive_int(name, raw)

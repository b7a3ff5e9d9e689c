"""Settings objects. Read from the environment only by the edges (CLI, API), via
``WorkerSettings.from_env``; everything else receives a frozen settings object.

Precedence: command-line flags > environment variables > defaults.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any, TypeVar

from bananas.core.codec import DEFAULT_MAX_PAYLOAD_BYTES
from bananas.core.compat import COMPAT_ENV, parse_compat
from bananas.core.job import DEFAULT_MAX_RETRIES, MAX_TTL
from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.retry import RetryPolicy
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.errors import ConfigurationError, ValidationError
from bananas.redis.connection import DEFAULT_REDIS_URL, is_cluster_url, mask_url, validate_url
from bananas.redis.runner import WAIT_REPLICAS_ENV, parse_wait_replicas

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


class QueueSelection(StrEnum):
    """How a worker on several routing keys chooses the next queue (docs/TASK_ROUTING_USAGE.md)."""

    STRICT = "strict"  # k1:high, k1:normal, k1:low, k2:high, ... (the seed's order)
    PRIORITY_FIRST = "priority-first"  # k1:high, k2:high, k1:normal, k2:normal, ...
    WEIGHTED = "weighted"  # among non-empty keys, in proportion to their weights


class WorkerMode(StrEnum):
    """Presets over the settings (docs/WORKER_MODES.md)."""

    DEFAULT = "default"  # jobs plus every maintenance loop
    THIN = "thin"  # jobs only, one at a time; leaves maintenance to other processes
    SPECIALIZED = "specialized"  # jobs of named routing keys only (no 'default', no legacy lists)
    JOB_SPECIALIZED = "job-specialized"  # only the job names in WORKER_JOB_TYPES
    SCHEDULER_ONLY = "scheduler-only"  # no jobs: promotion, lease recovery, repairs


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
    queue_selection: QueueSelection = QueueSelection.STRICT
    #: Weight per routing key for ``weighted`` selection (``gpu:6,email:3``); 1 when absent.
    route_weights: tuple[tuple[str, int], ...] = ()
    #: At most this many jobs of a routing key run at once in this process (``gpu:2``).
    route_concurrency: tuple[tuple[str, int], ...] = ()
    #: Only these job names are run here; others are left for workers that run them.
    job_types: tuple[str, ...] | None = None
    #: Starvation guard: a routing key or priority whose oldest job waited longer than
    #: this many seconds is served next, ahead of the strict order (``low:30,email:60``).
    max_wait: tuple[tuple[str, float], ...] = ()
    mode: WorkerMode = WorkerMode.DEFAULT
    #: A job whose name has no handler here: "park" it for a pool that has one (it waits,
    #: visible in ``bananas queues``), or "fail" it at once to the dead letters.
    unknown_jobs: str = "park"
    #: Start although Redis' ``maxmemory-policy`` is ``allkeys-*`` (it may evict queued
    #: jobs; see docs/RELIABILITY.md). Other policies than ``noeviction`` only warn.
    allow_eviction: bool = False
    #: Replicas that must confirm each ack, retry and bury (``WAIT``) before the worker
    #: goes on (0: do not wait). Too few in time is logged, not retried.
    wait_replicas: int = 0
    #: Migration mode (``BANANAS_COMPAT=original``, docs/MIGRATING.md): the promoter
    #: leaves due jobs to a running original Go scheduler for a grace period and puts
    #: due ``default`` jobs on the legacy lists the original Go workers read.
    compat: str | None = None

    def __repr__(self) -> str:
        # Settings end up in logs and tracebacks: never show the Redis password.
        fields = ", ".join(
            f"{f.name}={mask_url(self.redis_url)!r}" if f.name == "redis_url" else f"{f.name}={getattr(self, f.name)!r}"
            for f in dataclasses.fields(self)
        )
        return f"WorkerSettings({fields})"

    def to_env(self) -> dict[str, str]:
        """The environment that ``from_env`` turns back into these settings (for the
        supervisor's children: no secret ever appears on a command line)."""
        weights = dict(self.route_weights)
        keys = ",".join(f"{k}:{weights[k]}" if k in weights else k for k in self.routing_keys)

        def pairs(items: tuple[tuple[str, Any], ...]) -> str:
            return ",".join(f"{k}:{v!r}" if isinstance(v, float) else f"{k}:{v}" for k, v in items)

        env = {
            "REDIS_URL": self.redis_url,
            "WORKER_ROUTING_KEYS": keys,
            "WORKER_PRIORITIES": ",".join(p.value for p in self.priorities),
            "WORKER_CONCURRENCY": str(self.concurrency),
            "WORKER_PROCESSES": str(self.processes),
            "JOB_TIMEOUT": "none" if self.job_timeout is None else repr(self.job_timeout),
            "JOB_LEASE_SECONDS": repr(self.lease_seconds),
            "MAX_RETRIES": str(self.max_retries),
            "WORKER_SHUTDOWN_GRACE": repr(self.shutdown_grace),
            "JOB_COMPLETED_TTL": str(self.completed_ttl),
            "JOB_FAILED_TTL": str(self.failed_ttl),
            "DEAD_LETTER_MAX": str(self.dead_letter_cap),
            "JOB_MAX_RECOVERIES": str(self.max_recoveries),
            "RETRY_BACKOFF_BASE": repr(self.retry_policy.base),
            "RETRY_BACKOFF_MAX": repr(self.retry_policy.cap),
            "RESULT_TTL": str(self.result_ttl),
            "RESULT_FAILURE_TTL": str(self.result_failure_ttl),
            "WORKER_QUEUE_SELECTION": self.queue_selection.value,
            "WORKER_MODE": self.mode.value,
            "WORKER_UNKNOWN_JOBS": self.unknown_jobs,
            "WORKER_ROUTE_CONCURRENCY": pairs(self.route_concurrency),
            "WORKER_MAX_WAIT": pairs(self.max_wait),
            "WORKER_JOB_TYPES": ",".join(self.job_types or ()),
            "BANANAS_ALLOW_EVICTION": "1" if self.allow_eviction else "0",
            "BANANAS_WAIT_REPLICAS": str(self.wait_replicas),
            COMPAT_ENV: self.compat or "",
        }
        return env

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
        weighted_keys = pick("routing_keys", "WORKER_ROUTING_KEYS", parse_weighted_routing_keys, None)
        mode = pick("mode", "WORKER_MODE", _enum(WorkerMode), d.mode)
        selection = pick("queue_selection", "WORKER_QUEUE_SELECTION", _enum(QueueSelection), None)
        weights = tuple((k, w) for k, w in (weighted_keys or ()) if w is not None)
        if weights and selection not in (None, QueueSelection.WEIGHTED):
            raise ConfigurationError(
                "WORKER_ROUTING_KEYS", "weights such as 'gpu:6' need WORKER_QUEUE_SELECTION=weighted"
            )
        if selection is None:
            selection = QueueSelection.WEIGHTED if weights else d.queue_selection
        job_types = pick("job_types", "WORKER_JOB_TYPES", _job_types, d.job_types)
        concurrency = pick("concurrency", "WORKER_CONCURRENCY", _positive_int, None)
        if mode is WorkerMode.THIN and concurrency is None:
            concurrency = 1
        if mode is WorkerMode.JOB_SPECIALIZED and not job_types:
            raise ConfigurationError("WORKER_MODE", "job-specialized needs WORKER_JOB_TYPES (the job names to run)")
        routing_keys = tuple(k for k, _ in weighted_keys) if weighted_keys else d.routing_keys
        if mode is WorkerMode.SPECIALIZED and DEFAULT_ROUTING_KEY in routing_keys:
            raise ConfigurationError(
                "WORKER_MODE", "specialized workers serve named routing keys: set WORKER_ROUTING_KEYS without 'default'"
            )
        policy = RetryPolicy(
            base=pick("retry_base", "RETRY_BACKOFF_BASE", _positive_float, d.retry_policy.base),
            cap=pick("retry_cap", "RETRY_BACKOFF_MAX", _positive_float, d.retry_policy.cap),
        )
        settings = cls(
            redis_url=pick("redis_url", "REDIS_URL", _redis_url, d.redis_url),
            routing_keys=routing_keys,
            priorities=pick("priorities", "WORKER_PRIORITIES", parse_priorities, d.priorities),
            concurrency=concurrency or d.concurrency,
            processes=pick("processes", "WORKER_PROCESSES", _positive_int, d.processes),
            job_timeout=pick("job_timeout", "JOB_TIMEOUT", _optional_timeout, d.job_timeout),
            lease_seconds=pick("lease_seconds", "JOB_LEASE_SECONDS", _lease, d.lease_seconds),
            max_retries=pick("max_retries", "MAX_RETRIES", _non_negative_int, d.max_retries),
            shutdown_grace=pick("shutdown_grace", "WORKER_SHUTDOWN_GRACE", _non_negative_float, d.shutdown_grace),
            completed_ttl=pick("completed_ttl", "JOB_COMPLETED_TTL", _ttl, d.completed_ttl),
            failed_ttl=pick("failed_ttl", "JOB_FAILED_TTL", _ttl, d.failed_ttl),
            dead_letter_cap=pick("dead_letter_cap", "DEAD_LETTER_MAX", _non_negative_int, d.dead_letter_cap),
            max_recoveries=pick("max_recoveries", "JOB_MAX_RECOVERIES", _positive_int, d.max_recoveries),
            retry_policy=policy,
            result_ttl=pick("result_ttl", "RESULT_TTL", _ttl, d.result_ttl),
            result_failure_ttl=pick("result_failure_ttl", "RESULT_FAILURE_TTL", _ttl, d.result_failure_ttl),
            queue_selection=selection,
            route_weights=weights,
            route_concurrency=pick("route_concurrency", "WORKER_ROUTE_CONCURRENCY", _route_limits, ()),
            job_types=job_types,
            max_wait=pick("max_wait", "WORKER_MAX_WAIT", _max_wait, ()),
            mode=mode,
            unknown_jobs=pick("unknown_jobs", "WORKER_UNKNOWN_JOBS", _choice("park", "fail"), d.unknown_jobs),
            allow_eviction=pick("allow_eviction", "BANANAS_ALLOW_EVICTION", parse_bool, d.allow_eviction),
            wait_replicas=pick("wait_replicas", WAIT_REPLICAS_ENV, parse_wait_replicas, d.wait_replicas),
            compat=pick("compat", COMPAT_ENV, _compat, d.compat),
        )
        check_compat_layout(settings.compat, settings.redis_url)
        return settings


def check_compat_layout(compat: str | None, redis_url: str) -> None:
    """Migration mode shares one server with the original Go fleet (its unrouted lists
    and processing list): it has no place on Redis Cluster."""
    if compat and is_cluster_url(redis_url):
        raise ConfigurationError(
            COMPAT_ENV,
            f"migration mode ({compat!r}) shares one Redis server with the original Go workers; "
            "it is not available on Redis Cluster (a redis+cluster:// URL)",
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


def parse_weighted_routing_keys(name: str, raw: str) -> tuple[tuple[str, int | None], ...]:
    """``gpu:6,email:3,default`` -> ((gpu, 6), (email, 3), (default, None))."""
    out: list[tuple[str, int | None]] = []
    for part in raw.split(","):
        key, sep, weight = part.strip().partition(":")
        value: int | None = None
        if sep:
            try:
                value = int(weight)
            except ValueError:
                raise ConfigurationError(name, f"weight of {key!r} must be a whole number, got {weight!r}") from None
            if value < 1:
                raise ConfigurationError(name, f"weight of {key!r} must be at least 1, got {value}")
        out.append((key, value))
    keys = parse_routing_keys(name, ",".join(k for k, _ in out))
    return tuple(zip(keys, (w for _, w in out), strict=True))


def _route_limits(name: str, raw: str) -> tuple[tuple[str, int], ...]:
    out: list[tuple[str, int]] = []
    for part in raw.split(","):
        key, sep, limit = part.strip().partition(":")
        if not sep:
            raise ConfigurationError(name, f"expected routing_key:limit pairs such as 'gpu:2', got {part.strip()!r}")
        try:
            validate_routing_key(key)
        except ValidationError as exc:
            raise ConfigurationError(name, str(exc)) from None
        out.append((key, _positive_int(name, limit)))
    return tuple(out)


def _max_wait(name: str, raw: str) -> tuple[tuple[str, float], ...]:
    out: list[tuple[str, float]] = []
    for part in raw.split(","):
        target, sep, seconds = part.strip().partition(":")
        if not sep:
            raise ConfigurationError(name, f"expected key:seconds pairs such as 'low:30', got {part.strip()!r}")
        if target not in ("high", "normal", "low"):
            try:
                validate_routing_key(target)
            except ValidationError as exc:
                raise ConfigurationError(name, str(exc)) from None
        out.append((target, _positive_float(name, seconds)))
    return tuple(out)


def _job_types(name: str, raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(part.strip() for part in raw.split(",") if part.strip()))
    if not names:
        raise ConfigurationError(name, "needs at least one job name")
    return names


def parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    raise ConfigurationError(name, f"expected 1/true/yes/on or 0/false/no/off, got {raw!r}")


def _compat(name: str, raw: str) -> str | None:
    try:
        return parse_compat(raw, name)
    except ValidationError as exc:
        raise ConfigurationError(name, str(exc).partition(": ")[2]) from None


def _choice(*allowed: str) -> Callable[[str, str], str]:
    def parse(name: str, raw: str) -> str:
        value = raw.strip().lower()
        if value not in allowed:
            raise ConfigurationError(name, f"unknown value {raw!r}; expected one of {', '.join(allowed)}")
        return value

    return parse


E = TypeVar("E", bound=StrEnum)


def _enum(kind: type[E]) -> Callable[[str, str], E]:
    def parse(name: str, raw: str) -> E:
        try:
            return kind(raw.strip().lower())
        except ValueError:
            allowed = ", ".join(m.value for m in kind)
            raise ConfigurationError(name, f"unknown value {raw!r}; expected one of {allowed}") from None

    return parse


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


def _ttl(name: str, raw: str) -> int:
    """Seconds a key lives (0: forever), bounded so Redis' EXPIRE can never refuse it."""
    value = _non_negative_int(name, raw)
    if value > MAX_TTL:
        raise ConfigurationError(name, f"must be at most {MAX_TTL} seconds (about 68 years), got {value}")
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

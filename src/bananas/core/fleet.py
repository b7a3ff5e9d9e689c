"""The fleet as operators see it: live workers, jobs in flight, paused queues.

Pure (no I/O): how a worker's entry ``bananas:worker:{id}`` is written and read back,
and the objects ``Client.workers()``, ``Client.running()`` and ``Client.paused()``
return. The CLI, the HTTP API and the exporter all read the fleet through these, so a
field means the same thing everywhere (docs/OPERATIONS.md).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bananas.core.codec import decode_id
from bananas.core.priority import Priority

#: The fields of ``WorkerInfo`` and of ``bananas workers --json``, in order.
WORKER_FIELDS = (
    "id",
    "host",
    "pid",
    "routing_keys",
    "priorities",
    "queue_selection",
    "concurrency",
    "running",
    "processed",
    "failed",
    "started_at",
    "heartbeat_at",
    "version",
    "mode",
    "handlers",
)

#: The fields of ``RunningJob`` and of ``bananas running --json``, in order.
RUNNING_FIELDS = (
    "job_id",
    "name",
    "routing_key",
    "priority",
    "attempt",
    "worker_id",
    "started_at",
    "lease_deadline",
)

#: Worker mode that runs no jobs (it only promotes, recovers and repairs).
NO_JOBS_MODE = "scheduler-only"


@dataclass(frozen=True, slots=True)
class WorkerInfo:
    """One live worker process, as it last announced itself.

    Times are Unix seconds (the worker's clock). ``processed`` counts attempts that
    ended (succeeded or failed), ``failed`` the attempts that failed (retried or dead),
    both since the process started. ``handlers`` are the job names it can run."""

    id: str
    host: str
    pid: int
    routing_keys: list[str]
    priorities: list[str]
    queue_selection: str
    concurrency: int
    running: int
    processed: int
    failed: int
    started_at: float | None
    heartbeat_at: float | None
    version: str
    mode: str
    handlers: list[str]

    @property
    def runs_jobs(self) -> bool:
        return self.mode != NO_JOBS_MODE

    def listens_on(self, routing_key: str) -> bool:
        """Whether this worker takes jobs from ``routing_key``."""
        return self.runs_jobs and routing_key in self.routing_keys

    def can_run(self, routing_key: str, job_name: str) -> bool:
        """Whether this worker takes ``job_name`` jobs parked on ``routing_key``."""
        return self.listens_on(routing_key) and job_name in self.handlers

    def to_json(self) -> dict[str, Any]:
        return {name: _copy(getattr(self, name)) for name in WORKER_FIELDS}

    @classmethod
    def from_hash(cls, worker_id: str, data: Mapping[Any, Any]) -> WorkerInfo:
        """Read an entry written by ``worker_hash`` (or by an older worker, which wrote
        only ``host``, ``pid``, ``routing_keys``, ``running`` and ``heartbeat``)."""
        fields = {decode_id(k): decode_id(v) for k, v in data.items()}
        get = fields.get
        return cls(
            id=worker_id,
            host=get("host", ""),
            pid=_int(get("pid")),
            routing_keys=_split(get("routing_keys")),
            priorities=_split(get("priorities")),
            queue_selection=get("queue_selection", ""),
            concurrency=_int(get("concurrency")),
            running=_int(get("running")),
            processed=_int(get("processed")),
            failed=_int(get("failed")),
            started_at=_float(get("started_at")),
            heartbeat_at=_float(get("heartbeat_at", get("heartbeat"))),
            version=get("version", ""),
            mode=get("mode", ""),
            handlers=_names(get("handlers")),
        )


def worker_hash(
    *,
    host: str,
    pid: int,
    routing_keys: Sequence[str],
    priorities: Sequence[str],
    queue_selection: str,
    concurrency: int,
    started_at: float,
    version: str,
    mode: str,
    handlers: Sequence[str],
    lease_seconds: float,
) -> dict[str, str]:
    """The fields of a worker's entry that do not change while it runs."""
    return {
        "host": host,
        "pid": str(pid),
        # Routing keys and priorities cannot contain a comma; job names can, so they are JSON.
        "routing_keys": ",".join(routing_keys),
        "priorities": ",".join(priorities),
        "queue_selection": queue_selection,
        "concurrency": str(concurrency),
        "started_at": f"{started_at:.3f}",
        "version": version,
        "mode": mode,
        "handlers": json.dumps(sorted(handlers)),
        "lease_seconds": repr(float(lease_seconds)),
    }


def beat_fields(now: float, running: int, processed: int, failed: int) -> dict[str, str]:
    """The fields a worker rewrites at every heartbeat."""
    stamp = f"{now:.3f}"
    # ``heartbeat`` is the name older readers know (docs/WIRE_FORMAT.md).
    return {
        "running": str(running),
        "processed": str(processed),
        "failed": str(failed),
        "heartbeat_at": stamp,
        "heartbeat": stamp,
    }


@dataclass(frozen=True, slots=True)
class RunningJob:
    """A job in flight: leased by a worker that has not finished it yet.

    ``started_at`` is when the attempt started (Unix seconds; None in the instant between
    the worker taking the job and recording its start); ``lease_deadline`` when the
    lease runs out unless the worker renews it (it does, every third of its length)."""

    job_id: str
    name: str
    routing_key: str
    priority: str
    attempt: int
    worker_id: str
    started_at: float | None
    lease_deadline: float

    def to_json(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name in RUNNING_FIELDS}


def worker_of_token(token: str) -> str:
    """The worker id inside a lease token (``{worker_id}:{n}``, see worker/service.py)."""
    head, sep, tail = token.rpartition(":")
    return head if sep and tail.isdigit() else token


@dataclass(frozen=True, slots=True)
class PausedQueue:
    """A paused routing key (``priority`` None: every priority) and since when (Unix seconds)."""

    routing_key: str
    priority: Priority | None
    since: float | None

    def to_json(self) -> dict[str, Any]:
        return {
            "routing_key": self.routing_key,
            "priority": self.priority.value if self.priority is not None else None,
            "since": self.since,
        }


def parse_paused(data: Mapping[Any, Any]) -> list[PausedQueue]:
    """The entries of the pause hash (field ``{routing_key}`` or ``{routing_key}:{priority}``)."""
    out: list[PausedQueue] = []
    for raw_field, raw_value in data.items():
        field, value = decode_id(raw_field), decode_id(raw_value)
        key, sep, prio = field.partition(":")
        try:
            priority = Priority.parse(prio) if sep else None
        except ValueError:
            continue
        out.append(PausedQueue(key, priority, _float(value)))
    out.sort(key=lambda p: (p.routing_key, -1 if p.priority is None else list(Priority).index(p.priority)))
    return out


def _copy(value: Any) -> Any:
    return list(value) if isinstance(value, list) else value


def _int(value: str | None) -> int:
    try:
        return int(value) if value else 0
    except ValueError:
        return 0


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _split(value: str | None) -> list[str]:
    return [part for part in (value or "").split(",") if part]


def _names(value: str | None) -> list[str]:
    if not value:
        return []
    try:
        names = json.loads(value)
    except ValueError:
        return []
    return [n for n in names if isinstance(n, str)] if isinstance(names, list) else []

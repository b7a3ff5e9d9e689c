"""A small stand-in for the ORIGINAL Bananas (Go service and worker, Go scheduler, its
Python and TypeScript SDKs), behaving exactly as tests/data/original-bananas-behaviour.json
describes what the real one reads and writes. Used by the compatibility tests and the
mixed-fleet fault test; nothing here is Bananas code.

- producers: the Go client pushes ``default`` (or empty) jobs to the legacy list
  ``bananas:queue:<priority>`` and others to ``bananas:route:<routing_key>:queue:<priority>``;
  the SDKs push everything to the legacy list, whatever its routing key; no wake-up.
- ``OriginalWorker``: BRPOPLPUSH from the legacy lists only (high, normal, low) into
  ``bananas:queue:processing`` (no lease, no heartbeat); retry rule ``attempts += 1``,
  ``attempts < max_retries`` -> ``pending`` + ``scheduled_for`` + ZADD at now + 2^attempts
  seconds (scaled by ``backoff_scale`` to keep tests short), else ``failed`` + LPUSH dead.
  Results: hash with ``status``, ``completed_at`` (RFC 3339, seconds, Z), ``duration_ms``
  (integer text), ``result``/``error``; EXPIRE; PUBLISH ``ready``.
- ``scheduler_pass``: ZRANGEBYSCORE -inf <now as integer>, MGET, then a plain pipeline (no
  claim) of SET record (status left as it was), LPUSH, ZREM.
- readers: ``go_wait_for_result`` accepts only the message ``ready``; ``read_like_go``,
  ``read_like_python_sdk``, ``read_like_typescript_sdk`` apply each reader's parsing rules.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

import redis

LEGACY = ("bananas:queue:high", "bananas:queue:normal", "bananas:queue:low")
PROCESSING = "bananas:queue:processing"
SCHEDULED = "bananas:queue:scheduled"
DEAD = "bananas:queue:dead"
VECTORS = os.path.join(os.path.dirname(__file__), "data", "original-bananas-behaviour.json")

#: The fields of the original's Go ``Job`` struct: encoding/json keeps these and nothing else.
GO_JOB_FIELDS = (
    "id", "name", "description", "payload", "status", "priority", "created_at", "updated_at",
    "scheduled_for", "attempts", "max_retries", "error", "routing_key",
)  # fmt: skip
#: Go's time.Parse(time.RFC3339, ...): fraction optional, offset required.
_RFC3339 = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)")


def behaviour() -> dict[str, Any]:
    with open(VECTORS, encoding="utf-8") as fh:
        return dict(json.load(fh))


def go_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def go_seconds(ts: float | None = None) -> str:
    return datetime.fromtimestamp(time.time() if ts is None else ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- producers ----------------------------------------------------------------------------


def go_client_enqueue(r: redis.Redis, record: Mapping[str, Any]) -> str:
    key = record.get("routing_key") or "default"
    prio = record["priority"]
    queue = f"bananas:queue:{prio}" if key == "default" else f"bananas:route:{key}:queue:{prio}"
    stored = {**record, "routing_key": key}
    r.set(f"bananas:job:{record['id']}", json.dumps(stored))
    r.lpush(queue, record["id"])
    return queue


def sdk_enqueue(r: redis.Redis, record: Mapping[str, Any]) -> str:
    """The original Python/TypeScript SDKs: always the legacy list."""
    queue = f"bananas:queue:{record['priority']}"
    r.set(f"bananas:job:{record['id']}", json.dumps(dict(record)))
    r.lpush(queue, record["id"])
    return queue


def sdk_record(job_id: str, name: str, payload: Any, priority: str = "normal", routing_key: str = "") -> dict[str, Any]:
    now = datetime.now(UTC).isoformat()
    return {
        "id": job_id, "name": name, "description": "", "payload": payload, "status": "pending",
        "priority": priority, "created_at": now, "updated_at": now, "attempts": 0, "max_retries": 3,
        "error": "", "routing_key": routing_key,
    }  # fmt: skip


# -- the Go worker --------------------------------------------------------------------------


class HandlerFailed(Exception):
    pass


class OriginalWorker:
    """One Go worker goroutine, run in a thread. ``handler(record) -> JSON value`` raises
    to fail the attempt. ``on_run(job_id)`` is called for each handler run that returned."""

    def __init__(
        self,
        url: str,
        handler: Callable[[dict[str, Any]], Any],
        *,
        backoff_scale: float = 1.0,
        result_ttl: int = 3600,
        on_run: Callable[[str], None] | None = None,
    ) -> None:
        self._r = redis.Redis.from_url(url)
        self._handler = handler
        self._scale = backoff_scale
        self._ttl = result_ttl
        self._on_run = on_run
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="original-worker", daemon=True)
        self.taken: list[str] = []
        self.completed = 0
        self.retried = 0

    def start(self) -> OriginalWorker:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        self._thread.join(timeout)
        assert not self._thread.is_alive(), "the simulated original worker did not stop"
        self._r.close()

    def _loop(self) -> None:
        while not self._stop.is_set():
            taken = None
            for queue in LEGACY:
                taken = self._r.brpoplpush(queue, PROCESSING, timeout=0.05)
                if taken is not None:
                    break
            if taken is not None:
                self.run_one(taken.decode())

    def run_one(self, job_id: str) -> None:
        self.taken.append(job_id)
        key = f"bananas:job:{job_id}"
        raw = self._r.get(key)
        if raw is None:
            self._r.lrem(PROCESSING, 1, job_id)
            return
        job = {k: v for k, v in json.loads(raw).items() if k in GO_JOB_FIELDS}  # encoding/json of the struct
        job["status"] = "processing"
        job["updated_at"] = go_now()
        self._r.set(key, json.dumps(job))
        started = time.monotonic()
        try:
            value = self._handler(job)
        except Exception as exc:
            self._fail(job, str(exc) or type(exc).__name__, started)
        else:
            if self._on_run is not None:
                self._on_run(job_id)
            job["status"] = "completed"
            job["updated_at"] = go_now()
            fields = {"status": "completed", "result": json.dumps(value)}
            self._finish(job, fields, started)
            self.completed += 1
        self._r.lrem(PROCESSING, 1, job_id)

    def _fail(self, job: dict[str, Any], error: str, started: float) -> None:
        key = f"bananas:job:{job['id']}"
        job["attempts"] = int(job.get("attempts") or 0) + 1
        job["error"] = error
        job["updated_at"] = go_now()
        if job["attempts"] < int(job.get("max_retries") or 0):
            due = time.time() + (2 ** job["attempts"]) * self._scale
            job["status"] = "pending"
            job["scheduled_for"] = datetime.fromtimestamp(due, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
            pipe = self._r.pipeline(transaction=False)
            pipe.set(key, json.dumps(job))
            pipe.zadd(SCHEDULED, {job["id"]: due})
            pipe.execute()
            self.retried += 1
            return
        job["status"] = "failed"
        self._r.set(key, json.dumps(job))
        self._r.lpush(DEAD, job["id"])
        self._finish(job, {"status": "failed", "error": error}, started)

    def _finish(self, job: dict[str, Any], fields: dict[str, str], started: float) -> None:
        self._r.set(f"bananas:job:{job['id']}", json.dumps(job))
        result = f"bananas:result:{job['id']}"
        fields = {**fields, "completed_at": go_seconds(), "duration_ms": str(int((time.monotonic() - started) * 1000))}
        pipe = self._r.pipeline(transaction=False)
        pipe.hset(result, mapping=fields)
        pipe.expire(result, self._ttl)
        pipe.publish(f"bananas:result:notify:{job['id']}", "ready")
        pipe.execute()


# -- the Go scheduler ---------------------------------------------------------------------


def scheduler_pass(r: redis.Redis, *, between: Callable[[], None] | None = None) -> int:
    """One tick of the original scheduler: no claim, so it races any other promoter.
    ``between`` runs after the read and before the writes (to widen the race in tests)."""
    due = [m.decode() for m in r.zrangebyscore(SCHEDULED, "-inf", int(time.time()))]
    if not due:
        return 0
    raws = r.mget([f"bananas:job:{i}" for i in due])
    if between is not None:
        between()
    pipe = r.pipeline(transaction=False)
    for job_id, raw in zip(due, raws, strict=True):
        if raw is None:
            continue
        job = json.loads(raw)
        key = job.get("routing_key") or "default"
        prio = job.get("priority") or "normal"
        queue = f"bananas:queue:{prio}" if key == "default" else f"bananas:route:{key}:queue:{prio}"
        pipe.set(f"bananas:job:{job_id}", raw)  # status left as it was
        pipe.lpush(queue, job_id)
        pipe.zrem(SCHEDULED, job_id)
    pipe.execute()
    return len(due)


class OriginalScheduler:
    def __init__(self, url: str, tick: float = 1.0) -> None:
        self._r = redis.Redis.from_url(url)
        self._tick = tick
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="original-scheduler", daemon=True)
        self.promoted = 0

    def start(self) -> OriginalScheduler:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._r.close()

    def _loop(self) -> None:
        while not self._stop.wait(self._tick):
            self.promoted += scheduler_pass(self._r)


# -- the original's result readers ---------------------------------------------------------


def go_wait_for_result(r: redis.Redis, job_id: str, timeout: float, subscribed: threading.Event | None = None) -> bool:
    """Go ``WaitForResult``: subscribe, then accept only the message ``ready``."""
    pubsub = r.pubsub()
    pubsub.subscribe(f"bananas:result:notify:{job_id}")
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            message = pubsub.get_message(timeout=0.05)
            if message is None:
                continue
            if message["type"] == "subscribe" and subscribed is not None:
                subscribed.set()
            if message["type"] == "message" and message["data"] == b"ready":
                return True
        return False
    finally:
        pubsub.close()


def _fields(r: redis.Redis, job_id: str) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in r.hgetall(f"bananas:result:{job_id}").items()}


def read_like_go(r: redis.Redis, job_id: str) -> dict[str, Any]:
    """time.Parse(RFC3339, completed_at) (error when missing or malformed) and
    strconv.ParseInt(duration_ms) (error on a fraction)."""
    fields = _fields(r, job_id)
    completed_at = fields.get("completed_at", "")
    if not _RFC3339.fullmatch(completed_at):
        raise ValueError(f"parsing time {completed_at!r} as RFC3339")
    duration = fields.get("duration_ms", "")
    if not re.fullmatch(r"[+-]?\d+", duration):
        raise ValueError(f"strconv.ParseInt: parsing {duration!r}: invalid syntax")
    return {"status": fields["status"], "completed_at": completed_at, "duration_ms": int(duration), **fields}


def read_like_python_sdk(r: redis.Redis, job_id: str) -> dict[str, Any]:
    fields = _fields(r, job_id)
    return {
        "status": fields["status"],
        "duration_ms": int(fields["duration_ms"]),  # raises on "0.681"
        "completed_at": datetime.fromisoformat(fields["completed_at"]),  # KeyError when missing
        "result": json.loads(fields["result"]) if "result" in fields else None,
        "error": fields.get("error"),
    }


def read_like_typescript_sdk(r: redis.Redis, job_id: str) -> dict[str, Any]:
    """parseInt(duration_ms) and new Date(completed_at): NaN / Invalid Date instead of errors."""
    fields = _fields(r, job_id)
    digits = re.match(r"\s*[+-]?\d+", fields.get("duration_ms", ""))
    duration = int(digits.group()) if digits else math.nan
    text = fields.get("completed_at")
    try:
        when: datetime | None = datetime.fromisoformat(text) if text else None
    except ValueError:
        when = None
    return {"status": fields["status"], "duration_ms": duration, "completed_at": when}

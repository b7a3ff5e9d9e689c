"""What the API and the pages do, over the clients and the admin modules; plain JSON out.

Every read goes through the shared read model (``Client`` and its ``queue_stats``,
``workers``, ``running``; ``DeadLetters``; ``LimitsAdmin``; the scheduler store); the
dashboard keeps no state of its own, so a restart loses nothing. All methods block:
the HTTP layer runs them in its thread pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from bananas.client import Client
from bananas.client.inspect import set_owners
from bananas.client.locate import locate
from bananas.core.clock import format_time, to_datetime
from bananas.core.priority import DEFAULT_PRIORITIES, Priority
from bananas.core.routing import validate_routing_key
from bananas.dashboard.errors import ApiError, conflict, invalid, not_found
from bananas.dlq import DeadLetter, DeadLetters, RetryOutcome
from bananas.errors import MalformedJobError, PayloadError, ValidationError
from bananas.limits_admin import LimitsAdmin
from bananas.redis import keys
from bananas.scheduler.store import read_states

T = TypeVar("T")

#: Largest page any list endpoint returns.
MAX_PAGE = 500
#: Problems listed on the overview (the count says how many there are in all).
MAX_PROBLEMS = 50
PRIORITIES = [p.value for p in DEFAULT_PRIORITIES]
#: Minutes of throughput history per routing key on the overview.
CHART_MINUTES = 15


@dataclass(frozen=True, slots=True)
class Page:
    items: list[Any]
    total: int
    offset: int
    limit: int

    def to_json(self) -> dict[str, Any]:
        return {"items": self.items, "total": self.total, "offset": self.offset, "limit": self.limit}


def paginate(items: Sequence[T], offset: int, limit: int, render: Callable[[T], Any]) -> Page:
    return Page([render(i) for i in items[offset : offset + limit]], len(items), offset, limit)


class Backend:
    """The dashboard's operations on one Redis (through one blocking ``Client``)."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.dead = DeadLetters(client)
        self.limits_admin = LimitsAdmin(client.redis, client.layout)

    # -- health ---------------------------------------------------------------------

    def ping(self) -> None:
        self.client.redis.ping()

    # -- jobs -----------------------------------------------------------------------

    def submit(
        self,
        name: str,
        payload: Any,
        *,
        priority: str | None,
        routing_key: str | None,
        delay: float | None,
        max_retries: int | None,
        expires_in: float | None,
    ) -> str:
        options: dict[str, Any] = {"priority": priority, "routing_key": routing_key, "expires_in": expires_in}
        if max_retries is not None:
            options["max_retries"] = max_retries
        try:
            if delay is not None:
                return self.client.schedule_job(name, payload, delay=delay, **options)
            return self.client.submit_job(name, payload, **options)
        except PayloadError as exc:
            raise invalid("payload", "json", str(exc)) from None
        except ValidationError as exc:
            raise invalid(_field_of(str(exc)), "value", str(exc)) from None

    def job(self, job_id: str) -> dict[str, Any]:
        try:
            job = self.client.get_job(job_id)
        except MalformedJobError as exc:
            return {"id": job_id, "status": "unreadable", "error": str(exc), "location": None}
        if job is None:
            raise not_found(f"no job with id {job_id!r} (it never existed, or its record expired)")
        record = job.to_dict()
        location = locate(self.client.redis, job, self.client.layout).to_json()
        if location["place"] in ("ready", "parked"):
            location["reason"] += self._held_because(job.routing_key, job.priority.value)
        record["location"] = location
        return record

    def _held_because(self, routing_key: str, priority: str) -> str:
        """Why a waiting job does not start: its routing key is paused, or nobody listens."""
        for paused in self.client.paused():
            if paused.routing_key == routing_key and paused.priority in (None, Priority.parse(priority)):
                scope = "routing key" if paused.priority is None else f"routing key at priority {priority}"
                return f"; the {scope} is paused, so no worker starts it until it is resumed"
        if not any(routing_key in w.routing_keys for w in self.client.workers()):
            return f"; no live worker listens on {routing_key!r}, so it waits until one starts"
        return ""

    def result(self, job_id: str) -> dict[str, Any]:
        found = self.client.get_job_result(job_id)
        if found is None:
            job = self.client.get_job(job_id)
            if job is None:
                raise not_found(f"no job with id {job_id!r} and no stored result")
            return {"id": job_id, "status": job.status.value, "finished": False, "result": None, "error": None}
        return {
            "id": job_id,
            "status": found.status,
            "finished": True,
            "result": found.result,
            "error": found.error,
            "name": found.name,
            "routing_key": found.routing_key,
            "attempts": found.attempts,
            "started_at": format_time(found.started_at) if found.started_at else None,
            "finished_at": format_time(found.finished_at) if found.finished_at else None,
            "duration_ms": found.duration_ms,
            "worker": found.worker,
        }

    def cancel(self, job_id: str) -> dict[str, Any]:
        if self.client.cancel(job_id):
            return {"id": job_id, "cancelled": True}
        job = self.client.get_job(job_id)
        if job is None:
            raise not_found(f"no job with id {job_id!r}")
        raise conflict(f"job {job_id} is {job.status.value}: only pending, scheduled or running jobs can be cancelled",
                       status=job.status.value)  # fmt: skip

    # -- fleet ----------------------------------------------------------------------

    def queues(self) -> dict[str, Any]:
        return self.client.queue_stats().to_json()

    def workers(self, offset: int, limit: int, routing_key: str | None) -> Page:
        rows = [w.to_json() for w in self.client.workers()]
        if routing_key:
            rows = [w for w in rows if routing_key in w.get("routing_keys", ())]
        rows.sort(key=lambda w: (str(w.get("host")), str(w.get("id"))))
        return paginate(rows, offset, limit, lambda w: w)

    def running(self, offset: int, limit: int, routing_key: str | None, name: str | None) -> Page:
        rows = [r.to_json() for r in self.client.running()]
        if routing_key:
            rows = [r for r in rows if r.get("routing_key") == routing_key]
        if name:
            rows = [r for r in rows if r.get("name") == name]
        rows.sort(key=lambda r: (r.get("started_at") or "", r.get("job_id") or ""))
        return paginate(rows, offset, limit, lambda r: r)

    def pause(self, routing_key: str, priority: str | None, *, resume: bool = False) -> dict[str, Any]:
        action = self.client.resume if resume else self.client.pause
        try:
            action(routing_key, priority)
        except ValidationError as exc:
            raise invalid(_field_of(str(exc), "routing_key"), "value", str(exc)) from None
        return {"routing_key": routing_key, "priority": priority, "paused": not resume}

    # -- dead letters ---------------------------------------------------------------

    def dead_page(self, cursor: int, limit: int, routing_key: str | None, name: str | None) -> dict[str, Any]:
        page = self.dead.page(cursor=cursor, limit=limit, routing_key=routing_key or None, name=name or None)
        return {
            "items": [e.summary() for e in page.items],
            "total": page.total,
            "cursor": cursor,
            "next_cursor": page.next_cursor,
            "limit": limit,
        }

    def dead_entry(self, job_id: str) -> DeadLetter:
        entry = self.dead.get(job_id)
        if entry is None:
            raise not_found(f"job {job_id!r} is not in the dead letters")
        return entry

    def dead_retry(self, job_id: str) -> dict[str, Any]:
        result = self.dead.retry(job_id)
        if result.outcome is RetryOutcome.RETRIED:
            return {"id": job_id, "retried": True, "queue": result.queue}
        if result.outcome is RetryOutcome.NOT_DEAD:
            raise not_found(f"job {job_id!r} is not in the dead letters")
        detail = f"job {job_id} cannot be retried: {result.outcome}" + (f" ({result.detail})" if result.detail else "")
        raise conflict(detail, reason=str(result.outcome))

    def dead_delete(self, job_id: str) -> dict[str, Any]:
        if not self.dead.delete(job_id):
            raise not_found(f"job {job_id!r} is not in the dead letters")
        return {"id": job_id, "deleted": True}

    def dead_purge(self, routing_key: str | None, name: str | None) -> dict[str, Any]:
        return {"removed": self.dead.purge(routing_key=routing_key, name=name)}

    # -- schedules and limits -------------------------------------------------------

    def schedules(self, offset: int, limit: int) -> Page:
        return paginate(read_states(self.client.redis), offset, limit, lambda s: s.to_dict())

    def limits(self) -> dict[str, Any]:
        view = self.limits_admin.read()
        lim = view.limits
        return {
            "routes": [
                {
                    "routing_key": key,
                    "concurrency": lim.route_concurrency.get(key),
                    "rate": str(lim.route_rate[key]) if key in lim.route_rate else None,
                    "in_flight": view.inflight.get(key, 0),
                }
                for key in sorted(set(lim.route_concurrency) | set(lim.route_rate))
            ],
            "jobs": [{"name": name, "rate": str(rate)} for name, rate in sorted(lim.job_rate.items())],
        }

    # -- the overview ---------------------------------------------------------------

    def expired_leases(self, now: float) -> int:
        """Leases past their deadline: jobs of a lost worker waiting for recovery."""
        layout = self.client.layout
        owners = [""]
        if layout.cluster:  # one lease set per routing key (its slot)
            owners = set_owners(layout, self.client.redis.smembers(keys.ROUTING_KEYS))
        pipe = self.client.redis.pipeline(transaction=False)
        for key in owners:
            pipe.zcount(layout.leases(key), "-inf", f"({int(now * 1000)}")
        return sum(int(n) for n in pipe.execute())

    def throughput(self, routing_keys: Sequence[str], now: float, minutes: int = CHART_MINUTES) -> dict[str, list[int]]:
        """Jobs ended per minute for each routing key, oldest minute first, the current
        (partial) minute last: one HMGET per minute, for the given keys only."""
        if not routing_keys:
            return {}
        current = int(now // 60)
        pipe = self.client.redis.pipeline(transaction=False)
        for minute in range(current - minutes + 1, current + 1):
            pipe.hmget(keys.throughput(minute), list(routing_keys))
        replies = pipe.execute()
        return {key: [int(reply[i] or 0) for reply in replies] for i, key in enumerate(routing_keys)}

    def overview(self, offset: int, limit: int, search: str | None, problems_only: bool) -> dict[str, Any]:
        now = time.time()
        stats = self.queues()
        limits = self.limits()
        expired = self.expired_leases(now)
        by_key: dict[str, dict[str, Any]] = {}
        for route in stats.get("routes", []):
            row = dict(route)
            row["priorities"] = {p: {"ready": 0, "oldest_age_seconds": None, "paused": False} for p in PRIORITIES}
            by_key[route["routing_key"]] = row
        for queue in stats.get("queues", []):
            if queue.get("legacy"):
                continue
            found = by_key.get(queue["routing_key"])
            if found is not None and queue["priority"] in found["priorities"]:
                found["priorities"][queue["priority"]] = {
                    "ready": queue["ready"],
                    "oldest_age_seconds": queue.get("oldest_age_seconds"),
                    "paused": bool(queue.get("paused")),
                }
        problems = list(stats.get("problems", []))
        problems += _held_back(by_key.values(), limits, expired)
        flagged = {p["routing_key"] for p in problems if p.get("routing_key")}
        rows = sorted(by_key.values(), key=lambda r: r["routing_key"])
        if search:
            rows = [r for r in rows if search.lower() in r["routing_key"].lower()]
        if problems_only:
            rows = [r for r in rows if r["routing_key"] in flagged]
        page = rows[offset : offset + limit]
        charts = self.throughput([r["routing_key"] for r in page], now)
        for row in page:
            row["throughput"] = charts.get(row["routing_key"], [])
        return {
            "generated_at": format_time(to_datetime(now)),
            "priorities": PRIORITIES,
            "totals": {
                "routes": len(by_key),
                "ready": sum(r.get("ready", 0) for r in by_key.values()),
                "in_flight": sum(r.get("in_flight", 0) for r in by_key.values()),
                "scheduled": stats.get("scheduled", 0),
                "dead": stats.get("dead", 0),
                "workers": stats.get("workers", 0),
                "expired_leases": expired,
            },
            "problems": problems[:MAX_PROBLEMS],
            "problems_total": len(problems),
            "routes": page,
            "routes_total": len(rows),
            "offset": offset,
            "limit": limit,
        }


def _held_back(
    routes: Iterable[dict[str, Any]], limits: dict[str, Any], expired_leases: int
) -> Iterable[dict[str, Any]]:
    """The problems only the dashboard adds to the read model's: routing keys held back
    by a fleet limit, and leases that ran out (their jobs wait for recovery)."""
    ready = {row["routing_key"]: row.get("ready", 0) for row in routes}
    for route_limit in limits.get("routes", []):
        key, cap = route_limit["routing_key"], route_limit.get("concurrency")
        if cap is not None and route_limit.get("in_flight", 0) >= cap and ready.get(key, 0) > 0:
            yield {
                "kind": "limited",
                "routing_key": key,
                "message": f"{key}: held back by its fleet concurrency limit ({route_limit['in_flight']} of {cap} in "
                f"flight), {ready[key]} job(s) waiting",
            }
        elif route_limit.get("rate") and ready.get(key, 0) > 0:
            yield {
                "kind": "limited",
                "routing_key": key,
                "message": f"{key}: rate limited to {route_limit['rate']}, {ready[key]} job(s) waiting",
            }
    if expired_leases:
        yield {
            "kind": "expired_leases",
            "routing_key": None,
            "message": f"{expired_leases} job(s) whose worker stopped renewing the lease, waiting for recovery",
        }


def _field_of(message: str, default: str = "name") -> str:
    """The request field a core ``ValidationError`` is about (its message names it)."""
    lowered = message.lower()
    for name in ("routing key", "routing_key", "priority", "max_retries", "delay", "expires_in", "payload"):
        if name in lowered:
            return name.replace(" ", "_")
    return default


def error_for_routing_key(routing_key: str) -> ApiError | None:
    """A 422 naming ``routing_key`` when it breaks the rule, else None."""
    try:
        validate_routing_key(routing_key)
    except ValidationError as exc:
        return invalid("routing_key", "pattern", str(exc))
    return None


def parse_priority(value: str | None) -> str | None:
    if value is None:
        return None
    try:
        return Priority.parse(value).value
    except ValidationError as exc:
        raise invalid("priority", "enum", str(exc)) from None

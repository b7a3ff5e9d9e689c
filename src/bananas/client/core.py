"""The I/O-free half of both clients: validation, routing and the script calls to make.

``Client`` and ``AsyncClient`` only add the round trip, so they cannot drift apart.

Routing precedence, field by field: a routing key given in the call (even ``"default"``)
> the first matching rule of the route table > ``default``; a priority given in the call
> the matching rule's priority > normal. ``None`` in a method's ``routing_key`` or
``priority`` means "not given".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from redis.crc import key_slot

from bananas.config import DEFAULT_FAILED_TTL, DEFAULT_RESULT_FAILURE_TTL
from bananas.core import codec
from bananas.core.clock import SYSTEM_CLOCK, Clock, format_time, to_datetime
from bananas.core.compat import ORIGINAL
from bananas.core.job import (
    DEFAULT_MAX_RETRIES,
    FINAL_STATUSES,
    MAX_TTL,
    TRACEPARENT,
    Job,
    JobStatus,
    RecordTemplate,
    new_job,
    new_job_ids,
    validate_new_job,
)
from bananas.core.lifecycle import mark_cancelled
from bananas.core.priority import Priority
from bananas.core.result import CANCELLED, result_fields
from bananas.core.router import Route, Router
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.core.workflow import (
    DEFAULT_WORKFLOW_RESULT_TTL,
    DEFAULT_WORKFLOW_TTL,
    Signature,
    Workflow,
    WorkflowPlan,
    plan_workflow,
    stages_of,
)
from bananas.errors import MalformedJobError, PayloadError, ValidationError
from bananas.redis import calls, connection, keys
from bananas.redis.keys import KeyLayout
from bananas.redis.scripts import Call

#: Jobs per script call in ``submit_many``; larger batches are split, then sent together.
SUBMIT_MANY_CHUNK = 1000
#: Longest delay accepted by ``schedule_job`` (ten years): anything above is a bug.
MAX_DELAY_SECONDS = 10 * 366 * 24 * 3600.0
#: Times ``cancel`` re-reads a record that changed under it before giving up.
CANCEL_TRIES = 10
#: Longest ``expires_in`` accepted (ten years), like the longest delay.
MAX_EXPIRES_IN_SECONDS = MAX_DELAY_SECONDS
#: Environment variable naming a route table file, read by clients built without ``router``.
ROUTES_ENV = "BANANAS_ROUTES"
#: Why a workflow spanning routing keys is refused on Redis Cluster: its hand-offs are
#: atomic scripts, and one script runs in one slot (= one routing key).
CLUSTER_WORKFLOW_ONE_KEY = (
    "on Redis Cluster every step of a workflow must use one routing key (docs/WORKFLOWS.md)"
)


def layout_of_client(client: object) -> KeyLayout:
    """The key layout of the server a redis-py client talks to: a cluster client's is
    the cluster layout, any other's the standalone one."""
    return keys.CLUSTER if connection.is_cluster_client(client) else keys.STANDALONE


def router_from_environment(environ: Mapping[str, str]) -> Router | None:
    """The route table named by ``$BANANAS_ROUTES``, loaded and validated, or ``None``."""
    path = environ.get(ROUTES_ENV, "").strip()
    return Router.from_toml(path) if path else None


@dataclass(frozen=True, slots=True)
class ClientCore:
    max_payload_bytes: int | None = codec.DEFAULT_MAX_PAYLOAD_BYTES
    clock: Clock = SYSTEM_CLOCK
    router: Router | None = None
    #: Migration mode (``"original"``, see ``bananas.core.compat``): jobs of the
    #: ``default`` routing key go to the legacy lists the original Go workers read.
    compat: str | None = None
    #: The key names of the server (redis/keys.py), from the client's URL.
    layout: KeyLayout = keys.STANDALONE

    def __post_init__(self) -> None:
        limit = self.max_payload_bytes
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
            raise ValidationError(f"max_payload_bytes must be a whole number of bytes >= 1 (or None), got {limit!r}")
        if self.compat == ORIGINAL and self.layout.cluster:
            # The original Go fleet reads unrouted lists on one server; they have no slot.
            raise ValidationError(
                "migration mode (compat='original', $BANANAS_COMPAT) does not run on Redis Cluster:"
                " the original Go workers read unrouted lists on one server"
            )

    def registry_commands(self, routing_keys: Iterable[str], registered: set[str]) -> list[tuple[Any, ...]]:
        """Cluster layout: the ``SADD`` that adds ``routing_keys`` to the fleet-wide
        registry (``bananas:routing_keys``), for those this client has not added yet
        (``registered``, the caller's cache: mark them once the command succeeded).
        Inside the submit scripts the routing key only reaches a slot-local stand-in
        (``layout.known``): the registry lives in another slot. Standalone: nothing
        (the scripts add to the registry itself)."""
        if not self.layout.cluster:
            return []
        new = [key for key in dict.fromkeys(routing_keys) if key not in registered]
        return [("SADD", keys.ROUTING_KEYS, *new)] if new else []

    def routing_keys_of(self, job_ids: Iterable[str]) -> list[str]:
        """The routing keys the ids carry (Cluster layout; standalone ids carry none)."""
        found = {self.layout.routing_key_of(job_id) for job_id in job_ids}
        return sorted(key for key in found if key is not None)

    def knows(self, job_id: str) -> bool:
        """Whether ``job_id`` can name a job of this layout: on Cluster an id carries its
        routing key (``<routing_key>~<uuid>``); one without cannot exist there."""
        return not self.layout.cluster or self.layout.routing_key_of(job_id) is not None

    def single_slot(self, batch: Sequence[Call]) -> bool:
        """Whether ``batch`` may run as one transaction: always standalone; on Cluster
        only when every call's keys share one slot (one routing key)."""
        if not self.layout.cluster:
            return True
        return len({key_slot(key.encode()) for call in batch for key in call.keys}) <= 1

    def build(
        self,
        name: str,
        payload: Any,
        priority: Priority | str,
        routing_key: str,
        max_retries: int,
        description: str | None,
    ) -> Job:
        return new_job(
            name,
            payload,
            priority,
            routing_key,
            now=to_datetime(self.clock.now()),
            max_retries=max_retries,
            description=description,
            max_payload_bytes=self.max_payload_bytes,
            # Standalone: today's uuid4 (made by new_job); Cluster: <routing_key>~<uuid>.
            job_id=self.layout.new_job_id(routing_key) if self.layout.cluster else None,
        )

    def route(
        self, name: str, payload: Any, routing_key: str | None, priority: Priority | str | None
    ) -> tuple[str, Priority | str]:
        """The routing key and priority a job gets: explicit > route table > defaults."""
        if routing_key is not None and priority is not None:
            return routing_key, priority
        found = self.router.resolve(name, payload) if self.router is not None else None
        return _choose(found, routing_key, priority)

    def _bulk_route(
        self, name: str, routing_key: str | None, priority: Priority | str | None
    ) -> Callable[[Any], tuple[str, Priority | str]]:
        if self.router is None or (routing_key is not None and priority is not None):
            chosen = _choose(None, routing_key, priority)
            return lambda _payload: chosen
        resolve = self.router.resolver(name)
        return lambda payload: _choose(resolve(payload), routing_key, priority)

    def submit(
        self,
        name: str,
        payload: Any,
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
        expires_in: float | timedelta | None = None,
        unique_key: str | None = None,
        unique_for: float | timedelta | None = None,
        traceparent: str | None = None,
    ) -> tuple[str, Call]:
        routing_key, priority = self.route(name, payload, routing_key, priority)
        job = self.build(name, payload, priority, routing_key, max_retries, description)
        _set_result_ttl(job, result_ttl)
        self._set_expiry(job, expires_in)
        _set_traceparent(job, traceparent)
        if unique_key is not None or unique_for is not None:
            key, seconds = check_unique(unique_key, unique_for)
            job.extra["unique_key"] = key
            return job.id, calls.submit_unique(job, job.to_record(), key, seconds, layout=self.layout)
        return job.id, calls.submit(
            job, job.to_record(), layout=self.layout, queue=self._queue(routing_key, job.priority)
        )

    def submit_workflow(
        self,
        workflow: Workflow,
        *,
        workflow_ttl: int | None = None,
        result_ttl: int | None = None,
        traceparent: str | None = None,
    ) -> tuple[WorkflowPlan, Call]:
        """Build every step (routed like any submit) and the call that stores the
        workflow and queues its first stage."""
        ttl = _seconds("workflow_ttl", workflow_ttl, DEFAULT_WORKFLOW_TTL)
        kept = _seconds("result_ttl", result_ttl, DEFAULT_WORKFLOW_RESULT_TTL)

        def build(signature: Signature) -> Job:
            routing_key, priority = self.route(
                signature.name, signature.payload, signature.routing_key, signature.priority
            )
            retries = DEFAULT_MAX_RETRIES if signature.max_retries is None else signature.max_retries
            job = self.build(signature.name, signature.payload, priority, routing_key, retries, signature.description)
            if signature.timeout is not None:
                job.extra["timeout"] = signature.timeout
            _set_result_ttl(job, signature.result_ttl)
            _set_traceparent(job, traceparent)
            return job

        workflow_id: str | None = None
        if self.layout.cluster:
            # The workflow's id carries its first step's routing key: its state lives there.
            stages = stages_of(workflow)
            first_step = stages[0].steps[0] if stages and stages[0].steps else None
            if first_step is not None:
                first_key, _ = self.route(
                    first_step.name, first_step.payload, first_step.routing_key, first_step.priority
                )
                validate_routing_key(first_key)
                workflow_id = self.layout.new_workflow_id(first_key)
        plan = plan_workflow(workflow, build, workflow_id)
        if self.layout.cluster and len({job.routing_key for stage in plan.stages for job in stage}) > 1:
            raise ValidationError(CLUSTER_WORKFLOW_ONE_KEY)
        if result_ttl is not None:
            for stage in plan.stages:
                for job in stage:
                    job.extra["workflow"]["result_ttl"] = kept
        created = format_time(to_datetime(self.clock.now()))
        first = [(job, job.to_record()) for job in plan.stages[0]]
        waiting = [(job.id, job.to_record()) for stage in plan.stages[1:] for job in stage]
        return plan, calls.submit_workflow(plan.id, plan.spec(created), ttl, first, waiting, layout=self.layout)

    def submit_many(
        self,
        name: str,
        payloads: Sequence[Any],
        priority: Priority | str | None = None,
        *,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        expires_in: float | timedelta | None = None,
        traceparent: str | None = None,
    ) -> tuple[list[str], list[Call]]:
        """Validate every payload before anything is sent: one bad payload, no job written.

        Each payload is routed on its own (a callable rule may look at it); jobs are then
        grouped by routing key and priority, one script call per group (and chunk), all
        sent together by the caller.
        """
        if isinstance(payloads, str | bytes | dict) or not isinstance(payloads, Sequence):
            raise ValidationError("payloads must be a list of JSON values, one per job")
        # Checked once up front, so an error names the argument rather than a payload.
        if priority is not None:
            Priority.parse(priority)
        if routing_key is not None:
            validate_routing_key(routing_key)
        validate_new_job(name, priority or Priority.NORMAL, routing_key or DEFAULT_ROUTING_KEY, max_retries, None)
        route = self._bulk_route(name, routing_key, priority)
        now = to_datetime(self.clock.now())
        expiry = self.expiry_fields(expires_in)
        cluster = self.layout.cluster
        ids = [""] * len(payloads) if cluster else new_job_ids(len(payloads))
        groups: dict[tuple[str, Priority], tuple[RecordTemplate, list[str], list[bytes]]] = {}
        last_chosen: Priority | str | None = None
        prio = Priority.NORMAL
        encode_payload = codec.encode_payload
        limit = self.max_payload_bytes
        for index, payload in enumerate(payloads):
            key, chosen = route(payload)
            if chosen is not last_chosen:  # the same route for every payload: parsed once
                prio = Priority.parse(chosen)
                last_chosen = chosen
            group = groups.get((key, prio))
            if group is None:
                validate_new_job(name, prio, key, max_retries, None)
                shared = {**expiry, TRACEPARENT: traceparent} if traceparent else expiry
                group = (RecordTemplate(name, prio, key, now, max_retries, shared), [], [])
                groups[(key, prio)] = group
            try:
                encoded = encode_payload(payload, max_bytes=limit)
            except PayloadError as exc:
                raise PayloadError(f"payloads[{index}]: {exc}") from None
            if cluster:  # the id carries its routing key (<routing_key>~<uuid>)
                ids[index] = job_id = self.layout.new_job_id(key)
            else:
                job_id = ids[index]
            group[1].append(job_id)
            group[2].append(group[0].encode(job_id, encoded))
        batch: list[Call] = []
        for (key, prio), (_, group_ids, records) in groups.items():
            for start in range(0, len(group_ids), SUBMIT_MANY_CHUNK):
                end = start + SUBMIT_MANY_CHUNK
                batch.append(
                    calls.submit_many(
                        key,
                        prio,
                        group_ids[start:end],
                        records[start:end],
                        layout=self.layout,
                        queue=self._queue(key, prio),
                    )
                )
        return ids, batch

    def _queue(self, routing_key: str, priority: Priority) -> str | None:
        """The list a new job goes to when it is not its routing key's own ready list:
        in migration mode, the legacy list of its priority for ``default`` jobs."""
        if self.compat == ORIGINAL and routing_key == DEFAULT_ROUTING_KEY:
            return self.layout.legacy_queue(priority)
        return None

    def schedule(
        self,
        name: str,
        payload: Any,
        *,
        run_at: datetime | None = None,
        delay: float | timedelta | None = None,
        priority: Priority | str | None = None,
        routing_key: str | None = None,
        max_retries: int = DEFAULT_MAX_RETRIES,
        description: str | None = None,
        result_ttl: int | None = None,
        expires_in: float | timedelta | None = None,
        traceparent: str | None = None,
    ) -> tuple[str, Call]:
        due = self.due_time(run_at, delay)
        routing_key, priority = self.route(name, payload, routing_key, priority)
        job = self.build(name, payload, priority, routing_key, max_retries, description)
        _set_result_ttl(job, result_ttl)
        self._set_expiry(job, expires_in)
        _set_traceparent(job, traceparent)
        job.status = JobStatus.SCHEDULED
        job.scheduled_for = to_datetime(due)
        return job.id, calls.schedule(job, job.to_record(), due, layout=self.layout)

    def expiry_fields(self, expires_in: float | timedelta | None) -> dict[str, Any]:
        """``{"expires_at": RFC 3339}`` for a job that must start within ``expires_in``
        seconds from now, or ``{}``. A job not started by then never runs (``expired``)."""
        if expires_in is None:
            return {}
        seconds = expires_in.total_seconds() if isinstance(expires_in, timedelta) else expires_in
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValidationError(f"expires_in must be seconds or a timedelta, got {type(expires_in).__name__}")
        if not math.isfinite(seconds) or seconds <= 0:
            raise ValidationError(f"expires_in must be a finite number of seconds > 0, got {seconds!r}")
        if seconds > MAX_EXPIRES_IN_SECONDS:
            raise ValidationError(f"expires_in of {seconds} seconds is more than ten years")
        return {"expires_at": format_time(to_datetime(self.clock.now() + float(seconds)))}

    def _set_expiry(self, job: Job, expires_in: float | timedelta | None) -> None:
        job.extra.update(self.expiry_fields(expires_in))

    def cancel(self, job_id: str, seen: bytes | str | None) -> Call | None:
        """The call that cancels ``job_id``, given its record as just read (``seen``);
        None when there is nothing to cancel: no record, unreadable, or already final."""
        if seen is None:
            return None
        if isinstance(seen, str):
            seen = seen.encode()
        try:
            job = Job.from_record(seen, job_id=job_id)
        except MalformedJobError:
            return None
        if job.status.value in FINAL_STATUSES:
            return None
        now = self.clock.now()
        mark_cancelled(job, to_datetime(now))
        fields = result_fields(job, status=CANCELLED, started=now, finished=now, worker="")
        return calls.cancel(
            job,
            seen,
            job.to_record(),
            fields,
            record_ttl=DEFAULT_FAILED_TTL,
            result_ttl=DEFAULT_RESULT_FAILURE_TTL,
            layout=self.layout,
        )

    def after_cancel(self, job_id: str, seen: bytes | str | None) -> Call | None:
        """The call sent with a cancel (in one transaction) when the job carries hand-offs:
        it releases the job's unique key and fails its workflow. None for a plain job."""
        if seen is None:
            return None
        try:
            job = Job.from_record(seen, job_id=job_id)
        except MalformedJobError:
            return None
        return calls.abandon_job(job, format_time(to_datetime(self.clock.now())), layout=self.layout)

    def due_time(self, run_at: datetime | None, delay: float | timedelta | None) -> float:
        if run_at is not None and delay is not None:
            raise ValidationError("give either run_at or delay, not both")
        now = self.clock.now()
        if run_at is not None:
            if not isinstance(run_at, datetime):
                raise ValidationError(f"run_at must be a datetime, got {type(run_at).__name__}")
            if run_at.tzinfo is None or run_at.utcoffset() is None:
                raise ValidationError("run_at must be timezone-aware (e.g. datetime.now(UTC))")
            due = run_at.timestamp()
            if due - now > MAX_DELAY_SECONDS:
                raise ValidationError(f"run_at {run_at.isoformat()} is more than ten years away")
            return due
        if delay is None:
            raise ValidationError("schedule_job needs run_at or delay")
        seconds = delay.total_seconds() if isinstance(delay, timedelta) else delay
        if isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise ValidationError(f"delay must be seconds or a timedelta, got {type(delay).__name__}")
        if not math.isfinite(seconds) or seconds < 0:
            raise ValidationError(f"delay must be a finite number of seconds >= 0, got {seconds!r}")
        if seconds > MAX_DELAY_SECONDS:
            raise ValidationError(f"delay of {seconds} seconds is more than ten years")
        return now + float(seconds)


def _choose(
    found: Route | None, routing_key: str | None, priority: Priority | str | None
) -> tuple[str, Priority | str]:
    if routing_key is None:
        routing_key = found.routing_key if found is not None else DEFAULT_ROUTING_KEY
    if priority is None:
        priority = found.priority if found is not None and found.priority is not None else Priority.NORMAL
    return routing_key, priority


def _set_result_ttl(job: Job, result_ttl: int | None) -> None:
    """Per-job result lifetime, carried in the record's ``result_ttl`` field."""
    if result_ttl is None:
        return
    if isinstance(result_ttl, bool) or not isinstance(result_ttl, int) or result_ttl < 0:
        raise ValidationError(f"result_ttl must be a whole number of seconds >= 0, got {result_ttl!r}")
    if result_ttl > MAX_TTL:
        raise ValidationError(f"result_ttl must be at most {MAX_TTL} seconds (about 68 years), got {result_ttl}")
    job.extra["result_ttl"] = result_ttl


#: Seconds a unique key is held when ``unique_for`` is not given (it is released as
#: soon as the job ends in any case).
DEFAULT_UNIQUE_FOR = 24 * 3600
#: Longest unique key accepted.
MAX_UNIQUE_KEY_LENGTH = 512


def check_unique(unique_key: object, unique_for: object) -> tuple[str, int]:
    """Validate ``unique_key``/``unique_for``; the lock's key and TTL in whole seconds."""
    if not isinstance(unique_key, str) or not unique_key:
        raise ValidationError(f"unique_key must be a non-empty string, got {unique_key!r}")
    if len(unique_key) > MAX_UNIQUE_KEY_LENGTH:
        raise ValidationError(
            f"unique_key is {len(unique_key)} characters long, the maximum is {MAX_UNIQUE_KEY_LENGTH}"
        )
    try:
        unique_key.encode("utf-8")
    except UnicodeEncodeError:
        raise ValidationError("unique_key is not valid text") from None
    if unique_for is None:
        return unique_key, DEFAULT_UNIQUE_FOR
    seconds = unique_for.total_seconds() if isinstance(unique_for, timedelta) else unique_for
    if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not math.isfinite(seconds):
        raise ValidationError(f"unique_for must be a number of seconds > 0 or a timedelta, got {unique_for!r}")
    if seconds <= 0 or seconds > MAX_DELAY_SECONDS:
        raise ValidationError(f"unique_for must be more than 0 seconds and at most ten years, got {seconds!r}")
    return unique_key, max(1, math.ceil(seconds))


def _seconds(what: str, value: object, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValidationError(f"{what} must be a whole number of seconds > 0, got {value!r}")
    return value


def _set_traceparent(job: Job, traceparent: str | None) -> None:
    """The submitter's W3C trace context (bananas.tracing), carried in ``traceparent``."""
    if traceparent:
        job.extra[TRACEPARENT] = traceparent

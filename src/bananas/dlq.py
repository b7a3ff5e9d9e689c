"""Dead letters: the jobs that failed for good, and what an operator can do with them.

``bananas dlq`` is a thin shell over ``DeadLetters``; tests and scripts can use it
directly. Every change is one atomic script per job (``dlq_retry``) or per batch
(``dlq_purge``), so a crash mid-way never leaves a job in no list or in two:

- retry: out of the dead list, record reset (attempts 0, status pending, no TTL), id on
  the ready queue of the job's *own* routing key and priority, wake-up published. The
  record is read first and the script refuses if it changed in between. If the job fails
  again, the worker buries it again: it comes back here, it is never lost.
- purge: ids out of the dead list, their records and results deleted.

The dead list may hold ids whose record already expired (failed records carry
``JOB_FAILED_TTL``); they are listed as expired and can only be purged.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import redis

from bananas.client import Client
from bananas.client.core import layout_of_client
from bananas.client.inspect import record_reads, records_of, set_owners
from bananas.core import codec
from bananas.core.clock import SYSTEM_CLOCK, Clock, format_time, to_datetime
from bananas.core.job import Job, JobStatus
from bananas.errors import MalformedJobError
from bananas.redis import calls, keys
from bananas.redis.keys import KeyLayout
from bananas.redis.runner import SyncRunner
from bananas.redis.scripts import Call

#: Ids read per round trip while walking the dead list.
SCAN_CHUNK = 500
#: Ids per ``dlq_purge`` script call (each call is atomic).
PURGE_CHUNK = 200
#: Name the worker gives the stand-in record of an unreadable job (see worker/malformed.py).
MALFORMED_JOB_NAME = "bananas.malformed_record"
#: Record fields that describe the dead episode and are cleared when the job is retried.
_DEAD_ONLY_FIELDS = ("recoveries", "poison_pill", "failed_at")


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One entry of the dead letter list, with its record when it can be read."""

    id: str
    job: Job | None
    raw: bytes | None
    #: Why ``job`` is None: the record expired, or it cannot be read as a job.
    problem: str | None = None

    @property
    def expired(self) -> bool:
        return self.raw is None

    @property
    def malformed(self) -> bool:
        """The worker could not read the job (foreign or corrupt record)."""
        if self.job is None:
            return self.raw is not None
        return self.job.malformed or self.job.name == MALFORMED_JOB_NAME

    @property
    def name(self) -> str | None:
        return self.job.name if self.job else None

    @property
    def routing_key(self) -> str | None:
        return self.job.routing_key if self.job else None

    @property
    def priority(self) -> str | None:
        return self.job.priority.value if self.job else None

    @property
    def attempts(self) -> int | None:
        return self.job.attempts if self.job else None

    @property
    def error(self) -> str:
        if self.job is None:
            return self.problem or ""
        return self.job.error or ""

    @property
    def error_summary(self) -> str:
        """First line of the error (``Type: message``)."""
        return self.error.split("\n", 1)[0]

    @property
    def traceback(self) -> str:
        """Everything after the error's first line (the handler's traceback, if any)."""
        parts = self.error.split("\n", 1)
        return parts[1].strip("\n") if len(parts) > 1 else ""

    @property
    def failed_at(self) -> datetime | None:
        if self.job is None:
            return None
        return self.job.failed_at or self.job.updated_at

    @property
    def history(self) -> list[dict[str, Any]]:
        return self.job.history if self.job else []

    @property
    def recoveries(self) -> int:
        return self.job.recoveries if self.job else 0

    @property
    def poison_pill(self) -> bool:
        return self.job.poison_pill if self.job else False

    @property
    def original_record(self) -> str | None:
        """The unreadable bytes as they were found, for malformed entries."""
        if self.job is None:
            return self.raw.decode("utf-8", errors="replace") if self.raw is not None else None
        original = self.job.extra.get("original_record")
        return original if isinstance(original, str) else None

    def summary(self) -> dict[str, Any]:
        """The fields ``bananas dlq list`` shows."""
        failed = self.failed_at
        return {
            "id": self.id,
            "name": self.name,
            "routing_key": self.routing_key,
            "priority": self.priority,
            "attempts": self.attempts,
            "error": self.error_summary,
            "failed_at": format_time(failed) if failed else None,
            "poison_pill": self.poison_pill,
            "malformed": self.malformed,
            "expired": self.expired,
        }

    def details(self) -> dict[str, Any]:
        """Everything ``bananas dlq show`` shows."""
        out = self.summary()
        out.update(
            {
                "status": self.job.status.value if self.job else None,
                "max_retries": self.job.max_retries if self.job else None,
                "error": self.error,
                "traceback": self.traceback,
                "recoveries": self.recoveries,
                "history": self.history,
                "payload": self.job.payload if self.job else None,
                "original_record": self.original_record,
            }
        )
        return out


@dataclass(frozen=True, slots=True)
class DeadPage:
    """One page of ``DeadLetters.page``: the entries, the dead list's length, and the
    position to read the next page from (None when the list was read to its end)."""

    items: list[DeadLetter]
    total: int
    next_cursor: int | None


class RetryOutcome(StrEnum):
    RETRIED = "retried"
    NOT_DEAD = "not in the dead letter list"
    EXPIRED = "record expired"
    MALFORMED = "record is malformed, it cannot run"
    NOT_FAILED = "record is not in the failed state"
    CHANGED = "record changed while retrying"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class RetryResult:
    job_id: str
    outcome: RetryOutcome
    #: Where the job went (its ready queue) when retried.
    queue: str | None = None
    detail: str | None = None


@dataclass(slots=True)
class RetryReport:
    retried: list[RetryResult] = field(default_factory=list)
    skipped: list[RetryResult] = field(default_factory=list)


class DeadLetters:
    """Dead-letter operations on a sync Redis client (or a ``Client``'s connection).

    Standalone there is one dead list; on Redis Cluster one per routing key (in its
    slot), found through the routing-key registry: listings walk them one after the
    other (routing keys in name order, each newest first), a ``routing_key`` filter reads
    only its own."""

    def __init__(
        self, source: Client | redis.Redis, *, clock: Clock = SYSTEM_CLOCK, layout: KeyLayout | None = None
    ) -> None:
        self.redis: redis.Redis = source.redis if isinstance(source, Client) else source
        if layout is None:
            layout = source.layout if isinstance(source, Client) else layout_of_client(self.redis)
        self.layout = layout
        self.clock = clock
        self._runner = SyncRunner(self.redis)
        #: Routing keys this object added to the registry (Cluster: beside a retry).
        self._registered: set[str] = set()

    # -- the dead lists ------------------------------------------------------------------

    def _lists(self, routing_key: str | None = None) -> list[tuple[str, str]]:
        """(routing key, dead list) of every dead list to read. Standalone: the one list
        (routing key ""). Cluster: one per known routing key, or only ``routing_key``'s."""
        if not self.layout.cluster:
            return [("", self.layout.dead(""))]
        if routing_key is not None:
            return [(routing_key, self.layout.dead(routing_key))]
        members = self.redis.smembers(keys.ROUTING_KEYS)
        return [(k, self.layout.dead(k)) for k in set_owners(self.layout, members)]

    def _home(self, job_id: str) -> str | None:
        """The routing key whose dead list may hold ``job_id`` ("" standalone; None on
        Cluster for an id without one: it cannot be there)."""
        return self.layout.routing_key_of(job_id) if self.layout.cluster else ""

    def _lengths(self, lists: Sequence[tuple[str, str]]) -> list[int]:
        if len(lists) == 1:
            return [int(self.redis.llen(lists[0][1]))]
        pipe = self.redis.pipeline(transaction=False)
        for _, name in lists:
            pipe.llen(name)
        return [int(n) for n in pipe.execute()]

    def _range(
        self, lists: Sequence[tuple[str, str]], lengths: Sequence[int] | None, start: int, size: int
    ) -> list[str]:
        """Up to ``size`` ids from position ``start`` of the dead lists read one after the
        other (``lengths``: theirs, needed only with several lists)."""
        if len(lists) == 1:
            return [codec.decode_id(i) for i in self.redis.lrange(lists[0][1], start, start + size - 1)]
        assert lengths is not None
        out: list[str] = []
        offset = 0
        for (_, name), length in zip(lists, lengths, strict=True):
            if len(out) >= size:
                break
            if start < offset + length:
                first = max(start - offset, 0)
                want = size - len(out)
                out += [codec.decode_id(i) for i in self.redis.lrange(name, first, first + want - 1)]
            offset += length
        return out

    # -- reading -----------------------------------------------------------------------

    def count(self) -> int:
        return sum(self._lengths(self._lists()))

    def ids(self) -> list[str]:
        """Every id in the dead lists, newest first (per routing key on Cluster)."""
        return [codec.decode_id(i) for _, name in self._lists() for i in self.redis.lrange(name, 0, -1)]

    def get(self, job_id: str) -> DeadLetter | None:
        """The entry for ``job_id``, or None when it is not in the dead list."""
        home = self._home(job_id)
        if home is None or self.redis.lpos(self.layout.dead(home), job_id) is None:
            return None
        return _entry(job_id, self.redis.get(self.layout.job(job_id)))  # type: ignore[arg-type]

    def status_of(self, job_id: str) -> str | None:
        """The status a job's record states (any job, dead or not), or None."""
        if self._home(job_id) is None:
            return None
        raw = self.redis.get(self.layout.job(job_id))
        if raw is None:
            return None
        try:
            data = codec.loads(raw)
        except codec.JSONDecodeError:
            return "unreadable"
        status = data.get("status") if isinstance(data, dict) else None
        return status if isinstance(status, str) else "unreadable"

    def iter(self, *, routing_key: str | None = None, name: str | None = None) -> Iterator[DeadLetter]:
        """Entries newest first, optionally only those of one routing key and/or job name.

        Expired entries (no record) match only when no filter is given. The list is read
        page by page, so a short listing of a long dead list stays cheap.
        """
        for _, dead in self._lists(routing_key):
            start = 0
            while True:
                chunk = [codec.decode_id(i) for i in self.redis.lrange(dead, start, start + SCAN_CHUNK - 1)]
                if not chunk:
                    break
                start += len(chunk)
                for job_id, raw in zip(chunk, self._records(chunk), strict=True):
                    entry = _entry(job_id, raw)
                    if _matches(entry, routing_key, name):
                        yield entry

    def page(
        self,
        *,
        cursor: int = 0,
        limit: int = 50,
        routing_key: str | None = None,
        name: str | None = None,
        max_scanned: int = 5 * SCAN_CHUNK,
    ) -> DeadPage:
        """Up to ``limit`` entries from position ``cursor`` of the dead list, newest first.

        A filtered page reads at most ``max_scanned`` ids, so a filter that matches
        nothing never walks a long dead list in one request; ``next_cursor`` says where to
        go on (None at the end). Positions move as entries are added or removed: a page
        is a view of the list as it was read. (Cluster: positions run through the dead
        lists of the routing keys one after the other; with ``routing_key``, through its
        own list only, and ``total`` is its length.)
        """
        items: list[DeadLetter] = []
        position = max(cursor, 0)
        scanned = 0
        lists = self._lists(routing_key)  # Cluster: a routing key's own list only
        lengths = self._lengths(lists)
        total = sum(lengths)
        while len(items) < limit and scanned < max_scanned:
            size = min(SCAN_CHUNK, max_scanned - scanned) if (routing_key or name) else limit - len(items)
            chunk = self._range(lists, lengths, position, size)
            if not chunk:
                return DeadPage(items, total, None)
            for offset, (job_id, raw) in enumerate(zip(chunk, self._records(chunk), strict=True)):
                entry = _entry(job_id, raw)
                if _matches(entry, routing_key, name):
                    items.append(entry)
                    if len(items) == limit:
                        position += offset + 1
                        return DeadPage(items, total, position if position < total else None)
            position += len(chunk)
            scanned += len(chunk)
        return DeadPage(items, total, position if position < total else None)

    def entries(
        self, *, routing_key: str | None = None, name: str | None = None, limit: int | None = None
    ) -> list[DeadLetter]:
        out: list[DeadLetter] = []
        for entry in self.iter(routing_key=routing_key, name=name):
            if limit is not None and len(out) >= limit:
                break
            out.append(entry)
        return out

    # -- retry -------------------------------------------------------------------------

    def retry(self, job_id: str) -> RetryResult:
        """Send one dead job back to its own routing key and priority, attempts reset."""
        home = self._home(job_id)
        if home is None or self.redis.lpos(self.layout.dead(home), job_id) is None:
            return RetryResult(job_id, RetryOutcome.NOT_DEAD)
        raw = self.redis.get(self.layout.job(job_id))
        planned = self._plan_retry(job_id, raw)  # type: ignore[arg-type]
        if isinstance(planned, RetryResult):
            return planned
        job, call = planned
        result = _retry_result(job, self._runner.run(call), self.layout)
        self._register([job])
        return result

    def retry_all(self, *, routing_key: str | None = None, name: str | None = None) -> RetryReport:
        """Retry every dead job (of one routing key / job name); skips what cannot run."""
        report = RetryReport()
        for _, dead in self._lists(routing_key):
            ids = [codec.decode_id(i) for i in self.redis.lrange(dead, 0, -1)]
            for start in range(0, len(ids), SCAN_CHUNK):
                chunk = ids[start : start + SCAN_CHUNK]
                planned: list[tuple[Job, Call]] = []
                for job_id, raw in zip(chunk, self._records(chunk), strict=True):
                    if not _matches(_entry(job_id, raw), routing_key, name):
                        continue
                    plan = self._plan_retry(job_id, raw)
                    if isinstance(plan, RetryResult):
                        report.skipped.append(plan)
                    else:
                        planned.append(plan)
                if not planned:
                    continue
                replies = self._runner.run_many([call for _, call in planned])
                for (job, _), reply in zip(planned, replies, strict=True):
                    if isinstance(reply, Exception):
                        raise reply
                    result = _retry_result(job, reply, self.layout)
                    (report.retried if result.outcome is RetryOutcome.RETRIED else report.skipped).append(result)
                self._register([job for job, _ in planned])
        return report

    def _register(self, jobs: Sequence[Job]) -> None:
        """Cluster: the retried jobs' routing keys in the fleet-wide registry (the retry
        script reaches only its slot's stand-in), once per key; idempotent."""
        if not self.layout.cluster:
            return
        new = sorted({job.routing_key for job in jobs} - self._registered)
        if new:
            self.redis.sadd(keys.ROUTING_KEYS, *new)
            self._registered.update(new)

    def _plan_retry(self, job_id: str, raw: bytes | None) -> tuple[Job, Call] | RetryResult:
        if raw is None:
            return RetryResult(job_id, RetryOutcome.EXPIRED)
        entry = _entry(job_id, raw)
        if entry.job is None or entry.malformed:
            return RetryResult(job_id, RetryOutcome.MALFORMED, detail=entry.error_summary or entry.problem)
        job = entry.job
        if job.status is not JobStatus.FAILED:
            return RetryResult(job_id, RetryOutcome.NOT_FAILED, detail=f"status is {job.status.value!r}")
        if self.layout.cluster and job.routing_key != self.layout.routing_key_of(job_id):
            # Its dead list, record and ready list must share one slot (the id's routing key).
            return RetryResult(
                job_id, RetryOutcome.MALFORMED, detail=f"record routing key {job.routing_key!r} is not its id's"
            )
        reset_for_retry(job, self.clock.now())
        return job, calls.dlq_retry(job, raw, job.to_record(), layout=self.layout)

    # -- purge -------------------------------------------------------------------------

    def purge(self, *, routing_key: str | None = None, name: str | None = None) -> int:
        """Delete dead entries (of one routing key / job name) with their records; returns
        how many were removed."""
        removed = 0
        for home, dead in self._lists(routing_key):
            ids = [codec.decode_id(i) for i in self.redis.lrange(dead, 0, -1)]
            if self.layout.cluster:
                # The purge script runs in ``home``'s slot; an id of another routing key
                # (a foreign writer) cannot have its record there.
                ids = [i for i in ids if self.layout.routing_key_of(i) == home]
            for start in range(0, len(ids), SCAN_CHUNK):
                chunk = ids[start : start + SCAN_CHUNK]
                if routing_key is not None or name is not None:
                    chunk = [
                        i
                        for i, raw in zip(chunk, self._records(chunk), strict=True)
                        if _matches(_entry(i, raw), routing_key, name)
                    ]
                for part in range(0, len(chunk), PURGE_CHUNK):
                    call = calls.dlq_purge(chunk[part : part + PURGE_CHUNK], layout=self.layout, routing_key=home)
                    removed += int(self._runner.run(call))
        return removed

    def delete(self, job_id: str) -> bool:
        """Remove one dead entry with its record and result; False if it was not dead."""
        home = self._home(job_id)
        if home is None:
            return False
        return int(self._runner.run(calls.dlq_purge([job_id], layout=self.layout, routing_key=home))) > 0

    def _records(self, job_ids: Sequence[str]) -> list[bytes | None]:
        if not job_ids:
            return []
        if not self.layout.cluster:
            return list(self.redis.mget([self.layout.job(i) for i in job_ids]))  # type: ignore[arg-type]
        pipe = self.redis.pipeline(transaction=False)
        for command in record_reads(job_ids, self.layout):
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        return records_of(job_ids, self.layout, pipe.execute())


def reset_for_retry(job: Job, now: float) -> None:
    """A dead job as it goes back to work: pending, attempts 0, error cleared.

    ``history`` is kept (it is bounded), so ``dlq show`` still tells the whole story if
    the job dies again; ``dlq_retries`` counts the trips back.
    """
    stamp = to_datetime(now)
    job.status = JobStatus.PENDING
    job.attempts = 0
    job.error = None
    job.scheduled_for = None
    job.updated_at = stamp
    for name in _DEAD_ONLY_FIELDS:
        job.extra.pop(name, None)
    job.extra["dlq_retries"] = job.dlq_retries + 1
    job.extra["dlq_retried_at"] = format_time(stamp)


def _retry_result(job: Job, reply: Any, layout: KeyLayout) -> RetryResult:
    code = int(reply)
    if code == 1:
        return RetryResult(job.id, RetryOutcome.RETRIED, queue=calls.ready_queue_of(job, layout))
    if code == 0:
        return RetryResult(job.id, RetryOutcome.NOT_DEAD)
    return RetryResult(job.id, RetryOutcome.CHANGED)


def _entry(job_id: str, raw: bytes | None) -> DeadLetter:
    if raw is None:
        return DeadLetter(job_id, None, None, "record expired or missing")
    try:
        return DeadLetter(job_id, Job.from_record(raw, job_id=job_id), raw)
    except MalformedJobError as exc:
        return DeadLetter(job_id, None, raw, f"unreadable record: {exc.reason}")


def _matches(entry: DeadLetter, routing_key: str | None, name: str | None) -> bool:
    if routing_key is not None and entry.routing_key != routing_key:
        return False
    return name is None or entry.name == name


def dumps(value: Any) -> str:
    """JSON text for the CLI's ``--json`` output."""
    return codec.dumps(value).decode()

"""The scheduler's storage: schedule state in Redis, changed only by the periodic_* scripts.

The call builders are pure; ``ScheduleStore`` runs them through the worker's ``Broker``
(so scripts reload themselves after a server restart) and reads state for display.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from typing import Any

import redis

from bananas.core.codec import decode_id
from bananas.redis import calls, connection, keys
from bananas.redis.broker import Broker
from bananas.redis.keys import KeyLayout
from bananas.redis.scripts import Call, ScriptName
from bananas.scheduler.definition import Schedule
from bananas.scheduler.policy import Step
from bananas.scheduler.state import ScheduleState, parse_state


class FireResult(IntEnum):
    LOST = 0  # another scheduler moved the cursor first: nothing written
    ENQUEUED = 1  # this call enqueued the tick's job
    DUPLICATE = 2  # the tick's job already existed: cursor moved, nothing queued


@dataclass(frozen=True, slots=True)
class Outcome:
    result: FireResult
    #: The cursor now in Redis (None when the schedule's state has been deleted).
    cursor: int | None


def _opt(value: int | None) -> str:
    return "" if value is None else str(value)


def _ts(now: float) -> str:
    return f"{now:.6f}"


def register_call(
    schedule: Schedule, initial_cursor: int, next_run: int | None, now: float, layout: KeyLayout = keys.STANDALONE
) -> Call:
    definition: list[str] = []
    for name, value in schedule.definition().items():
        definition += [name, value]
    return Call(
        ScriptName.PERIODIC_REGISTER,
        (keys.schedule(schedule.id), layout.schedule_index(schedule.id)),
        (schedule.id, str(initial_cursor), _opt(next_run), _ts(now), *definition),
    )


def fire_call(schedule: Schedule, step: Step, expected_cursor: int, now: float) -> Call:
    """Standalone only: claim the tick and enqueue its job in one script (on Cluster the
    schedule and the job are two slots: ``ScheduleStore.fire`` splits it)."""
    assert step.tick is not None
    job = schedule.build_job(step.tick, now)
    layout = keys.STANDALONE
    return Call(
        ScriptName.PERIODIC_FIRE,
        (
            keys.schedule(schedule.id),
            keys.SCHEDULES,
            layout.job(job.id),
            calls.ready_queue_of(job, layout),
            keys.ROUTING_KEYS,
        ),
        (
            schedule.id,
            str(expected_cursor),
            str(step.tick),
            job.id,
            job.to_record(),
            job.routing_key,
            layout.notify_channel(job.routing_key),
            _opt(step.next_run),
            _ts(now),
            "1" if step.catch_up else "0",
            _opt(step.missed_from),
        ),
    )


def advance_call(
    schedule_id: str,
    expected_cursor: int,
    new_cursor: int,
    next_run: int | None,
    now: float,
    extra: Mapping[str, str] | None = None,
    layout: KeyLayout = keys.STANDALONE,
) -> Call:
    pairs: list[str] = []
    for name, value in (extra or {}).items():
        pairs += [name, value]
    return Call(
        ScriptName.PERIODIC_ADVANCE,
        (keys.schedule(schedule_id), layout.schedule_index(schedule_id)),
        (schedule_id, str(expected_cursor), str(new_cursor), _opt(next_run), _ts(now), *pairs),
    )


def _outcome(reply: Any) -> Outcome:
    status, cursor = reply
    text = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
    return Outcome(FireResult(int(status)), int(text) if text else None)


def _cursor(raw: Any) -> int | None:
    text = decode_id(raw) if raw is not None else ""
    return int(text) if text else None


class ScheduleStore:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
        self.layout = broker.layout

    async def register(self, schedule: Schedule, initial_cursor: int, next_run: int | None, now: float) -> Outcome:
        """``result`` is ENQUEUED (1) when the schedule was new, LOST (0) when it existed."""
        outcome = _outcome(await self._broker.run(register_call(schedule, initial_cursor, next_run, now, self.layout)))
        if outcome.result is not FireResult.LOST:
            await self._index(schedule.id, next_run)
        return outcome

    async def fire(self, schedule: Schedule, step: Step, expected_cursor: int, now: float) -> Outcome:
        if not self.layout.cluster:
            return _outcome(await self._broker.run(fire_call(schedule, step, expected_cursor, now)))
        return await self._fire_in_two_slots(schedule, step, expected_cursor, now)

    async def _fire_in_two_slots(self, schedule: Schedule, step: Step, expected_cursor: int, now: float) -> Outcome:
        """Cluster: the tick's job goes to its routing key's slot, the cursor lives in the
        schedule's. Exactly once still holds with several schedulers, in three steps:

        1. read the cursor: moved on already -> LOST, nothing written (a scheduler that is
           behind never re-submits an old tick);
        2. submit the job with the id derived from (schedule, tick): the submit script
           writes nothing when a record with that id exists, so whichever schedulers get
           here for one tick, one job is queued;
        3. advance the cursor (compare-and-set): one scheduler wins the tick. A crash
           between 2 and 3 leaves the cursor behind; the next try of step 2 finds the job
           and only the cursor moves (DUPLICATE), as the one-script fire does.
        """
        assert step.tick is not None
        layout = self.layout
        current = await self._broker.redis.hget(keys.schedule(schedule.id), "cursor")
        if current is None or decode_id(current) != str(expected_cursor):
            return Outcome(FireResult.LOST, _cursor(current))
        job = schedule.build_job(step.tick, now, cluster=True)
        submitted = int(await self._broker.run(calls.submit(job, job.to_record(), layout=layout))) == 1
        if submitted:
            await self._broker.redis.sadd(keys.ROUTING_KEYS, job.routing_key)
        extra = {"last_run": str(step.tick), "last_run_at": _ts(now), "last_job_id": job.id}
        if step.catch_up:
            extra.update(
                last_missed_from=_opt(step.missed_from), last_missed_to=str(step.tick),
                last_missed_policy="once", last_missed_at=_ts(now),
            )  # fmt: skip
        call = advance_call(schedule.id, expected_cursor, step.tick, step.next_run, now, extra, layout)
        advanced = _outcome(await self._broker.run(call))
        if advanced.result is FireResult.LOST:
            # Another scheduler took the tick meanwhile; the job is queued once either
            # way, and reported by whoever queued it.
            return Outcome(FireResult.ENQUEUED if submitted else FireResult.LOST, advanced.cursor)
        # Display only (``bananas schedules``): the tick's winner counts it.
        await self._broker.redis.hincrby(keys.schedule(schedule.id), "run_count", 1)
        await self._index(schedule.id, step.next_run)
        return Outcome(FireResult.ENQUEUED if submitted else FireResult.DUPLICATE, advanced.cursor)

    async def advance(
        self,
        schedule_id: str,
        expected_cursor: int,
        new_cursor: int,
        next_run: int | None,
        now: float,
        extra: Mapping[str, str] | None = None,
    ) -> Outcome:
        call = advance_call(schedule_id, expected_cursor, new_cursor, next_run, now, extra, self.layout)
        outcome = _outcome(await self._broker.run(call))
        if outcome.result is not FireResult.LOST:
            await self._index(schedule_id, next_run)
        return outcome

    async def _index(self, schedule_id: str, next_run: int | None) -> None:
        """Cluster: copy a schedule's entry to the fleet-wide index (see
        ``KeyLayout.schedule_index``). Standalone: the script wrote it."""
        if self.layout.cluster:
            score = float("inf") if next_run is None else float(next_run)
            await self._broker.redis.zadd(keys.SCHEDULES, {schedule_id: score})

    async def record_error(self, schedule_id: str, message: str, now: float) -> None:
        """Best effort (no compare-and-set needed: it only describes what happened)."""
        fields = {"last_error": message[:1000], "last_error_at": _ts(now)}
        await self._broker.redis.hset(keys.schedule(schedule_id), mapping=fields)  # type: ignore[arg-type]


# -- reading, for ``bananas schedules`` (sync: the CLI has no event loop) ----------------


def read_states(client: redis.Redis) -> list[ScheduleState]:
    """Every schedule known to Redis, soonest next run first."""
    ids = [decode_id(i) for i in client.zrange(keys.SCHEDULES, 0, -1)]
    if not ids:
        return []
    pipe = client.pipeline(transaction=False)
    for schedule_id in ids:
        pipe.hgetall(keys.schedule(schedule_id))
    raws = pipe.execute()
    return [parse_state(schedule_id, raw) for schedule_id, raw in zip(ids, raws, strict=True) if raw]


def forget(client: redis.Redis, schedule_id: str) -> bool:
    """Delete a schedule's state (a scheduler that still defines it starts it afresh)."""
    if connection.is_cluster_client(client):
        # Three slots (state, its index stand-in, the index): no transaction; the state
        # goes first, so a scheduler sees the schedule as new whatever happens next.
        deleted = client.delete(keys.schedule(schedule_id))
        client.delete(keys.CLUSTER.schedule_index(schedule_id))
        client.zrem(keys.SCHEDULES, schedule_id)
        return bool(deleted)
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.schedule(schedule_id))
    pipe.zrem(keys.SCHEDULES, schedule_id)
    deleted, _ = pipe.execute()
    return bool(deleted)

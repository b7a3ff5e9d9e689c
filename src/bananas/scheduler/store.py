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
from bananas.redis import calls, keys
from bananas.redis.broker import Broker
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


def register_call(schedule: Schedule, initial_cursor: int, next_run: int | None, now: float) -> Call:
    definition: list[str] = []
    for name, value in schedule.definition().items():
        definition += [name, value]
    return Call(
        ScriptName.PERIODIC_REGISTER,
        (keys.schedule(schedule.id), keys.SCHEDULES),
        (schedule.id, str(initial_cursor), _opt(next_run), _ts(now), *definition),
    )


def fire_call(schedule: Schedule, step: Step, expected_cursor: int, now: float) -> Call:
    assert step.tick is not None
    job = schedule.build_job(step.tick, now)
    return Call(
        ScriptName.PERIODIC_FIRE,
        (
            keys.schedule(schedule.id),
            keys.SCHEDULES,
            keys.job(job.id),
            calls.ready_queue_of(job, keys.STANDALONE),
            keys.ROUTING_KEYS,
        ),
        (
            schedule.id,
            str(expected_cursor),
            str(step.tick),
            job.id,
            job.to_record(),
            job.routing_key,
            keys.route_notify_channel(job.routing_key),
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
) -> Call:
    pairs: list[str] = []
    for name, value in (extra or {}).items():
        pairs += [name, value]
    return Call(
        ScriptName.PERIODIC_ADVANCE,
        (keys.schedule(schedule_id), keys.SCHEDULES),
        (schedule_id, str(expected_cursor), str(new_cursor), _opt(next_run), _ts(now), *pairs),
    )


def _outcome(reply: Any) -> Outcome:
    status, cursor = reply
    text = cursor.decode() if isinstance(cursor, bytes) else str(cursor)
    return Outcome(FireResult(int(status)), int(text) if text else None)


class ScheduleStore:
    def __init__(self, broker: Broker) -> None:
        self._broker = broker

    async def register(self, schedule: Schedule, initial_cursor: int, next_run: int | None, now: float) -> Outcome:
        """``result`` is ENQUEUED (1) when the schedule was new, LOST (0) when it existed."""
        return _outcome(await self._broker.run(register_call(schedule, initial_cursor, next_run, now)))

    async def fire(self, schedule: Schedule, step: Step, expected_cursor: int, now: float) -> Outcome:
        return _outcome(await self._broker.run(fire_call(schedule, step, expected_cursor, now)))

    async def advance(
        self,
        schedule_id: str,
        expected_cursor: int,
        new_cursor: int,
        next_run: int | None,
        now: float,
        extra: Mapping[str, str] | None = None,
    ) -> Outcome:
        call = advance_call(schedule_id, expected_cursor, new_cursor, next_run, now, extra)
        return _outcome(await self._broker.run(call))

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
    pipe = client.pipeline(transaction=True)
    pipe.delete(keys.schedule(schedule_id))
    pipe.zrem(keys.SCHEDULES, schedule_id)
    deleted, _ = pipe.execute()
    return bool(deleted)

"""What a scheduler does for one schedule at one moment. Pure: the service applies it.

A schedule's progress is one number in Redis, its *cursor*: every tick at or before
the cursor has been decided (enqueued, skipped or collapsed). A step moves the cursor
forward; the store applies it only if the cursor is still the one the step was
computed from (compare-and-set), so among any number of schedulers exactly one
applies each step.

A tick is *missed* when a scheduler first sees it more than ``grace`` seconds after
its time (every scheduler was down, or Redis was unreachable). Ticks that are late by
less than ``grace`` run normally, in order; missed ones follow the schedule's policy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from bananas.scheduler.definition import MissedPolicy, Schedule


class Action(StrEnum):
    WAIT = "wait"  # nothing due before ``next_run``
    FIRE = "fire"  # enqueue one job for ``tick`` and move the cursor to it
    SKIP = "skip"  # move the cursor past missed ticks without enqueuing
    EXHAUSTED = "exhausted"  # the expression has no further tick


@dataclass(frozen=True, slots=True)
class Step:
    action: Action
    cursor: int
    tick: int | None = None
    next_run: int | None = None
    #: The missed ticks this step disposes of (SKIP, or a catch-up FIRE).
    missed_from: int | None = None
    missed_to: int | None = None

    @property
    def catch_up(self) -> bool:
        return self.action is Action.FIRE and self.missed_from is not None


def next_step(schedule: Schedule, cursor: int, now: float) -> Step:
    """The step to take for ``schedule`` whose cursor is ``cursor``, at time ``now``."""
    cron = schedule.cron
    first = cron.next_after(cursor)
    if first is None:
        return Step(Action.EXHAUSTED, cursor)
    if first > now:
        return Step(Action.WAIT, cursor, next_run=first)
    if first >= now - schedule.grace:
        return Step(Action.FIRE, first, tick=first, next_run=cron.next_after(first))
    # Ticks before ``late_before`` are missed (integers t < now - grace).
    last_missed_allowed = math.ceil(now - schedule.grace) - 1
    last_missed = cron.last_at_or_before(last_missed_allowed)
    if last_missed is None or last_missed < first:  # pragma: no cover - defensive
        last_missed = first
    if schedule.missed is MissedPolicy.SKIP:
        return Step(
            Action.SKIP, last_missed_allowed, next_run=cron.next_after(last_missed_allowed),
            missed_from=first, missed_to=last_missed,
        )  # fmt: skip
    return Step(
        Action.FIRE, last_missed, tick=last_missed, next_run=cron.next_after(last_missed),
        missed_from=first, missed_to=last_missed,
    )  # fmt: skip


def first_cursor(now: float) -> int:
    """Cursor of a schedule seen for the first time: its first run is its first tick
    after this moment (never a tick from before the schedule existed)."""
    return math.floor(now)

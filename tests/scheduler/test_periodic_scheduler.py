"""The scheduler against a real server, with a fake clock: jobs, DST days, missed ticks,
restarts, concurrent schedulers, errors, promotion."""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime

import pytest
import redis
from periodic_support import FakeClock, local_ts, queued_jobs, state, ticks_of

from bananas import Client, Job, JobStatus, Registry, Worker, WorkerSettings
from bananas.core.clock import Clock
from bananas.redis import keys
from bananas.scheduler import Schedule
from bananas.scheduler.definition import tick_job_id
from bananas.scheduler.service import Scheduler

BERLIN = "Europe/Berlin"
Factory = Callable[..., Scheduler]


@pytest.fixture
async def make_scheduler(redis_url: str) -> AsyncIterator[Factory]:
    """Builds started-later schedulers (each with its own connection) and closes them."""
    made: list[Scheduler] = []

    def factory(schedules: Sequence[Schedule], clock: Clock, *, promote: bool = False) -> Scheduler:
        scheduler = Scheduler(schedules, redis_url=redis_url, clock=clock, promote=promote)
        made.append(scheduler)
        return scheduler

    yield factory
    for scheduler in made:
        await scheduler.aclose()


async def drive(schedulers: Sequence[Scheduler], clock: FakeClock, until: float, *, lag: float = 0.3) -> int:
    """Move the clock from wake-up to wake-up (arriving ``lag`` seconds late, like a real
    loop) and let every scheduler take its steps; returns the jobs enqueued."""
    total = 0
    for _ in range(100_000):
        wakes = [w for w in (s.next_wakeup() for s in schedulers) if w is not None]
        if not wakes or min(wakes) > until:
            return total
        clock.set(max(clock.now(), min(wakes) + lag))
        total += sum(await asyncio.gather(*(s.run_pending() for s in schedulers)))
    raise AssertionError("drive did not finish")


def minute(ts: float) -> int:
    return int(ts) // 60 * 60


# -- the jobs -----------------------------------------------------------------------------


async def test_ticks_become_normal_jobs_on_the_schedule_route(
    make_scheduler: Factory, r: redis.Redis, redis_url: str
) -> None:
    start = minute(datetime(2026, 6, 1, 12, tzinfo=UTC).timestamp()) + 5
    clock = FakeClock(start)
    schedule = Schedule.create(
        "* * * * *", "cleanup", {"older_than": 7}, routing_key="maint", priority="high", max_retries=1
    )
    scheduler = make_scheduler([schedule], clock)
    await scheduler.start()
    assert await drive([scheduler], clock, start + 5 * 60) == 5

    jobs = queued_jobs(r, "maint", "high")
    assert ticks_of(jobs) == [f"2026-06-01T12:0{m}:00+00:00" for m in range(1, 6)]
    for job in jobs:
        assert (job.name, job.payload, job.status, job.max_retries) == ("cleanup", {"older_than": 7}, "pending", 1)
        assert job.id == tick_job_id("cleanup", int(datetime.fromisoformat(job.extra["schedule_tick"]).timestamp()))
        assert job.extra["schedule_id"] == "cleanup"
    assert r.sismember(keys.ROUTING_KEYS, "maint")

    saved = state(r, "cleanup")
    last_tick = minute(start) + 300
    assert saved["run_count"] == "5"
    assert saved["last_run"] == str(last_tick) == saved["cursor"]
    assert saved["next_run"] == str(last_tick + 60)
    assert saved["last_job_id"] == jobs[-1].id
    assert (saved["cron"], saved["timezone"], saved["job"], saved["routing_key"], saved["priority"]) == (
        "* * * * *", "UTC", "cleanup", "maint", "high",
    )  # fmt: skip
    assert r.zscore(keys.SCHEDULES, "cleanup") == last_tick + 60

    # A worker on the route runs them like any other job.
    registry = Registry()
    ran: list[Job] = []

    @registry.handler("cleanup")
    def cleanup(job: Job) -> None:
        ran.append(job)

    worker = Worker(registry, WorkerSettings(redis_url=redis_url, routing_keys=("maint",)))
    task = asyncio.create_task(worker.run())
    for _ in range(250):
        if len(ran) == 5:
            break
        await asyncio.sleep(0.02)
    worker.stop()
    await task
    assert sorted(j.id for j in ran) == sorted(j.id for j in jobs)
    with Client(redis_url) as client:
        done = client.get_job(jobs[0].id)
    assert done is not None and done.status is JobStatus.COMPLETED


async def test_first_run_is_the_first_tick_after_the_schedule_appears(make_scheduler: Factory, r: redis.Redis) -> None:
    start = datetime(2026, 6, 1, 12, 0, 30, tzinfo=UTC).timestamp()
    clock = FakeClock(start)
    scheduler = make_scheduler([Schedule.create("0 * * * *", "hourly")], clock)
    await scheduler.start()
    assert await drive([scheduler], clock, start + 3600) == 1
    assert ticks_of(queued_jobs(r)) == ["2026-06-01T13:00:00+00:00"]


# -- DST ------------------------------------------------------------------------------------


@pytest.mark.parametrize("cron", ["30 2 * * *", "0 30 2 * * *"])
@pytest.mark.parametrize(
    ("first_day", "expected"),
    [
        (
            (2026, 3, 28),  # Berlin springs forward on 2026-03-29: 02:00 -> 03:00
            ["2026-03-28T02:30:00+01:00", "2026-03-29T03:00:00+02:00", "2026-03-30T02:30:00+02:00"],
        ),
        (
            (2026, 10, 24),  # Berlin falls back on 2026-10-25: 03:00 -> 02:00
            ["2026-10-24T02:30:00+02:00", "2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00"],
        ),
    ],
)
async def test_daily_0230_runs_once_per_day_across_dst(
    make_scheduler: Factory, r: redis.Redis, cron: str, first_day: tuple[int, int, int], expected: list[str]
) -> None:
    start = local_ts(BERLIN, *first_day, 0, 0)
    clock = FakeClock(start)
    scheduler = make_scheduler([Schedule.create(cron, "nightly", timezone=BERLIN)], clock)
    await scheduler.start()
    assert await drive([scheduler], clock, start + 3 * 86400) == 3
    assert ticks_of(queued_jobs(r), BERLIN) == expected


async def test_fall_back_polling_through_the_repeated_hour_does_not_run_twice(
    make_scheduler: Factory, r: redis.Redis
) -> None:
    # A scheduler that wakes every 20 s through the night, including both passes of 02:xx.
    start = local_ts(BERLIN, 2026, 10, 25, 0, 0)
    clock = FakeClock(start)
    schedules = [
        Schedule.create("30 2 * * *", "five-field", timezone=BERLIN),
        Schedule.create("0 30 2 * * *", "six-field", timezone=BERLIN),
        Schedule.create("*/30 * * * *", "half-hourly", timezone=BERLIN),
    ]
    scheduler = make_scheduler(schedules, clock)
    await scheduler.start()
    for step in range(1, 6 * 180 + 1):
        clock.set(start + step * 20)
        await scheduler.run_pending()
    by_name = Counter(job.name for job in queued_jobs(r))
    assert by_name["five-field"] == 1
    assert by_name["six-field"] == 1
    # six real hours pass (the wall clock shows 02:xx twice): twelve half-hour ticks
    assert by_name["half-hourly"] == 12


async def test_spring_forward_polling_runs_a_skipped_time_once(make_scheduler: Factory, r: redis.Redis) -> None:
    start = local_ts(BERLIN, 2026, 3, 29, 0, 0)
    clock = FakeClock(start)
    scheduler = make_scheduler([Schedule.create("30 2 * * *", "nightly", timezone=BERLIN)], clock)
    await scheduler.start()
    for step in range(1, 5 * 180):
        clock.set(start + step * 20)
        await scheduler.run_pending()
    assert ticks_of(queued_jobs(r), BERLIN) == ["2026-03-29T03:00:00+02:00"]


# -- restarts and missed ticks ----------------------------------------------------------------


async def run_then_outage(
    make_scheduler: Factory, schedule: Schedule, base: int, outage_until: float
) -> tuple[Scheduler, FakeClock]:
    """One scheduler runs 5 minutes, every scheduler is down until ``outage_until``, then a
    new one starts (same Redis) and takes one pass."""
    clock = FakeClock(base)
    first = make_scheduler([schedule], clock)
    await first.start()
    assert await drive([first], clock, base + 300) == 5
    await first.aclose()
    clock.set(outage_until)
    second = make_scheduler([schedule], clock)
    await second.start()
    await second.run_pending()
    return second, clock


BASE = minute(datetime(2026, 6, 1, 8, tzinfo=UTC).timestamp())


async def test_missed_policy_once_collapses_missed_ticks_into_one_run(make_scheduler: Factory, r: redis.Redis) -> None:
    schedule = Schedule.create("* * * * *", "sync", missed="once", grace=60)
    await run_then_outage(make_scheduler, schedule, BASE, BASE + 3610)
    ticks = [int(datetime.fromisoformat(t).timestamp()) - BASE for t in ticks_of(queued_jobs(r))]
    # 5 before the outage; one catch-up for the latest missed tick (older than now - grace);
    # the tick at +3600 is only 10 s late, within grace, so it runs normally.
    assert ticks == [60, 120, 180, 240, 300, 3540, 3600]
    saved = state(r, "sync")
    assert saved["run_count"] == "7"
    assert (saved["last_missed_from"], saved["last_missed_to"], saved["last_missed_policy"]) == (
        str(BASE + 360), str(BASE + 3540), "once",
    )  # fmt: skip


async def test_missed_policy_skip_drops_missed_ticks(make_scheduler: Factory, r: redis.Redis) -> None:
    schedule = Schedule.create("* * * * *", "sync", missed="skip", grace=60)
    scheduler, clock = await run_then_outage(make_scheduler, schedule, BASE, BASE + 3610)
    ticks = [int(datetime.fromisoformat(t).timestamp()) - BASE for t in ticks_of(queued_jobs(r))]
    assert ticks == [60, 120, 180, 240, 300, 3600]
    saved = state(r, "sync")
    assert (saved["last_missed_from"], saved["last_missed_to"], saved["last_missed_policy"]) == (
        str(BASE + 360), str(BASE + 3540), "skip",
    )  # fmt: skip
    # and it carries on normally afterwards
    await drive([scheduler], clock, BASE + 3600 + 120)
    assert len(queued_jobs(r)) == 8


@pytest.mark.parametrize("policy", ["skip", "once"])
async def test_short_outage_within_grace_replays_every_tick(
    make_scheduler: Factory, r: redis.Redis, policy: str
) -> None:
    schedule = Schedule.create("*/10 * * * * *", "sync", missed=policy, grace=60)
    base = BASE
    clock = FakeClock(base)
    first = make_scheduler([schedule], clock)
    await first.start()
    await drive([first], clock, base + 30)
    await first.aclose()
    clock.set(base + 75)  # down for ~45 s: late ticks, none older than grace
    second = make_scheduler([schedule], clock)
    await second.start()
    await second.run_pending()
    ticks = [int(datetime.fromisoformat(t).timestamp()) - base for t in ticks_of(queued_jobs(r))]
    assert ticks == [10, 20, 30, 40, 50, 60, 70]
    assert "last_missed_from" not in state(r, "sync")


async def test_restart_keeps_the_cursor_and_a_new_definition_updates_next_run(
    make_scheduler: Factory, r: redis.Redis
) -> None:
    clock = FakeClock(BASE)
    first = make_scheduler([Schedule.create("* * * * *", "sync")], clock)
    await first.start()
    await drive([first], clock, BASE + 120)
    await first.aclose()
    # Restarted with a new cron: the stored cursor is kept, next_run follows the new cron.
    clock.set(BASE + 150)
    second = make_scheduler([Schedule.create("*/5 * * * *", "sync")], clock)
    await second.start()
    saved = state(r, "sync")
    assert saved["cursor"] == str(BASE + 120)
    assert saved["cron"] == "*/5 * * * *"
    assert saved["next_run"] == str(BASE + 300)
    assert await drive([second], clock, BASE + 600) == 2


async def test_forgotten_state_is_recreated_without_rerunning_old_ticks(
    make_scheduler: Factory, r: redis.Redis
) -> None:
    clock = FakeClock(BASE)
    scheduler = make_scheduler([Schedule.create("* * * * *", "sync")], clock)
    await scheduler.start()
    await drive([scheduler], clock, BASE + 120)
    r.delete(keys.schedule("sync"))
    r.zrem(keys.SCHEDULES, "sync")
    clock.set(BASE + 200)
    # The fire attempt for 180 finds no state, so the schedule is registered afresh: its
    # cursor becomes "now" and nothing from before (not even 180) runs.
    assert await scheduler.run_pending() == 0
    assert state(r, "sync")["cursor"] == str(BASE + 200)
    await drive([scheduler], clock, BASE + 240)
    assert ticks_of(queued_jobs(r))[-1] == "2026-06-01T08:04:00+00:00"
    assert len(queued_jobs(r)) == 3


# -- several schedulers ------------------------------------------------------------------------


class SkewedClock:
    """A scheduler's own clock: the shared fake time plus a fixed error."""

    def __init__(self, base: FakeClock, offset: float) -> None:
        self.base = base
        self.offset = offset

    def now(self) -> float:
        return self.base.now() + self.offset


async def test_three_concurrent_schedulers_enqueue_each_tick_once(make_scheduler: Factory, r: redis.Redis) -> None:
    base = FakeClock(BASE)
    schedules = [
        Schedule.create("* * * * * *", "every-second", routing_key="fast"),
        Schedule.create("*/7 * * * * *", "every-7", routing_key="fast"),
    ]
    schedulers = [make_scheduler(schedules, SkewedClock(base, offset)) for offset in (-0.4, 0.0, 0.35)]
    for scheduler in schedulers:
        await scheduler.start()
    rng = random.Random(7)
    enqueued = 0
    for step in range(1, 2 * 300 + 1):  # 300 simulated seconds, a look every half second
        base.set(BASE + step / 2 + rng.uniform(0, 0.05))
        order = schedulers[:]
        rng.shuffle(order)
        enqueued += sum(await asyncio.gather(*(s.run_pending() for s in order)))
    jobs = queued_jobs(r, "fast")
    ticks = Counter((job.name, job.extra["schedule_tick"]) for job in jobs)
    assert max(ticks.values()) == 1, "a tick was enqueued twice"
    seconds = sorted(int(datetime.fromisoformat(t).timestamp()) for name, t in ticks if name == "every-second")
    assert seconds == list(range(seconds[0], seconds[-1] + 1)), "a tick is missing"
    assert len(seconds) >= 299
    assert enqueued == len(jobs) == int(state(r, "every-second")["run_count"]) + int(state(r, "every-7")["run_count"])
    winners = [s.enqueued for s in schedulers]
    assert sum(winners) == len(jobs) and sum(1 for w in winners if w) >= 2, winners


# -- errors ---------------------------------------------------------------------------------------


async def test_enqueue_error_is_recorded_and_the_tick_still_runs_once_fixed(
    make_scheduler: Factory, r: redis.Redis
) -> None:
    clock = FakeClock(BASE)
    scheduler = make_scheduler([Schedule.create("* * * * *", "sync", routing_key="broken")], clock)
    await scheduler.start()
    r.set(keys.route_queue("broken", "normal"), "not a list")  # WRONGTYPE for LPUSH
    clock.set(BASE + 61)
    assert await scheduler.run_pending() == 0
    saved = state(r, "sync")
    assert "WRONGTYPE" in saved["last_error"]
    assert saved["cursor"] == str(BASE) and saved["run_count"] == "0"
    assert r.get(keys.job(tick_job_id("sync", BASE + 60))) is None  # nothing half-written
    wake = scheduler.next_wakeup()
    assert wake is not None and wake >= BASE + 62  # the schedule is retried with backoff, not in a hot loop
    r.delete(keys.route_queue("broken", "normal"))
    clock.set(BASE + 70)
    assert await scheduler.run_pending() == 1
    assert ticks_of(queued_jobs(r, "broken")) == ["2026-06-01T08:01:00+00:00"]


async def test_tick_already_enqueued_is_not_enqueued_again(make_scheduler: Factory, r: redis.Redis) -> None:
    clock = FakeClock(BASE)
    scheduler = make_scheduler([Schedule.create("* * * * *", "sync")], clock)
    await scheduler.start()
    await drive([scheduler], clock, BASE + 60)
    assert len(queued_jobs(r)) == 1
    # Someone rewinds the cursor (a restored backup): the job id of the tick exists already.
    r.hset(keys.schedule("sync"), "cursor", str(BASE))
    clock.set(BASE + 65)
    other = make_scheduler([Schedule.create("* * * * *", "sync")], clock)
    await other.start()
    assert await other.run_pending() == 0
    assert len(queued_jobs(r)) == 1
    assert state(r, "sync")["cursor"] == str(BASE + 60)


# -- the service loop: promotion and stop ---------------------------------------------------------


async def test_run_promotes_due_scheduled_jobs_and_stops(redis_url: str, r: redis.Redis) -> None:
    scheduler = Scheduler([], redis_url=redis_url)
    task = asyncio.create_task(scheduler.run())
    with Client(redis_url) as client:
        job_id = client.schedule_job("later", {"n": 1}, delay=0.3, routing_key="timed", priority="low")
    for _ in range(250):
        if r.lrange(keys.route_queue("timed", "low"), 0, -1):
            break
        await asyncio.sleep(0.02)
    scheduler.stop()
    await asyncio.wait_for(task, 10)
    assert [j.id for j in queued_jobs(r, "timed", "low")] == [job_id]
    assert r.zcard(keys.SCHEDULED) == 0

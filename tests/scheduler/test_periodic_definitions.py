"""Cron parsing, time zones, DST arithmetic, missed-tick decisions, schedule files. Pure: no Redis."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from periodic_support import local_ts

from bananas import ConfigurationError, Registry, ValidationError
from bananas.core.priority import Priority
from bananas.scheduler import CronSpec, MissedPolicy, Schedule
from bananas.scheduler.cron import ALIASES
from bananas.scheduler.definition import ScheduleError, tick_job_id
from bananas.scheduler.policy import Action, next_step
from bananas.scheduler.schedule_file import load_schedule_file


def walk(spec: CronSpec, start: float, end: float, limit: int = 100_000) -> list[str]:
    """Every tick in (start, end] (at most ``limit``), as local RFC 3339."""
    out: list[str] = []
    t = int(start)
    while len(out) < limit:
        nxt = spec.next_after(t)
        if nxt is None or nxt > end:
            return out
        out.append(datetime.fromtimestamp(nxt, spec.tz).isoformat())
        t = nxt
    return out


# -- parsing ----------------------------------------------------------------------------


def test_five_field_hours_step() -> None:
    spec = CronSpec("0 */5 * * *")
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert walk(spec, start, start + 24 * 3600) == [
        "2026-01-01T05:00:00+00:00",
        "2026-01-01T10:00:00+00:00",
        "2026-01-01T15:00:00+00:00",
        "2026-01-01T20:00:00+00:00",
        "2026-01-02T00:00:00+00:00",
    ]


def test_six_field_expression_has_a_leading_seconds_field() -> None:
    spec = CronSpec("*/20 * * * * *")
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert walk(spec, start, start + 60) == [
        "2026-01-01T00:00:20+00:00",
        "2026-01-01T00:00:40+00:00",
        "2026-01-01T00:01:00+00:00",
    ]
    # sec min hour dom mon dow: 15 seconds past 10:30 every day
    daily = CronSpec("15 30 10 * * *")
    assert walk(daily, start, start + 2 * 86400) == ["2026-01-01T10:30:15+00:00", "2026-01-02T10:30:15+00:00"]


def test_every_second() -> None:
    spec = CronSpec("* * * * * *")
    assert [spec.next_after(t) for t in (100, 101, 102)] == [101, 102, 103]
    assert spec.last_at_or_before(100) == 100


@pytest.mark.parametrize(
    ("alias", "first_two"),
    [
        ("@hourly", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
        ("@daily", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@midnight", ["2026-01-02T00:00:00+00:00", "2026-01-03T00:00:00+00:00"]),
        ("@weekly", ["2026-01-04T00:00:00+00:00", "2026-01-11T00:00:00+00:00"]),  # Sundays
        ("@monthly", ["2026-02-01T00:00:00+00:00", "2026-03-01T00:00:00+00:00"]),
        ("@yearly", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@annually", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
        ("@HOURLY", ["2026-01-01T01:00:00+00:00", "2026-01-01T02:00:00+00:00"]),
    ],
)
def test_aliases(alias: str, first_two: list[str]) -> None:
    spec = CronSpec(alias)
    start = datetime(2026, 1, 1, tzinfo=UTC).timestamp()
    assert walk(spec, start, start + 2 * 366 * 86400, limit=2) == first_two


def test_aliases_match_their_expansion() -> None:
    start = int(datetime(2026, 5, 17, 13, 7, tzinfo=UTC).timestamp())
    for alias, expansion in ALIASES.items():
        assert CronSpec(alias).next_after(start) == CronSpec(expansion).next_after(start)


@pytest.mark.parametrize(
    ("cron", "fragment"),
    [
        ("0 */5 * *", "it has 4 fields"),
        ("* * * * * * *", "it has 7 fields"),
        ("61 * * * *", "bad minute"),
        ("0 25 * * *", "bad hour"),
        ("61 * * * * *", "bad second"),
        ("0 0 30 2 *", "bad day-of-month"),
        ("0 0 * 13 *", "bad month"),
        ("0 0 * * 8", "bad day-of-week"),
        ("@reboot", "unknown cron alias '@reboot'"),
        ("@every 5s", "unknown cron alias"),
        ("", "must be a non-empty string"),
        ("* * */20 * 1L", "never matches"),
    ],
)
def test_invalid_expressions_name_the_schedule(cron: str, fragment: str) -> None:
    registry = Registry()
    with pytest.raises(ScheduleError) as caught:
        registry.periodic(cron, "cleanup", schedule_id="nightly-cleanup")
    message = str(caught.value)
    assert message.startswith("schedule 'nightly-cleanup': ")
    assert fragment in message
    assert isinstance(caught.value, ValidationError)
    assert registry.schedules == []


def test_wrong_field_count_explains_the_forms() -> None:
    with pytest.raises(ScheduleError, match=r"6 fields with a leading seconds field .*@hourly"):
        Schedule.create("* * *", "cleanup")


@pytest.mark.parametrize("zone", ["Europe/Berln", "Mars/Olympus", "../etc/passwd", ""])
def test_invalid_time_zone_names_the_schedule(zone: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        Registry().periodic("0 3 * * *", "cleanup", timezone=zone)
    assert str(caught.value).startswith("schedule 'cleanup': ")
    assert "time zone" in str(caught.value)


def test_other_invalid_options_name_the_schedule() -> None:
    cases = [
        ({"routing_key": "has space"}, "invalid routing key"),
        ({"priority": "urgent"}, "unknown priority"),
        ({"missed": "all"}, "unknown missed-tick policy"),
        ({"grace": -1}, "grace must be"),
        ({"grace": 0.5}, "grace must be a number of seconds >= 1"),
        ({"max_retries": -1}, "max_retries"),
        ({"payload": {"x": float("nan")}}, "NaN"),
        ({"payload": object()}, "not JSON-serializable"),
        ({"schedule_id": "has:colon"}, "invalid schedule id"),
    ]
    for options, fragment in cases:
        with pytest.raises(ScheduleError, match=fragment) as caught:
            Registry().periodic("0 3 * * *", "cleanup", **options)  # type: ignore[arg-type]
        assert str(caught.value).startswith("schedule ")


def test_default_id_is_the_job_name_and_ids_are_unique() -> None:
    registry = Registry()
    first = registry.periodic("0 3 * * *", "cleanup")
    assert first.id == "cleanup"
    with pytest.raises(ScheduleError, match="already defined"):
        registry.periodic("0 4 * * *", "cleanup")
    second = registry.periodic("0 4 * * *", "cleanup", {"deep": True}, schedule_id="cleanup-deep")
    assert [s.id for s in registry.schedules] == ["cleanup", "cleanup-deep"]
    assert second.payload == {"deep": True}
    with pytest.raises(ScheduleError, match="pass schedule_id"):
        registry.periodic("0 3 * * *", "app:cleanup")


def test_issue_example_signature() -> None:
    registry = Registry()
    schedule = registry.periodic(
        "0 */5 * * *", "cleanup", {"older_than": 7}, routing_key="maintenance", priority="low",
        timezone="Europe/Berlin",
    )  # fmt: skip
    assert schedule.routing_key == "maintenance" and schedule.priority is Priority.LOW
    assert schedule.cron.timezone == "Europe/Berlin" and schedule.missed is MissedPolicy.ONCE


def test_payload_is_a_snapshot() -> None:
    payload = {"items": [1, 2]}
    schedule = Schedule.create("* * * * *", "cleanup", payload)
    payload["items"].append(3)
    assert schedule.payload == {"items": [1, 2]}


def test_scheduled_job_is_a_normal_job_with_its_tick() -> None:
    schedule = Schedule.create("0 3 * * *", "cleanup", {"a": 1}, routing_key="maint", priority="high", max_retries=5)
    tick = int(datetime(2026, 4, 1, 3, tzinfo=UTC).timestamp())
    job = schedule.build_job(tick, tick + 0.25)
    assert job.id == tick_job_id("cleanup", tick) != tick_job_id("cleanup", tick + 1)
    assert (job.name, job.payload, job.routing_key, job.priority, job.max_retries) == (
        "cleanup", {"a": 1}, "maint", Priority.HIGH, 5,
    )  # fmt: skip
    record = job.to_dict()
    assert record["status"] == "pending"
    assert record["schedule_id"] == "cleanup"
    assert record["schedule_tick"] == "2026-04-01T03:00:00.000000Z"


# -- DST arithmetic ---------------------------------------------------------------------

BERLIN = "Europe/Berlin"
NEW_YORK = "America/New_York"


@pytest.mark.parametrize("seconds", ["", "0 "])
@pytest.mark.parametrize(
    ("zone", "time", "day", "expected"),
    [
        # spring forward: 02:30 does not exist; the job runs once, right after the jump
        (BERLIN, "30 2", (2026, 3, 29), ["2026-03-29T03:00:00+02:00"]),
        (NEW_YORK, "30 2", (2026, 3, 8), ["2026-03-08T03:00:00-04:00"]),
        # fall back: the time happens twice; the job runs once, at the first one
        (BERLIN, "30 2", (2026, 10, 25), ["2026-10-25T02:30:00+02:00"]),
        (NEW_YORK, "30 1", (2026, 11, 1), ["2026-11-01T01:30:00-04:00"]),
        # ordinary days around them
        (BERLIN, "30 2", (2026, 3, 30), ["2026-03-30T02:30:00+02:00"]),
        (BERLIN, "30 2", (2026, 10, 26), ["2026-10-26T02:30:00+01:00"]),
    ],
)
def test_fixed_time_runs_once_on_dst_days(
    seconds: str, zone: str, time: str, day: tuple[int, int, int], expected: list[str]
) -> None:
    spec = CronSpec(f"{seconds}{time} * * *", zone)  # 5 fields, and 6 with a seconds field
    start = local_ts(zone, *day, 0, 0)
    end = local_ts(zone, *day, 23, 59)
    assert walk(spec, start, end) == expected


def test_fixed_time_with_several_seconds_keeps_dst_rule() -> None:
    spec = CronSpec("0,30 30 2 * * *", BERLIN)
    assert walk(spec, local_ts(BERLIN, 2026, 10, 25, 0, 0), local_ts(BERLIN, 2026, 10, 25, 23, 0)) == [
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:30:30+02:00",
    ]


def test_interval_schedules_follow_real_time_across_dst() -> None:
    spec = CronSpec("*/30 * * * *", BERLIN)
    fall = walk(spec, local_ts(BERLIN, 2026, 10, 25, 1, 45), local_ts(BERLIN, 2026, 10, 25, 3, 0))
    # two real hours pass between 02:00 CEST and 03:00 CET: four half-hour ticks, then 03:00
    assert fall == [
        "2026-10-25T02:00:00+02:00",
        "2026-10-25T02:30:00+02:00",
        "2026-10-25T02:00:00+01:00",
        "2026-10-25T02:30:00+01:00",
        "2026-10-25T03:00:00+01:00",
    ]
    spring = walk(spec, local_ts(BERLIN, 2026, 3, 29, 1, 45), local_ts(BERLIN, 2026, 3, 29, 3, 45))
    assert spring == ["2026-03-29T03:00:00+02:00", "2026-03-29T03:30:00+02:00"]


def test_last_at_or_before_inside_a_repeated_hour() -> None:
    spec = CronSpec("30 2 * * *", BERLIN)
    second_pass = int(local_ts(BERLIN, 2026, 10, 25, 2, 20, fold=1))
    last = spec.last_at_or_before(second_pass)
    assert last is not None
    assert datetime.fromtimestamp(last, ZoneInfo(BERLIN)).isoformat() == "2026-10-25T02:30:00+02:00"


# -- missed-tick decisions ----------------------------------------------------------------


def test_next_step_waits_fires_and_replays_ticks_within_grace() -> None:
    schedule = Schedule.create("* * * * *", "cleanup", grace=120)
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    assert next_step(schedule, base, base + 30).action is Action.WAIT
    step = next_step(schedule, base, base + 100)  # 40 s late: within grace
    assert (step.action, step.tick, step.next_run, step.catch_up) == (Action.FIRE, base + 60, base + 120, False)


@pytest.mark.parametrize("policy", ["skip", "once"])
def test_next_step_missed_ticks(policy: str) -> None:
    schedule = Schedule.create("* * * * *", "cleanup", missed=policy, grace=60)
    base = int(datetime(2026, 1, 1, tzinfo=UTC).timestamp())
    now = base + 3600 + 30  # an hour down; ticks older than now - 60 are missed
    step = next_step(schedule, base, now)
    assert step.missed_from == base + 60
    assert step.missed_to == base + 3540  # the last tick older than the grace window
    if policy == "skip":
        assert step.action is Action.SKIP and step.cursor == base + 3569
        assert step.next_run == base + 3600  # still within grace: it will run
    else:
        assert step.action is Action.FIRE and step.tick == base + 3540 and step.catch_up


# -- schedule files -----------------------------------------------------------------------

FILE = """
[defaults]
timezone = "Europe/Berlin"
routing_key = "maintenance"
missed = "skip"

[schedules.nightly-cleanup]
cron = "0 3 * * *"
job = "cleanup"
payload = { older_than_days = 30, tables = ["a", "b"] }
priority = "low"

[schedules."reports.hourly"]
cron = "@hourly"
job = "report"
routing_key = "reports"
timezone = "UTC"
missed = "once"
grace = 300
max_retries = 0
description = "hourly numbers"

[schedules.heartbeat]
cron = "*/10 * * * * *"
job = "heartbeat"
"""


def test_schedule_file(tmp_path: Path) -> None:
    path = tmp_path / "schedules.toml"
    path.write_text(FILE)
    cleanup, report, heartbeat = load_schedule_file(path)
    assert (cleanup.id, cleanup.job, cleanup.cron.expression, cleanup.cron.timezone) == (
        "nightly-cleanup", "cleanup", "0 3 * * *", "Europe/Berlin",
    )  # fmt: skip
    assert cleanup.payload == {"older_than_days": 30, "tables": ["a", "b"]}
    assert (cleanup.routing_key, cleanup.priority, cleanup.missed) == ("maintenance", Priority.LOW, MissedPolicy.SKIP)
    assert (report.id, report.routing_key, report.cron.timezone, report.missed, report.grace) == (
        "reports.hourly", "reports", "UTC", MissedPolicy.ONCE, 300.0,
    )  # fmt: skip
    assert (report.max_retries, report.description) == (0, "hourly numbers")
    assert heartbeat.payload is None and heartbeat.routing_key == "maintenance"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ('[schedules.a]\ncron = "0 3 * *"\njob = "x"\n', "schedule 'a': invalid cron expression"),
        (
            '[schedules.a]\ncron = "0 3 * * *"\njob = "x"\ntimezone = "Nowhere/City"\n',
            "schedule 'a': unknown time zone",
        ),
        ('[schedules.a]\ncron = "0 3 * * *"\njob = "x"\ncorn = 1\n', "schedule 'a': unknown key(s) ['corn']"),
        ('[schedules.a]\njob = "x"\n', "schedule 'a': missing required key(s) ['cron']"),
        ('[schedules.a]\ncron = 5\njob = "x"\n', "schedule 'a': cron must be a string"),
        ('[schedules."a:b"]\ncron = "@daily"\njob = "x"\n', "invalid schedule id"),
        ('[schedule.a]\ncron = "@daily"\njob = "x"\n', "unknown top-level key(s) ['schedule']"),
        ('[defaults]\ncron = "@daily"\n', "[defaults] has unknown key(s) ['cron']"),
        ("[schedules.a\n", "not valid TOML"),
    ],
)
def test_schedule_file_errors_name_file_and_schedule(tmp_path: Path, text: str, fragment: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigurationError) as caught:
        load_schedule_file(path)
    assert str(path) in str(caught.value)
    assert fragment in str(caught.value)


def test_missing_schedule_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read schedule file"):
        load_schedule_file(tmp_path / "nope.toml", "BANANAS_SCHEDULES")

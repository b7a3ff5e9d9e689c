"""Schedules from a TOML file (``bananas scheduler --schedules FILE`` or $BANANAS_SCHEDULES).

::

    [defaults]                      # optional; applies to every schedule below
    timezone = "Europe/Berlin"
    routing_key = "maintenance"

    [schedules.nightly-cleanup]     # the table name is the schedule id
    cron = "0 3 * * *"
    job = "cleanup"
    payload = { older_than_days = 30 }
    priority = "low"

Every key is checked: an unknown key (a typo) is an error, not silently ignored.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bananas.errors import ConfigurationError
from bananas.scheduler.definition import Schedule, ScheduleError

#: Keys a schedule table may have.
SCHEDULE_KEYS = (
    "cron", "job", "payload", "routing_key", "priority", "timezone", "missed", "grace", "max_retries", "description",
)  # fmt: skip
#: Keys ``[defaults]`` may set.
DEFAULT_KEYS = ("routing_key", "priority", "timezone", "missed", "grace", "max_retries")
_REQUIRED = ("cron", "job")


def load_schedule_file(path: str | Path, setting: str = "--schedules") -> list[Schedule]:
    """Read and validate a schedule file; raise ``ConfigurationError`` naming the file,
    and the schedule when one is at fault."""
    file = Path(path)
    try:
        text = file.read_text("utf-8")
    except OSError as exc:
        raise ConfigurationError(setting, f"cannot read schedule file {str(file)!r}: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(setting, f"{file}: not valid TOML: {exc}") from None
    return parse_schedules(data, f"{setting} {file}")


def parse_schedules(data: Mapping[str, Any], source: str) -> list[Schedule]:
    unknown = sorted(set(data) - {"defaults", "schedules"})
    if unknown:
        raise ConfigurationError(source, f"unknown top-level key(s) {unknown}: expected [defaults] and [schedules.ID]")
    defaults = data.get("defaults", {})
    if not isinstance(defaults, dict):
        raise ConfigurationError(source, "[defaults] must be a table")
    bad = sorted(set(defaults) - set(DEFAULT_KEYS))
    if bad:
        raise ConfigurationError(source, f"[defaults] has unknown key(s) {bad}; it may set {list(DEFAULT_KEYS)}")
    tables = data.get("schedules", {})
    if not isinstance(tables, dict):
        raise ConfigurationError(source, "'schedules' must be tables: [schedules.ID]")
    schedules: list[Schedule] = []
    for schedule_id, table in tables.items():
        try:
            schedules.append(_one(schedule_id, table, defaults))
        except ScheduleError as exc:
            raise ConfigurationError(source, str(exc)) from None
    return schedules


def _one(schedule_id: str, table: Any, defaults: Mapping[str, Any]) -> Schedule:
    if not isinstance(table, dict):
        raise ScheduleError(schedule_id, "must be a table: [schedules.ID] with cron = ... and job = ...")
    unknown = sorted(set(table) - set(SCHEDULE_KEYS))
    if unknown:
        raise ScheduleError(schedule_id, f"unknown key(s) {unknown}; a schedule may set {list(SCHEDULE_KEYS)}")
    missing = [key for key in _REQUIRED if key not in table]
    if missing:
        raise ScheduleError(schedule_id, f"missing required key(s) {missing}")
    merged = {**defaults, **table}
    for key in ("cron", "job", "routing_key", "priority", "timezone", "missed", "description"):
        if key in merged and not isinstance(merged[key], str):
            raise ScheduleError(schedule_id, f"{key} must be a string, got {type(merged[key]).__name__}")
    options: dict[str, Any] = {k: merged[k] for k in (*DEFAULT_KEYS, "description") if k in merged}
    return Schedule.create(merged["cron"], merged["job"], merged.get("payload"), schedule_id=schedule_id, **options)

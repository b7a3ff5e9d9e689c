"""``bananas scheduler [APP]``: run periodic schedules and promote due scheduled jobs.
``bananas schedules [APP]``: list the schedules' state (last run, next run, runs, error)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time

import click

from bananas.cli.common import (
    fail,
    friendly_errors,
    load_registry,
    log_format_option,
    redis_url_option,
    resolve_log_format,
    resolve_redis_url,
    setup_logging,
)
from bananas.config import WorkerSettings
from bananas.errors import ConfigurationError
from bananas.redis import connection
from bananas.scheduler.definition import Schedule
from bananas.scheduler.schedule_file import load_schedule_file
from bananas.scheduler.service import Scheduler
from bananas.scheduler.state import ScheduleState
from bananas.scheduler.store import forget, read_states

SCHEDULES_ENV = "BANANAS_SCHEDULES"

schedules_option = click.option(
    "--schedules",
    "schedules_file",
    default=None,
    metavar="FILE",
    help=f"TOML file of schedules, in addition to APP's (${SCHEDULES_ENV}).",
)


def collect_schedules(app: str | None, schedules_file: str | None) -> list[Schedule]:
    """Schedules of APP's registry plus those of the file (flag, else $BANANAS_SCHEDULES)."""
    found: list[Schedule] = []
    if app:
        found.extend(load_registry(app).schedules)
    path = schedules_file or os.environ.get(SCHEDULES_ENV, "").strip() or None
    if path:
        setting = "--schedules" if schedules_file else SCHEDULES_ENV
        try:
            found.extend(load_schedule_file(path, setting))
        except ConfigurationError as exc:
            fail(str(exc))
    ids: set[str] = set()
    for schedule in found:
        if schedule.id in ids:
            fail(f"schedule {schedule.id!r} is defined twice (in APP and in the schedule file?)")
        ids.add(schedule.id)
    return found


@click.command()
@click.argument("app", required=False)
@schedules_option
@redis_url_option
@click.option("--no-promote", is_flag=True, help="Do not promote due scheduled jobs (workers do it too).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... ($BANANAS_LOG_LEVEL, default INFO).")
@log_format_option
def scheduler(
    app: str | None,
    schedules_file: str | None,
    redis_url: str | None,
    no_promote: bool,
    log_level: str | None,
    log_format: str | None,
) -> None:
    """Enqueue the periodic schedules of APP (module:attribute) and/or a schedule file.

    Run two or three for availability: each tick is enqueued exactly once across all of
    them. Also moves due scheduled jobs and retries to their ready queues.
    """
    url = resolve_redis_url(redis_url)
    setup_logging(log_level or os.environ.get("BANANAS_LOG_LEVEL") or "INFO", url, resolve_log_format(log_format))
    try:
        # The promoter parks unreadable entries like a worker's does: same settings.
        settings = WorkerSettings.from_env(os.environ, redis_url=url)
    except ConfigurationError as exc:
        fail(str(exc))
    schedules = collect_schedules(app, schedules_file)
    if not schedules:
        if no_promote:
            fail(f"nothing to do: no schedules (give APP, --schedules or ${SCHEDULES_ENV}) and --no-promote")
        logging.getLogger("bananas.scheduler").warning("no schedules defined; only promoting due scheduled jobs")
    service = Scheduler(
        schedules, redis_url=url, promote=not no_promote, failed_ttl=settings.failed_ttl,
        dead_letter_cap=settings.dead_letter_cap, compat=settings.compat,
    )  # fmt: skip
    with friendly_errors(url):
        asyncio.run(service.run(install_signal_handlers=True))
    logging.shutdown()


@click.command()
@click.argument("app", required=False)
@schedules_option
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--forget", "forget_id", default=None, metavar="ID", help="Delete the stored state of schedule ID.")
@redis_url_option
def schedules(
    app: str | None, schedules_file: str | None, as_json: bool, forget_id: str | None, redis_url: str | None
) -> None:
    """List periodic schedules: last run, next run, run count, last error.

    Reads Redis, so it needs no APP. With APP (and/or a schedule file) it also lists
    schedules no scheduler has started yet, and marks stored ones APP no longer defines.
    """
    url = resolve_redis_url(redis_url)
    defined = (
        collect_schedules(app, schedules_file) if (app or schedules_file or os.environ.get(SCHEDULES_ENV)) else None
    )
    with friendly_errors(url):
        client = connection.sync_client(url)
        try:
            if forget_id is not None:
                if not forget(client, forget_id):
                    fail(f"no stored state for schedule {forget_id!r}", code=1)
                click.echo(f"forgot schedule {forget_id!r}")
                return
            stored = read_states(client)
        finally:
            client.close()
    rows = _rows(stored, defined)
    if as_json:
        click.echo(json.dumps([{**state.to_dict(), "status": status} for state, status in rows], indent=2))
        return
    if not rows:
        click.echo("no schedules (none stored in Redis" + (", none defined)" if defined is not None else ")"))
        return
    _print_table(rows)


def _rows(stored: list[ScheduleState], defined: list[Schedule] | None) -> list[tuple[ScheduleState, str]]:
    rows: list[tuple[ScheduleState, str]] = []
    defined_ids = {s.id for s in defined} if defined is not None else None
    for state in stored:
        if defined_ids is not None and state.id not in defined_ids:
            status = "not defined"
        elif state.last_error and (state.last_run_at is None or (state.last_error_at or 0) > state.last_run_at):
            status = "error"
        else:
            status = "ok"
        rows.append((state, status))
    known = {s.id for s in stored}
    now = int(time.time())
    for schedule in defined or []:
        if schedule.id not in known:
            d = schedule.definition()
            draft = ScheduleState(
                id=schedule.id, cron=d["cron"], timezone=d["timezone"], job=d["job"], routing_key=d["routing_key"],
                priority=d["priority"], missed=d["missed"], grace=d["grace"], next_run=schedule.cron.next_after(now),
            )  # fmt: skip
            rows.append((draft, "not started"))
    return rows


def _print_table(rows: list[tuple[ScheduleState, str]]) -> None:
    header = ("ID", "JOB", "CRON", "TIME ZONE", "QUEUE", "LAST RUN", "NEXT RUN", "RUNS", "STATUS", "LAST ERROR")
    lines = [header]
    for state, status in rows:
        lines.append(
            (
                state.id,
                state.job,
                state.cron,
                state.timezone,
                f"{state.routing_key}/{state.priority}",
                _when(state, state.last_run) or "never",
                _when(state, state.next_run) or "-",
                str(state.run_count),
                status,
                state.last_error or "-",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header) - 1)]
    for line in lines:
        cells = [cell.ljust(width) for cell, width in zip(line, widths, strict=False)]
        click.echo("  ".join([*cells, line[-1]]).rstrip())


def _when(state: ScheduleState, ts: int | None) -> str | None:
    text = state.local(ts)
    return text.replace("T", " ") if text else None

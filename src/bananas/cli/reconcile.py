"""``bananas reconcile``: one full pass of the reconciler, on demand."""

from __future__ import annotations

import asyncio
import json
import os

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.cli.types import SECONDS
from bananas.config import DEFAULT_DEAD_LETTER_CAP, DEFAULT_LEASE_SECONDS, WorkerSettings
from bananas.core.clock import ServerClock
from bananas.errors import ConfigurationError
from bananas.redis import clock_sync, connection, keys
from bananas.redis.broker import Broker
from bananas.worker.reconciler import ReconcileLimits, ReconcileReport, reconcile

_DEFAULTS = ReconcileLimits()


@click.command(name="reconcile")
@click.option("--dry-run", is_flag=True, help="Report what is broken without changing anything.")
@click.option(
    "--orphan-min-age",
    type=SECONDS,
    default=_DEFAULTS.orphan_min_age,
    show_default=True,
    help="Seconds since a pending record's last update before it can count as an orphan.",
)
@click.option(
    "--max-list-entries",
    type=int,
    default=_DEFAULTS.max_list_entries,
    show_default=True,
    help="Skip the list checks when the ready and dead lists hold more entries than this.",
)
@click.option(
    "--max-scheduled",
    type=int,
    default=_DEFAULTS.max_scheduled,
    show_default=True,
    help="Skip the scheduled-set checks above this many entries.",
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@redis_url_option
def reconcile_command(
    dry_run: bool,
    orphan_min_age: float,
    max_list_entries: int,
    max_scheduled: int,
    as_json: bool,
    redis_url: str | None,
) -> None:
    """Find jobs whose bookkeeping is broken (a lease without owner or record, an id in
    two queues, a scheduled id without a record, an orphaned pending record) and put each
    back in exactly one place. Safe to run while workers run; exits 0 when done."""
    url = resolve_redis_url(redis_url)
    if orphan_min_age < 0 or max_list_entries < 0 or max_scheduled < 0:
        fail("--orphan-min-age, --max-list-entries and --max-scheduled must be 0 or more")
    try:
        settings = WorkerSettings.from_env(os.environ)
        lease, dead_cap = settings.lease_seconds, settings.dead_letter_cap
    except ConfigurationError:
        lease, dead_cap = DEFAULT_LEASE_SECONDS, DEFAULT_DEAD_LETTER_CAP
    limits = ReconcileLimits(
        max_list_entries=max_list_entries, max_scheduled=max_scheduled, orphan_min_age=orphan_min_age
    )

    async def run() -> ReconcileReport:
        client = connection.async_client(url)
        try:
            clock = ServerClock()  # the server's time, as the workers use
            await clock_sync.measure(client, clock)
            return await reconcile(
                Broker(client, layout=keys.layout_for_url(url)),
                clock,
                lease_seconds=lease,
                limits=limits,
                dry_run=dry_run,
                dead_letter_cap=dead_cap,
            )
        finally:
            await client.aclose()

    with friendly_errors(url):
        report = asyncio.run(run())
    if as_json:
        out = {
            "dry_run": dry_run,
            "repairs": [
                {"kind": r.kind, "job_id": r.job_id, "home": r.home, "detail": r.detail, "applied": r.applied}
                for r in report.repairs
            ],
            "raced": report.raced,
            "skipped": report.skipped,
            "leases": report.leases,
            "list_entries": report.list_entries,
            "scheduled": report.scheduled,
            "records_scanned": report.records_scanned,
        }
        click.echo(json.dumps(out, indent=2))
        return
    for repair in report.repairs:
        click.echo(repair.describe())
    for reason in report.skipped:
        click.echo(f"skipped: {reason}")
    click.echo(report.summary() + (" (dry run: nothing changed)" if dry_run else ""))

"""``bananas workers``, ``running``, ``queues``, ``pause``, ``resume``, ``purge``: see and
steer the fleet (docs/OPERATIONS.md). Every command reads or acts through ``Client``,
the same methods the HTTP API and the exporter use."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.client import Client
from bananas.client.inspect import QueueStats, RouteStats
from bananas.core.priority import Priority
from bananas.core.routing import validate_routing_key
from bananas.errors import ValidationError
from bananas.redis import eviction

json_option = click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
priority_option = click.option(
    "--priority", default=None, help="Only this priority of the routing key (high, normal, low)."
)


def _safe(text: str) -> str:
    """Names come from job records and worker entries, foreign data: neutralise control
    characters (terminal escape sequences) before they reach an operator's terminal."""
    return "".join(ch if ch.isprintable() else f"\\x{ord(ch):02x}" for ch in text)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    rows = [[_safe(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip())


def _ago(at: float | None, now: float) -> str:
    return "-" if at is None else f"{_duration(now - at)} ago"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.0f}s" if seconds >= 10 else f"{seconds:.1f}s"
    if seconds < 3600:
        return f"{seconds // 60:.0f}m{seconds % 60:02.0f}s"
    if seconds < 86400:
        return f"{seconds // 3600:.0f}h{seconds % 3600 // 60:02.0f}m"
    return f"{seconds // 86400:.0f}d{seconds % 86400 // 3600:02.0f}h"


def _target(routing_key: str, priority: str | None) -> tuple[str, Priority | None]:
    try:
        key = validate_routing_key(routing_key)
    except ValidationError as exc:
        fail(f"ROUTING_KEY: {exc}")
    try:
        return key, Priority.parse(priority) if priority is not None else None
    except ValidationError as exc:
        fail(f"--priority: {exc}")


def _where(key: str, priority: Priority | None) -> str:
    return key if priority is None else f"{key} ({priority.value} priority)"


@click.command()
@json_option
@redis_url_option
def workers(as_json: bool, redis_url: str | None) -> None:
    """Live workers: where they listen, what they run, their load and counters."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        found = client.workers()
        paused = client.paused() if not as_json else []
    if as_json:
        click.echo(json.dumps([w.to_json() for w in found], indent=2))
        return
    note = "paused (no worker starts their jobs): " + ", ".join(_where(p.routing_key, p.priority) for p in paused)
    if not found:
        click.echo("no live workers")
        if paused:
            click.echo(note)
        return
    now = time.time()
    rows = [
        (
            w.id,
            ",".join(w.routing_keys),
            ",".join(w.priorities),
            w.mode,
            f"{w.running}/{w.concurrency}",
            str(w.processed),
            str(w.failed),
            _ago(w.heartbeat_at, now),
            _duration(now - w.started_at if w.started_at is not None else None),
            ",".join(w.handlers) or "-",
        )
        for w in found
    ]
    headers = (
        "WORKER",
        "ROUTING KEYS",
        "PRIORITIES",
        "MODE",
        "RUNNING",
        "PROCESSED",
        "FAILED",
        "SEEN",
        "UP",
        "HANDLERS",
    )
    _table(headers, rows)
    click.echo(f"\n{len(found)} worker(s), {sum(w.running for w in found)} job(s) running")
    if paused:
        click.echo(note)


@click.command()
@json_option
@click.option("--limit", default=None, type=click.IntRange(min=1), help="Show at most this many jobs.")
@redis_url_option
def running(as_json: bool, limit: int | None, redis_url: str | None) -> None:
    """Jobs in flight now: which worker runs them, since when, until when their lease holds."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        found = client.running(limit)
    if as_json:
        click.echo(json.dumps([j.to_json() for j in found], indent=2))
        return
    if not found:
        click.echo("no jobs running")
        return
    now = time.time()
    rows = [
        (
            j.job_id,
            j.name,
            j.routing_key,
            j.priority,
            str(j.attempt),
            j.worker_id,
            _duration(now - j.started_at if j.started_at is not None else None),
            _duration(j.lease_deadline - now),
        )
        for j in found
    ]
    _table(("JOB ID", "NAME", "ROUTING KEY", "PRIORITY", "ATTEMPT", "WORKER", "RUNNING FOR", "LEASE LEFT"), rows)


@click.command()
@json_option
@redis_url_option
def queues(as_json: bool, redis_url: str | None) -> None:
    """Problems first (jobs no worker listens for, paused keys, jobs no worker can run,
    dead letters), then ready jobs per routing key and priority, in flight, consumers."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        stats = client.queue_stats()
        policy = eviction.read_policy(client.redis)
    if eviction.risk(policy) is not eviction.EvictionRisk.NONE:  # docs/RELIABILITY.md
        click.echo(f"bananas: warning: {eviction.describe(policy)}", err=True)
    if as_json:
        click.echo(json.dumps(stats.to_json(), indent=2))
        return
    _print_queues(stats)


def _print_queues(stats: QueueStats) -> None:
    problems = stats.problems
    if problems:
        click.echo("Problems:")
        for problem in problems:
            click.echo(f"  ! {_safe(problem.message)}")
        click.echo("")
    routed = [q for q in stats.queues if not q.legacy]
    names = sorted({q.routing_key for q in routed} | {r.routing_key for r in stats.routes})
    width = max([len("ROUTING KEY"), *(len(k) for k in names)])
    click.echo(
        f"{'ROUTING KEY':<{width}}  {'HIGH':>8}  {'NORMAL':>8}  {'LOW':>8}  {'TOTAL':>8}  "
        f"{'IN FLIGHT':>9}  {'CONSUMERS':>9}  {'OLDEST':>8}  STATE"
    )
    by_route = {r.routing_key: r for r in stats.routes}
    depth = {(q.routing_key, q.priority): q.ready for q in routed}
    for key in names:
        counts = [depth.get((key, p), 0) for p in Priority]
        route = by_route.get(key)
        in_flight = route.in_flight if route else 0
        consumers = route.consumers if route else 0
        oldest = _duration(route.oldest_age_seconds) if route and route.oldest_age_seconds is not None else "-"
        click.echo(
            f"{_safe(key):<{width}}  {counts[0]:>8}  {counts[1]:>8}  {counts[2]:>8}  {sum(counts):>8}  "
            f"{in_flight:>9}  {consumers:>9}  {oldest:>8}  {_state(stats, route)}".rstrip()
        )
    legacy = [q for q in stats.queues if q.legacy]
    if any(q.ready for q in legacy):
        counts = [next(q.ready for q in legacy if q.priority is p) for p in Priority]
        label = "(legacy)"
        click.echo(f"{label:<{width}}  {counts[0]:>8}  {counts[1]:>8}  {counts[2]:>8}  {sum(counts):>8}")
    click.echo(
        f"\nscheduled: {stats.scheduled}   processing: {stats.processing}   dead: {stats.dead}   "
        f"workers: {stats.workers}"
    )
    if stats.original_processing:
        click.echo(f"run by original Go workers (bananas:queue:processing): {stats.original_processing}")
    if stats.parked:
        click.echo("\nwaiting for a worker that runs them (no handler where taken, or rate limited):")
        for p in stats.parked:
            click.echo(f"  {p.routing_key}:{p.priority.value}  {_safe(p.job_name)}  {p.waiting}")


def _state(stats: QueueStats, route: RouteStats | None) -> str:
    if route is None:
        return "ok"
    if route.paused:
        return "paused"
    partly = [p.priority.value for p in stats.paused if p.routing_key == route.routing_key and p.priority is not None]
    if partly:
        return "paused: " + ",".join(partly)
    if route.orphaned:
        return "no worker"
    return "ok"


@click.command()
@click.argument("routing_key")
@priority_option
@redis_url_option
def pause(routing_key: str, priority: str | None, redis_url: str | None) -> None:
    """Stop the whole fleet from starting jobs of ROUTING_KEY (or one priority of it).

    Producers keep queueing and running jobs finish; once this returns, no worker starts
    another job from it until `bananas resume`."""
    url = resolve_redis_url(redis_url)
    key, prio = _target(routing_key, priority)
    with friendly_errors(url), Client(url) as client:
        changed = client.pause(key, prio)
    click.echo(f"paused {_where(key, prio)}" + ("" if changed else " (it already was)"))


@click.command()
@click.argument("routing_key")
@priority_option
@redis_url_option
def resume(routing_key: str, priority: str | None, redis_url: str | None) -> None:
    """Let workers take jobs of ROUTING_KEY (or that priority of it) again."""
    url = resolve_redis_url(redis_url)
    key, prio = _target(routing_key, priority)
    with friendly_errors(url), Client(url) as client:
        changed = client.resume(key, prio)
        still = [p for p in client.paused() if p.routing_key == key]
    if changed:
        click.echo(f"resumed {_where(key, prio)}")
    else:
        click.echo(f"{_where(key, prio)} was not paused")
    for p in still:
        click.echo(f"note: {_where(p.routing_key, p.priority)} is still paused")


@click.command()
@click.argument("routing_key")
@priority_option
@click.option("--yes", is_flag=True, help="Really remove them (without it, only count them).")
@redis_url_option
def purge(routing_key: str, priority: str | None, yes: bool, redis_url: str | None) -> None:
    """Remove the jobs waiting on ROUTING_KEY (or one priority of it), parked ones
    included. Each is marked cancelled, as `bananas cancel` does; running jobs are not
    touched. Without --yes, only says how many it would remove."""
    url = resolve_redis_url(redis_url)
    key, prio = _target(routing_key, priority)
    with friendly_errors(url), Client(url) as client:
        if not yes:
            count = client.purge(key, prio, dry_run=True)
            click.echo(
                f"{_where(key, prio)}: {count} ready job(s) would be removed; run again with --yes to remove them"
            )
            return
        removed = client.purge(key, prio)
    click.echo(f"{_where(key, prio)}: removed {removed} ready job(s), marked cancelled")

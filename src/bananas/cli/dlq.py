"""``bananas dlq``: list, show, retry and purge dead letters (jobs that failed for good)."""

from __future__ import annotations

from typing import Any

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.client import Client
from bananas.core.routing import validate_routing_key
from bananas.dlq import DeadLetter, DeadLetters, RetryOutcome, dumps
from bananas.errors import ValidationError
from bananas.redis.connection import mask_secrets

routing_key_option = click.option("--routing-key", default=None, help="Only dead jobs of this routing key.")
name_option = click.option("--name", default=None, help="Only dead jobs with this job name.")


def _safe(text: str, url: str) -> str:
    """Text from job records is foreign data: mask secrets and neutralise control
    characters (terminal escape sequences) before it reaches an operator's terminal."""
    masked = mask_secrets(text, url)
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in masked)


def _one_line(text: str, url: str, width: int | None = None) -> str:
    line = _safe(text, url).replace("\n", " ").replace("\t", " ")
    if width is not None and len(line) > width:
        line = line[: width - 3] + "..."
    return line


def _check_routing_key(routing_key: str | None) -> None:
    if routing_key is not None:
        try:
            validate_routing_key(routing_key)
        except ValidationError as exc:
            fail(f"--routing-key: {exc}")


@click.group()
def dlq() -> None:
    """Inspect and act on dead letters: jobs that failed for good."""


@dlq.command("list")
@routing_key_option
@name_option
@click.option(
    "--limit", default=50, show_default=True, type=click.IntRange(min=0), help="Most entries to show (0: all)."
)
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON (one object per line).")
@redis_url_option
def list_(routing_key: str | None, name: str | None, limit: int, as_json: bool, redis_url: str | None) -> None:
    """Dead jobs, newest first: id, name, routing key, priority, attempts, failed time, error."""
    url = resolve_redis_url(redis_url)
    _check_routing_key(routing_key)
    with friendly_errors(url), Client(url) as client:
        letters = DeadLetters(client)
        total = letters.count()
        entries = letters.entries(routing_key=routing_key, name=name, limit=limit or None)
    if as_json:
        for entry in entries:
            click.echo(_safe(dumps(_masked(entry.summary(), url)), url))
        return
    if not entries:
        click.echo("no dead letters" + (" matching the filter" if routing_key or name else ""))
        return
    rows = [_row(e, url) for e in entries]
    headers = ("ID", "NAME", "ROUTING KEY", "PRIORITY", "ATTEMPTS", "FAILED AT", "ERROR")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers[:-1])]
    click.echo("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=False)) + "  ERROR")
    for row in rows:
        click.echo("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=False)) + "  " + row[-1])
    click.echo(f"\n{len(entries)} shown, {total} in the dead letter list")


def _row(entry: DeadLetter, url: str) -> tuple[str, ...]:
    failed = entry.failed_at
    if entry.expired:
        error = "(record expired)"
    else:
        flags = "[poison pill] " if entry.poison_pill else "[malformed] " if entry.malformed else ""
        error = flags + _one_line(entry.error_summary, url, 100)
    return (
        entry.id,
        _one_line(entry.name or "-", url, 40),
        entry.routing_key or "-",
        entry.priority or "-",
        "-" if entry.attempts is None else str(entry.attempts),
        failed.strftime("%Y-%m-%d %H:%M:%S") if failed else "-",
        error,
    )


def _masked(data: dict[str, Any], url: str) -> dict[str, Any]:
    return {k: mask_secrets(v, url) if isinstance(v, str) else v for k, v in data.items()}


@dlq.command("show")
@click.argument("job_id")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@redis_url_option
def show(job_id: str, as_json: bool, redis_url: str | None) -> None:
    """Everything about one dead job: error, traceback, attempts, recoveries, history."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        letters = DeadLetters(client)
        entry = letters.get(job_id)
        status = letters.status_of(job_id) if entry is None else None
    if entry is None:
        known = f" (its record says status {status!r})" if status else ""
        fail(f"job {job_id!r} is not in the dead letter list{known}", code=1)
    details = _masked(entry.details(), url)
    if as_json:
        click.echo(_safe(dumps(details), url))
        return
    lines = [f"id:           {entry.id}"]
    if entry.expired:
        lines.append("record:       expired (failed records are kept for JOB_FAILED_TTL); only purge applies")
        click.echo("\n".join(lines))
        return
    failed = entry.failed_at
    lines += [
        f"name:         {_one_line(entry.name or '-', url)}",
        f"routing key:  {entry.routing_key or '-'}",
        f"priority:     {entry.priority or '-'}",
        f"status:       {details['status'] or '-'}",
        f"attempts:     {entry.attempts if entry.attempts is not None else '-'}"
        + (f" (max_retries {details['max_retries']})" if details["max_retries"] is not None else ""),
        f"recoveries:   {entry.recoveries}"
        + ("  POISON PILL (killed its worker repeatedly)" if entry.poison_pill else ""),
        f"failed at:    {failed.isoformat() if failed else '-'}",
        f"error:        {_one_line(entry.error_summary, url)}",
    ]
    if entry.malformed:
        lines.append("malformed:    yes (the worker could not read this job's record)")
        if entry.original_record is not None:
            lines.append(f"original:     {_one_line(entry.original_record, url, 2000)}")
    if entry.traceback:
        lines.append("traceback:")
        lines += ["  " + line for line in _safe(entry.traceback, url).splitlines()]
    history = entry.history
    if history:
        lines.append(f"history (last {len(history)} failed attempts, oldest first):")
        for item in history:
            worker = f" on {_one_line(str(item['worker']), url)}" if item.get("worker") else ""
            lines.append(
                f"  #{item.get('attempt', '?')} {item.get('time', '?')}{worker}: {_one_line(str(item.get('error', '')), url, 200)}"
            )
    click.echo("\n".join(lines))


@dlq.command("retry")
@click.argument("job_id", required=False)
@click.option("--all", "retry_all", is_flag=True, help="Retry every dead job (or those matching the filters).")
@routing_key_option
@name_option
@redis_url_option
def retry(
    job_id: str | None, retry_all: bool, routing_key: str | None, name: str | None, redis_url: str | None
) -> None:
    """Send JOB_ID (or --all) back to its own routing key and priority, attempts reset."""
    if bool(job_id) == retry_all:
        fail("give either a JOB_ID or --all")
    if job_id and (routing_key or name):
        fail("--routing-key and --name apply to --all only")
    url = resolve_redis_url(redis_url)
    _check_routing_key(routing_key)
    with friendly_errors(url), Client(url) as client:
        letters = DeadLetters(client)
        if job_id:
            result = letters.retry(job_id)
            if result.outcome is not RetryOutcome.RETRIED:
                detail = f" ({_one_line(result.detail, url, 200)})" if result.detail else ""
                fail(f"job {job_id!r} was not retried: {result.outcome}{detail}", code=1)
            click.echo(f"retried {job_id} -> {result.queue}")
            return
        report = letters.retry_all(routing_key=routing_key, name=name)
    for item in report.retried:
        click.echo(f"retried {item.job_id} -> {item.queue}")
    for item in report.skipped:
        click.echo(f"skipped {item.job_id}: {item.outcome}", err=True)
    click.echo(f"{len(report.retried)} retried, {len(report.skipped)} skipped")


@dlq.command("purge")
@routing_key_option
@name_option
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@redis_url_option
def purge(routing_key: str | None, name: str | None, yes: bool, redis_url: str | None) -> None:
    """Delete dead jobs (all, or those matching the filters) and their records."""
    url = resolve_redis_url(redis_url)
    _check_routing_key(routing_key)
    with friendly_errors(url), Client(url) as client:
        letters = DeadLetters(client)
        if not yes:
            scope = " and ".join(
                part for part in (f"routing key {routing_key!r}" if routing_key else "",
                                  f"name {name!r}" if name else "") if part
            ) or "every routing key"  # fmt: skip
            prompt = f"Delete dead jobs of {scope} ({letters.count()} in the dead letter list) and their records?"
            try:
                confirmed = click.confirm(prompt, default=False)
            except click.Abort:
                confirmed = False
            if not confirmed:
                fail("purge cancelled (nothing deleted); pass --yes to skip this question", code=1)
        removed = letters.purge(routing_key=routing_key, name=name)
    click.echo(f"purged {removed} dead job(s)")

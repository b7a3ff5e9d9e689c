"""``bananas cancel``: stop a job from running, or ask its worker to stop it."""

from __future__ import annotations

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.client import Client


@click.command()
@click.argument("job_id")
@redis_url_option
def cancel(job_id: str, redis_url: str | None) -> None:
    """Cancel job JOB_ID: a waiting job never runs; a running one is asked to stop.

    Exit 1 when the job is unknown or already finished."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        before = client.get_job(job_id)
        done = client.cancel(job_id)
    if not done:
        if before is None:
            fail(f"no job with id {job_id!r} (never existed, or its record expired)", code=1)
        fail(f"job {job_id} is already {before.status}; nothing to cancel", code=1)
    if before is not None and before.status == "processing":
        click.echo(f"job {job_id} is running: its worker was asked to stop it (status becomes cancelled)")
    else:
        click.echo(f"job {job_id} cancelled; it will not run")

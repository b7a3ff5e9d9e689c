"""``bananas workflow ID``: the state of a workflow and of every step."""

from __future__ import annotations

import contextlib
import json
import math
import sys

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.client import Client
from bananas.errors import JobFailedError, JobTimeoutError


@click.command()
@click.argument("workflow_id")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option("--wait", "wait", type=float, default=None, help="Wait up to this many seconds for it to end.")
@redis_url_option
def workflow(workflow_id: str, as_json: bool, wait: float | None, redis_url: str | None) -> None:
    """Print workflow WORKFLOW_ID: its state, its result or error, and every step's status
    (exit 1 if it failed, or is unknown; with --wait, also if it is still running)."""
    url = resolve_redis_url(redis_url)
    if wait is not None and (not math.isfinite(wait) or wait < 0):
        fail(f"--wait must be a number of seconds >= 0, got {wait}")
    with friendly_errors(url), Client(url) as client:
        info = client.get_workflow(workflow_id)
        if info is not None and info.state == "running" and wait:
            with contextlib.suppress(JobFailedError, JobTimeoutError):
                client.wait_workflow(workflow_id, timeout=wait)
            info = client.get_workflow(workflow_id)
    if info is None:
        fail(f"no workflow with id {workflow_id!r} (never submitted, or its state expired)", code=1)
    if as_json:
        click.echo(json.dumps(info.to_dict(), indent=2))
    else:
        click.echo(f"workflow {info.id}: {info.state}")
        if info.error:
            click.echo(f"error: {info.error}")
        if info.state == "completed":
            click.echo(f"result: {json.dumps(info.result)}")
        width = max([len("NAME"), *(len(s.name) for s in info.steps)])
        click.echo(f"{'STAGE':>5}  {'NAME':<{width}}  {'ROUTING KEY':<16}  {'STATUS':<10}  ID")
        for step in info.steps:
            click.echo(f"{step.stage:>5}  {step.name:<{width}}  {step.routing_key:<16}  {step.status:<10}  {step.id}")
    if info.state == "failed" or (wait and info.state == "running"):
        sys.exit(1)

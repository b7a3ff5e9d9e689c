"""``bananas submit``, ``bananas job``, ``bananas result``: producer-side commands
(``bananas queues`` is in fleet.py)."""

from __future__ import annotations

import contextlib
import json
import os
import sys
from typing import Any

import click
import orjson

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.cli.types import SECONDS
from bananas.client import Client
from bananas.config import max_payload_bytes_from_env
from bananas.core.job import DEFAULT_MAX_RETRIES
from bananas.core.priority import Priority
from bananas.errors import JobFailedError, JobTimeoutError


def _parse_payload(text: str, source: str = "--payload") -> Any:
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except ValueError as exc:
        fail(f"{source} is not valid JSON: {exc}")


def _read_payload(payload: str | None, payload_file: str | None) -> Any:
    """The payload from ``--payload JSON``, ``--payload -`` (stdin) or ``--payload-file
    PATH``: large payloads (up to the 1 MiB limit) do not fit on a command line."""
    if payload is not None and payload_file is not None:
        fail("give --payload or --payload-file, not both")
    if payload_file is not None:
        try:
            with open(payload_file, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            fail(f"--payload-file: cannot read {payload_file!r}: {exc.strerror or exc}")
        return _parse_payload(_text(data, "--payload-file"), f"--payload-file {payload_file}")
    if payload == "-":
        return _parse_payload(_text(sys.stdin.buffer.read(), "--payload -"), "--payload - (stdin)")
    return _parse_payload("null" if payload is None else payload)


def _text(data: bytes, source: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        fail(f"{source} is not UTF-8 text: {exc}")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON payloads")


@click.command()
@click.argument("name")
@click.option(
    "--payload",
    default=None,
    metavar="JSON",
    help="The job's payload, as JSON ('-': read it from stdin). Default: null.",
)
@click.option(
    "--payload-file",
    default=None,
    metavar="PATH",
    help="Read the payload (JSON) from this file, up to the 1 MiB limit.",
)
@click.option("--priority", default=None, help="high, normal or low (default: the route table's, else normal).")
@click.option(
    "--routing-key", default=None, help="Worker pool to send it to (default: the route table's, else 'default')."
)
@click.option(
    "--max-retries", type=int, default=None, help="Retries after the first attempt (default $MAX_RETRIES or 3)."
)
@click.option("--delay", type=SECONDS, default=None, help="Run after this many seconds instead of now.")
@click.option("--description", default=None, help="Free text stored with the job.")
@click.option(
    "--expires-in", type=SECONDS, default=None, help="Seconds the job may wait; not started by then, it never runs."
)
@redis_url_option
def submit(
    name: str,
    payload: str | None,
    payload_file: str | None,
    priority: str | None,
    routing_key: str | None,
    max_retries: int | None,
    delay: float | None,
    description: str | None,
    expires_in: float | None,
    redis_url: str | None,
) -> None:
    """Submit job NAME; prints its id."""
    url = resolve_redis_url(redis_url)
    value = _read_payload(payload, payload_file)
    if max_retries is None:
        env = os.environ.get("MAX_RETRIES", "").strip()
        try:
            max_retries = int(env) if env else DEFAULT_MAX_RETRIES
        except ValueError:
            fail(f"MAX_RETRIES: expected a whole number, got {env!r}")
    with friendly_errors(url):
        prio = Priority.parse(priority) if priority is not None else None
        with Client(url, max_payload_bytes=max_payload_bytes_from_env(os.environ)) as client:
            if delay is not None:
                job_id = client.schedule_job(
                    name, value, delay=delay, priority=prio, routing_key=routing_key,
                    max_retries=max_retries, description=description, expires_in=expires_in,
                )  # fmt: skip
            else:
                job_id = client.submit_job(
                    name,
                    value,
                    prio,
                    routing_key=routing_key,
                    max_retries=max_retries,
                    description=description,
                    expires_in=expires_in,
                )
    click.echo(job_id)


@click.command()
@click.argument("job_id")
@redis_url_option
def job(job_id: str, redis_url: str | None) -> None:
    """Print the record of job JOB_ID as JSON."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url), Client(url) as client:
        found = client.get_job(job_id)
    if found is None:
        fail(f"no job with id {job_id!r} (never existed, or its record expired)", code=1)
    sys.stdout.write(orjson.dumps(found.to_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")


@click.command()
@click.argument("job_id")
@click.option("--wait", "wait", type=SECONDS, default=None, help="Wait up to this many seconds for the result.")
@redis_url_option
def result(job_id: str, wait: float | None, redis_url: str | None) -> None:
    """Print the result of job JOB_ID as JSON (exit 1 if it failed or has none yet)."""
    url = resolve_redis_url(redis_url)
    if wait is not None and (wait != wait or wait < 0):
        fail(f"--wait must be a number of seconds >= 0, got {wait}")
    with friendly_errors(url), Client(url) as client:
        found = client.get_job_result(job_id)
        if found is None and wait:
            with contextlib.suppress(JobFailedError, JobTimeoutError):
                client.get_result(job_id, timeout=wait)
            found = client.get_job_result(job_id)
        job = client.get_job(job_id) if found is None else None
    if found is None:
        state = f"status: {job.status}" if job is not None else "no such job, or its record expired"
        waited = f" after waiting {wait:g}s" if wait else ""
        fail(f"job {job_id} has no result{waited} ({state})", code=1)
    if not found.ok:
        click.echo(f"job {job_id} failed: {found.error}", err=True)
        sys.exit(1)
    sys.stdout.write(orjson.dumps(found.result, option=orjson.OPT_INDENT_2).decode() + "\n")

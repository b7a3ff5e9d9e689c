"""``bananas limits``: fleet-wide concurrency and rate limits, obeyed by every worker."""

from __future__ import annotations

import json

import click

from bananas.cli.common import fail, friendly_errors, redis_url_option, resolve_redis_url
from bananas.limits_admin import LimitsAdmin
from bananas.redis import connection


@click.group()
def limits() -> None:
    """Fleet-wide limits per routing key or job name (kept in Redis)."""


@limits.command("set")
@click.argument("routing_key", required=False)
@click.option("--job-name", default=None, help="Limit a job name instead of a routing key (rate only).")
@click.option(
    "--concurrency", default=None, metavar="INTEGER", help="At most N jobs of the routing key running fleet-wide."
)
@click.option(
    "--rate", default=None, metavar="COUNT/UNIT", help="At most COUNT per UNIT fleet-wide: 100/m, 10/s, 5/h, 30/10s."
)
@redis_url_option
def set_limit(
    routing_key: str | None, job_name: str | None, concurrency: str | None, rate: str | None, redis_url: str | None
) -> None:
    """Set a limit: `limits set gpu --concurrency 8`, `limits set --job-name send_sms --rate 10/s`."""
    url = resolve_redis_url(redis_url)
    limit = _whole_number("--concurrency", concurrency)
    if (routing_key is None) == (job_name is None):
        fail("give either a ROUTING_KEY or --job-name NAME")
    with friendly_errors(url):
        admin = LimitsAdmin(connection.sync_client(url))
        if job_name is not None:
            if concurrency is not None:
                fail("--concurrency applies to routing keys; job names take --rate")
            if rate is None:
                fail("--job-name needs --rate COUNT/UNIT")
            admin.set_job(job_name, rate=rate)
            click.echo(f"job {job_name}: rate {rate}")
        else:
            assert routing_key is not None
            admin.set_route(routing_key, concurrency=limit, rate=rate)
            parts = [f"concurrency {limit}"] if limit is not None else []
            parts += [f"rate {rate}"] if rate is not None else []
            click.echo(f"routing key {routing_key}: {', '.join(parts)}")


@limits.command("list")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@redis_url_option
def list_limits(as_json: bool, redis_url: str | None) -> None:
    """Show every limit and, for concurrency limits, the jobs in flight now."""
    url = resolve_redis_url(redis_url)
    with friendly_errors(url):
        view = LimitsAdmin(connection.sync_client(url)).read()
    lim = view.limits
    if as_json:
        click.echo(
            json.dumps(
                {
                    "routes": {
                        key: {
                            "concurrency": lim.route_concurrency.get(key),
                            "rate": str(lim.route_rate[key]) if key in lim.route_rate else None,
                            "in_flight": view.inflight.get(key, 0),
                        }
                        for key in sorted(set(lim.route_concurrency) | set(lim.route_rate))
                    },
                    "jobs": {
                        name: {"rate": str(rate), **({"scope": "routing_key"} if view.per_routing_key else {})}
                        for name, rate in sorted(lim.job_rate.items())
                    },
                },
                indent=2,
            )
        )
        return
    if not (lim.route_concurrency or lim.route_rate or lim.job_rate):
        click.echo("no limits set")
        return
    for key in sorted(set(lim.route_concurrency) | set(lim.route_rate)):
        parts = []
        if key in lim.route_concurrency:
            parts.append(f"concurrency {lim.route_concurrency[key]} (in flight {view.inflight.get(key, 0)})")
        if key in lim.route_rate:
            parts.append(f"rate {lim.route_rate[key]}")
        click.echo(f"routing key {key}: {', '.join(parts)}")
    # Redis Cluster: a job name's gate lives in each routing key's slot (ADR 0001).
    scope = " per routing key (Redis Cluster)" if view.per_routing_key else ""
    for name, rate in sorted(lim.job_rate.items()):
        click.echo(f"job {name}: rate {rate}{scope}")


@limits.command("clear")
@click.argument("routing_key", required=False)
@click.option("--job-name", default=None, help="Clear a job name's rate limit.")
@click.option("--concurrency", "only_concurrency", is_flag=True, help="Clear only the concurrency limit.")
@click.option("--rate", "only_rate", is_flag=True, help="Clear only the rate limit.")
@click.option("--all", "clear_all", is_flag=True, help="Clear every limit.")
@redis_url_option
def clear_limit(
    routing_key: str | None,
    job_name: str | None,
    only_concurrency: bool,
    only_rate: bool,
    clear_all: bool,
    redis_url: str | None,
) -> None:
    """Remove limits: `limits clear gpu`, `limits clear gpu --rate`, `limits clear --job-name send_sms`, `--all`."""
    url = resolve_redis_url(redis_url)
    chosen = (routing_key is not None) + (job_name is not None) + clear_all
    if chosen != 1:
        fail("give exactly one of ROUTING_KEY, --job-name NAME or --all")
    with friendly_errors(url):
        admin = LimitsAdmin(connection.sync_client(url))
        if clear_all:
            admin.clear_all()
            click.echo("all limits cleared")
        elif job_name is not None:
            removed = admin.clear_job(job_name)
            click.echo(f"job {job_name}: {'rate limit cleared' if removed else 'had no limit'}")
        else:
            assert routing_key is not None
            both = not (only_concurrency or only_rate)
            removed = admin.clear_route(routing_key, concurrency=both or only_concurrency, rate=both or only_rate)
            click.echo(f"routing key {routing_key}: {removed} limit(s) cleared")


def _whole_number(option: str, raw: str | None) -> int | None:
    """Parsed here rather than by click, so a bad value is one line like every other error."""
    if raw is None:
        return None
    try:
        return int(raw.strip())
    except ValueError:
        fail(f"{option} must be a whole number, got {raw!r}")

"""``bananas exporter``: serve the fleet's queue metrics for Prometheus, read from Redis
on each scrape (run one per fleet, not one per worker)."""

from __future__ import annotations

import logging
import os
import signal
import threading

import click

from bananas.cli.common import (
    fail,
    log_format_option,
    redis_url_option,
    resolve_log_format,
    resolve_redis_url,
    setup_logging,
)
from bananas.client import Client
from bananas.errors import ConfigurationError
from bananas.redis.connection import mask_url

log = logging.getLogger("bananas.cli")

DEFAULT_EXPORTER_PORT = 9821


@click.command()
@redis_url_option
@click.option(
    "--port",
    default=None,
    metavar="PORT",
    help=f"Port of /metrics ($BANANAS_EXPORTER_PORT, default {DEFAULT_EXPORTER_PORT}).",
)
@click.option("--host", default="", help="Interface to listen on (default: every interface).")
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... ($BANANAS_LOG_LEVEL, default INFO).")
@log_format_option
def exporter(redis_url: str | None, port: str | None, host: str, log_level: str | None, log_format: str | None) -> None:
    """Serve queue metrics (ready, oldest age, consumers, orphaned, paused, in flight,
    parked, scheduled, dead, workers) at /metrics, read from Redis on each scrape."""
    url = resolve_redis_url(redis_url)
    setup_logging(log_level or os.environ.get("BANANAS_LOG_LEVEL") or "INFO", url, resolve_log_format(log_format))
    chosen = _port(port)
    from bananas.metrics import exporter_registry
    from bananas.metrics.http import serve

    stop = threading.Event()
    with Client(url) as client:
        try:
            server = serve(exporter_registry(client), chosen, host, setting="--port")
        except ConfigurationError as exc:
            fail(str(exc))
        log.info("serving queue metrics of %s at %s:%d/metrics", mask_url(url), host or "*", server.port)
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        stop.wait()
        server.close()
    log.info("exporter stopped")


def _port(flag: str | None) -> int:
    raw = flag if flag is not None else os.environ.get("BANANAS_EXPORTER_PORT") or str(DEFAULT_EXPORTER_PORT)
    setting = "--port" if flag is not None else "BANANAS_EXPORTER_PORT"
    try:
        value = int(raw)
    except ValueError:
        fail(f"{setting}: expected a port number, got {raw!r}")
    if not 1 <= value <= 65535:
        fail(f"{setting}: port must be between 1 and 65535, got {value}")
    return value

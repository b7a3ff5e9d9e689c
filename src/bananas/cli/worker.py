"""``bananas worker APP``: run a worker (or a supervised pool of worker processes)."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading

import click

from bananas.cli.common import (
    fail,
    friendly_errors,
    load_registry,
    log_format_option,
    resolve_log_format,
    setup_logging,
)
from bananas.config import WorkerSettings
from bananas.errors import ConfigurationError
from bananas.events import Listener
from bananas.worker.joblog import JobLogListener
from bananas.worker.preflight import check_server
from bananas.worker.registry import Registry
from bananas.worker.service import Worker
from bananas.worker.supervisor import SUPERVISOR_PID_ENV, Supervisor, stop_with_supervisor

log = logging.getLogger("bananas.cli")


@click.command()
@click.argument("app")
@click.option(
    "--routing-keys", default=None, help="Comma list in order of preference ($WORKER_ROUTING_KEYS, default 'default')."
)
@click.option("--priorities", default=None, help="Comma list, e.g. high,normal,low ($WORKER_PRIORITIES).")
@click.option(
    "--concurrency",
    default=None,
    metavar="INTEGER",
    help="Jobs run at once per process ($WORKER_CONCURRENCY, default 10).",
)
@click.option(
    "--processes",
    default=None,
    metavar="INTEGER",
    help="Worker processes under one supervisor ($WORKER_PROCESSES, default 1).",
)
@click.option(
    "--redis-url", default=None, metavar="URL", help="Redis URL ($REDIS_URL, default redis://localhost:6379)."
)
@click.option(
    "--job-timeout",
    default=None,
    metavar="SECONDS",
    help="Seconds before an attempt fails ($JOB_TIMEOUT, default 300; 'none' disables).",
)
@click.option(
    "--lease-seconds", default=None, metavar="SECONDS", help="Lease length in seconds ($JOB_LEASE_SECONDS, default 30)."
)
@click.option(
    "--shutdown-grace",
    default=None,
    metavar="SECONDS",
    help="Seconds to let running jobs finish on SIGTERM ($WORKER_SHUTDOWN_GRACE, default 30).",
)
@click.option(
    "--queue-selection",
    default=None,
    help="strict, priority-first or weighted ($WORKER_QUEUE_SELECTION, default strict).",
)
@click.option(
    "--route-concurrency",
    default=None,
    metavar="KEY:INTEGER,...",
    help="Per routing key caps in this process, e.g. gpu:2 ($WORKER_ROUTE_CONCURRENCY).",
)
@click.option("--job-types", default=None, help="Only run these job names, comma list ($WORKER_JOB_TYPES).")
@click.option(
    "--max-wait",
    default=None,
    metavar="KEY:SECONDS,...",
    help="Starvation guard, e.g. low:30,email:60 seconds ($WORKER_MAX_WAIT).",
)
@click.option(
    "--mode", default=None, help="default, thin, specialized, job-specialized or scheduler-only ($WORKER_MODE)."
)
@click.option(
    "--wait-replicas",
    default=None,
    help="Replicas that must confirm each ack, retry and bury ($BANANAS_WAIT_REPLICAS, default 0).",
)
@click.option(
    "--metrics-port",
    default=None,
    metavar="PORT",
    help="Serve Prometheus metrics at /metrics on this port, one endpoint for all --processes ($WORKER_METRICS_PORT).",
)
@click.option("--log-level", default=None, help="DEBUG, INFO, WARNING... ($BANANAS_LOG_LEVEL, default INFO).")
@click.option(
    "--allow-eviction",
    is_flag=True,
    default=None,
    help="Start although Redis' maxmemory-policy is allkeys-* ($BANANAS_ALLOW_EVICTION=1; docs/RELIABILITY.md).",
)
@log_format_option
def worker(
    app: str,
    routing_keys: str | None,
    priorities: str | None,
    concurrency: str | None,
    processes: str | None,
    redis_url: str | None,
    job_timeout: str | None,
    lease_seconds: str | None,
    shutdown_grace: str | None,
    queue_selection: str | None,
    route_concurrency: str | None,
    job_types: str | None,
    max_wait: str | None,
    mode: str | None,
    wait_replicas: str | None,
    metrics_port: str | None,
    log_level: str | None,
    allow_eviction: bool | None,
    log_format: str | None,
) -> None:
    """Run jobs from the routing keys' queues with the handlers in APP (module:attribute)."""
    _stop_cleanly_while_starting()
    try:
        settings = WorkerSettings.from_env(
            os.environ,
            routing_keys=routing_keys,
            priorities=priorities,
            concurrency=concurrency,
            processes=processes,
            redis_url=redis_url,
            job_timeout=job_timeout,
            lease_seconds=lease_seconds,
            shutdown_grace=shutdown_grace,
            queue_selection=queue_selection,
            route_concurrency=route_concurrency,
            job_types=job_types,
            max_wait=max_wait,
            mode=mode,
            allow_eviction=allow_eviction or None,
            wait_replicas=wait_replicas,
        )
    except ConfigurationError as exc:
        fail(str(exc))
    chosen_format = resolve_log_format(log_format)
    setup_logging(log_level or os.environ.get("BANANAS_LOG_LEVEL") or "INFO", settings.redis_url, chosen_format)
    port = resolve_metrics_port(metrics_port)
    supervisor_pid = os.environ.get(SUPERVISOR_PID_ENV, "").strip()
    if supervisor_pid.isdigit() and settings.processes == 1:
        stop_with_supervisor(int(supervisor_pid))
    registry = load_registry(app)
    if settings.processes > 1:
        # The same start checks as each child's, once, before any child is started: a
        # wrong password must not become a loop of restarts (exit 3, one line).
        with friendly_errors(settings.redis_url):
            asyncio.run(check_server(settings.redis_url, allow_eviction=settings.allow_eviction))
        sys.exit(run_supervisor(app, settings, log_level, chosen_format, port))
    try:
        listeners = edge_listeners(registry, port)
    except ConfigurationError as exc:
        fail(str(exc))
    run_worker(registry, settings, listeners)


def resolve_metrics_port(flag: str | None) -> int | None:
    """The flag, else $WORKER_METRICS_PORT; empty means no metrics endpoint."""
    raw = flag if flag is not None else os.environ.get("WORKER_METRICS_PORT", "")
    if not raw.strip():
        return None
    setting = "--metrics-port" if flag is not None else "WORKER_METRICS_PORT"
    try:
        port = int(raw)
    except ValueError:
        fail(f"{setting}: expected a port number, got {raw!r}")
    if not 1 <= port <= 65535:
        fail(f"{setting}: port must be between 1 and 65535, got {port}")
    return port


def run_supervisor(app: str, settings: WorkerSettings, log_level: str | None, log_format: str, port: int | None) -> int:
    extra_env = {"BANANAS_LOG_FORMAT": log_format}
    if port is None:
        return Supervisor(app, settings, log_level=log_level, extra_env=extra_env).run()
    from bananas.metrics.group import GroupMetrics

    try:
        group = GroupMetrics(port)
    except ConfigurationError as exc:
        fail(str(exc))
    log.info(
        "serving the metrics of %d worker processes at :%d/metrics (multiprocess directory %s)",
        settings.processes, port, group.directory,
    )  # fmt: skip
    try:
        extra_env.update(group.child_environment())
        supervisor = Supervisor(
            app, settings, log_level=log_level, extra_env=extra_env, on_child_exit=group.child_exited
        )
        return supervisor.run()
    finally:
        group.close()


def edge_listeners(registry: Registry, metrics_port: int | None) -> list[Listener]:
    """The listeners the command adds to the app's own: job logs, metrics, tracing."""
    listeners: list[Listener] = []
    if logging.getLogger("bananas.jobs").isEnabledFor(logging.INFO):
        # Below INFO nothing would be written: no listener, no events built for it.
        listeners.append(JobLogListener())
    # A child of a supervisor that serves the group's metrics records into the group's
    # directory (bananas.metrics.group); prometheus-client is imported only when needed.
    group_child = os.environ.get("BANANAS_METRICS_CHILD") == "1" and bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
    if metrics_port is not None or group_child:
        from bananas.metrics.http import serve
        from bananas.metrics.worker import WorkerMetrics

        metrics = WorkerMetrics(registry.names)
        if metrics_port is not None:
            serve(metrics.registry, metrics_port)
            log.info("serving metrics at :%d/metrics", metrics_port)
        listeners.append(metrics)
    from bananas.tracing import TracingListener, tracing_configured

    if tracing_configured():
        listeners.append(TracingListener())
        log.info("tracing jobs with OpenTelemetry")
    return listeners


def _stop_cleanly_while_starting() -> None:
    """SIGTERM/SIGINT before the worker's own handlers are in place (loading the app,
    connecting): nothing was taken yet, so stop at once with exit 0, as a stop does."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)


def run_worker(registry: Registry, settings: WorkerSettings, listeners: list[Listener] | None = None) -> None:
    async def main() -> None:
        await Worker(registry, settings, listeners=listeners or ()).run(install_signal_handlers=True)

    _install_fast_loop()
    with friendly_errors(settings.redis_url):
        asyncio.run(main())
    logging.shutdown()
    if any(t is not threading.main_thread() and t.is_alive() and not t.daemon for t in threading.enumerate()):
        # A sync handler past the grace period cannot be interrupted; its job was handed
        # back already, so leave without waiting for the thread.
        os._exit(0)


def _install_fast_loop() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())

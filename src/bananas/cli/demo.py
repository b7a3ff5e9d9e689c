"""``bananas demo``: the whole system on one machine, no Redis needed.

Starts an embedded Redis-compatible server (data in ``./.bananas-demo``), three worker
pools (gpu only; email only; gpu,email,default), submits a mix of jobs and shows which
pool ran each one.

It checks what it says: it exits 0 only if every job it submitted ran, each on a pool
that listens on the job's routing key; otherwise it says what went wrong and exits 1.
Every run starts from an empty server (whatever an earlier, interrupted demo left in
the data directory is removed first). On Ctrl-C, SIGTERM or SIGHUP it stops its
workers and its server before it exits (130); if it is killed outright, they stop on
their own (parent-death signal, see ``bananas.process``).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import click
import redis

from bananas.cli.common import fail
from bananas.cli.types import SECONDS
from bananas.client import Client
from bananas.core.priority import Priority
from bananas.demo_app import DEMO_RAN_KEY
from bananas.embedded import EmbeddedServer, PortInUseError
from bananas.worker.supervisor import SUPERVISOR_PID_ENV

POOLS = {"gpu-pool": "gpu", "email-pool": "email", "general-pool": "gpu,email,default"}
JOBS = [
    ("process_image", "gpu", Priority.HIGH),
    ("process_image", "gpu", Priority.NORMAL),
    ("send_email", "email", Priority.NORMAL),
    ("send_email", "email", Priority.LOW),
    ("generate_report", "default", Priority.NORMAL),
    ("generate_report", "default", Priority.HIGH),
]
_STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


@dataclass
class Verdict:
    submitted: int
    not_run: list[str] = field(default_factory=list)
    misrouted: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.not_run and not self.misrouted


class Interrupted(Exception):
    """A stop signal arrived; everything the demo started is being stopped."""


@click.command()
@click.option(
    "--data-dir", default=".bananas-demo", show_default=True, help="Where the embedded server keeps its data."
)
@click.option("--jobs", "count", type=click.IntRange(1, 100_000), default=30, show_default=True, help="How many jobs.")
@click.option("--timeout", type=SECONDS, default=30.0, show_default=True, help="Seconds to wait for every job to run.")
@click.option(
    "--dashboard",
    "dashboard_port",
    type=click.IntRange(0, 65535),
    default=None,
    is_flag=False,
    flag_value=8080,
    help="Then keep everything running and serve the dashboard on 127.0.0.1 (port 8080, or the one given) "
    "until Ctrl-C.",
)
def demo(data_dir: str, count: int, timeout: float, dashboard_port: int | None) -> None:
    """Run an embedded server, three worker pools and a client; show who ran what."""
    signalled: list[int] = []

    def interrupt(signum: int, _frame: object) -> None:
        if not signalled:  # the first one stops the demo; later ones must not cut the cleanup short
            signalled.append(signum)
            raise Interrupted

    previous = {sig: signal.signal(sig, interrupt) for sig in _STOP_SIGNALS}
    server = EmbeddedServer(data_dir, die_with_parent=True)
    workers: list[subprocess.Popen[bytes]] = []
    verdict: Verdict | None = None
    try:
        server.start()
        click.echo(f"embedded server on {server.url} (data in {data_dir}/)")
        _start_clean(server.url)
        for pool, keys in POOLS.items():
            env = {
                **os.environ, "REDIS_URL": server.url, "BANANAS_DEMO_POOL": pool, "BANANAS_LOG_LEVEL": "WARNING",
                SUPERVISOR_PID_ENV: str(os.getpid()),  # a pool never outlives the demo
            }  # fmt: skip
            argv = [sys.executable, "-m", "bananas", "worker", "bananas.demo_app:registry", "--routing-keys", keys]
            workers.append(subprocess.Popen(argv, env=env))
            click.echo(f"started {pool:<13} WORKER_ROUTING_KEYS={keys}")
        verdict = _run(server.url, count, timeout)
        if dashboard_port is not None:
            _serve_dashboard(server.url, dashboard_port)
    except Interrupted:
        pass
    except PortInUseError as exc:
        fail(str(exc), code=1)
    except (RuntimeError, redis.exceptions.RedisError) as exc:
        fail(f"the demo could not run: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}", code=1)
    finally:
        signalled.append(0)  # from here on, signals are ignored until everything is stopped
        _stop(workers)
        server.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    if verdict is None:
        name = signal.Signals(signalled[0]).name if signalled[0] else "a signal"
        click.echo(f"\ninterrupted by {name}: workers and server stopped", err=True)
        sys.exit(130)
    click.echo("workers stopped (SIGTERM, graceful); server stopped")
    if not verdict.ok:
        sys.exit(1)


def _serve_dashboard(url: str, port: int) -> None:
    """Keep the pools running and serve the dashboard on them until Ctrl-C (uvicorn takes
    the signal, stops serving, and hands it back to the demo, which stops the rest)."""
    from bananas.cli.dashboard import serve

    # Jobs for a routing key no pool listens on: the routing map flags it.
    with Client(url) as client:
        client.submit_many("generate_report", [{"n": i} for i in range(5)], routing_key="reports")
    click.echo("\nsubmitted 5 jobs to 'reports', where no pool listens; Ctrl-C stops everything")
    serve(url, port=port)


def _start_clean(url: str) -> None:
    """The server is the demo's own: empty it, so an earlier demo's leftovers (jobs queued
    when it was interrupted) can neither delay this run nor be counted in it."""
    store = redis.Redis.from_url(url)
    try:
        stale = store.dbsize()
        store.flushall()
    finally:
        store.close()
    if stale:
        click.echo(f"removed {stale} key(s) left by an earlier demo in the data directory")


def _stop(workers: list[subprocess.Popen[bytes]]) -> None:
    for proc in workers:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in workers:
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _run(url: str, count: int, timeout: float) -> Verdict:
    store = redis.Redis.from_url(url)
    submitted: dict[str, tuple[str, str, str]] = {}
    try:
        with Client(url) as client:
            for i in range(count):
                name, key, prio = JOBS[i % len(JOBS)]
                job_id = client.submit_job(name, {"n": i}, prio, routing_key=key)
                submitted[job_id] = (name, key, prio.value)
            click.echo(f"submitted {count} jobs across routing keys gpu, email, default\n")
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and store.hlen(DEMO_RAN_KEY) < count:
                time.sleep(0.05)
            raw = store.hgetall(DEMO_RAN_KEY)
            ran = {k.decode(): v.decode() for k, v in raw.items()}  # type: ignore[union-attr]
            jobs = [client.get_job(j) for j in submitted]
            statuses = Counter(str(job.status) for job in jobs if job is not None)
    finally:
        store.close()
    tally: Counter[tuple[str, str]] = Counter()
    for job_id, (_name, key, _prio) in submitted.items():
        tally[(key, ran.get(job_id, "(not run)"))] += 1
    click.echo(f"{'ROUTING KEY':<12} {'RAN ON':<14} {'JOBS':>5}")
    for (key, pool), n in sorted(tally.items()):
        click.echo(f"{key:<12} {pool:<14} {n:>5}")
    click.echo(f"\njob statuses: {dict(statuses)}")
    verdict = Verdict(len(submitted))
    for job_id, (_name, key, _prio) in submitted.items():
        ran_on = ran.get(job_id)
        if ran_on is None:
            verdict.not_run.append(job_id)
        elif key not in POOLS.get(ran_on, "").split(","):
            verdict.misrouted.append(job_id)
    if verdict.ok:
        click.echo(f"every job ran on a pool that listens on its routing key ({count} of {count})")
    else:
        if verdict.not_run:
            click.echo(
                f"NOT VERIFIED: {len(verdict.not_run)} of {count} job(s) did not run within {timeout:g}s", err=True
            )
        if verdict.misrouted:
            click.echo(f"NOT VERIFIED: ran on a pool not listening on their routing key: {verdict.misrouted}", err=True)
    return verdict

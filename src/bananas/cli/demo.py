"""``bananas demo``: the whole system on one machine, no Redis needed.

Starts an embedded Redis-compatible server (data in ``./.bananas-demo``), three worker
pools (gpu only; email only; gpu,email,default), submits a mix of jobs and shows which
pool ran each one.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import click
import redis

from bananas.client import Client
from bananas.core.priority import Priority
from bananas.demo_app import DEMO_RAN_KEY
from bananas.embedded import EmbeddedServer

POOLS = {"gpu-pool": "gpu", "email-pool": "email", "general-pool": "gpu,email,default"}
JOBS = [
    ("process_image", "gpu", Priority.HIGH),
    ("process_image", "gpu", Priority.NORMAL),
    ("send_email", "email", Priority.NORMAL),
    ("send_email", "email", Priority.LOW),
    ("generate_report", "default", Priority.NORMAL),
    ("generate_report", "default", Priority.HIGH),
]


@click.command()
@click.option(
    "--data-dir", default=".bananas-demo", show_default=True, help="Where the embedded server keeps its data."
)
@click.option("--jobs", "count", default=30, show_default=True, help="How many jobs to submit.")
@click.option(
    "--dashboard", "dashboard_port", type=click.IntRange(0, 65535), default=None, is_flag=False, flag_value=8080,
    help="Then keep everything running and serve the dashboard on 127.0.0.1 (port 8080, or the one given) "
    "until Ctrl-C.",
)
def demo(data_dir: str, count: int, dashboard_port: int | None) -> None:
    """Run an embedded server, three worker pools and a client; show who ran what."""
    with EmbeddedServer(data_dir, appendonly=True) as server:
        click.echo(f"embedded server on {server.url} (data in {data_dir}/)")
        workers = []
        for pool, keys in POOLS.items():
            env = {**os.environ, "REDIS_URL": server.url, "BANANAS_DEMO_POOL": pool, "BANANAS_LOG_LEVEL": "WARNING"}
            argv = [sys.executable, "-m", "bananas", "worker", "bananas.demo_app:registry", "--routing-keys", keys]
            workers.append(subprocess.Popen(argv, env=env))
            click.echo(f"started {pool:<13} WORKER_ROUTING_KEYS={keys}")
        try:
            _run(server.url, count)
            if dashboard_port is not None:
                from bananas.cli.dashboard import serve

                # Jobs for a routing key no pool listens on: the map flags it.
                with Client(server.url) as client:
                    client.submit_many("generate_report", [{"n": i} for i in range(5)], routing_key="reports")
                click.echo("\nsubmitted 5 jobs to 'reports', where no pool listens; Ctrl-C stops everything")
                serve(server.url, port=dashboard_port)
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            for proc in workers:
                proc.wait(30)
        click.echo("workers stopped (SIGTERM, graceful); server stopped")


def _run(url: str, count: int) -> None:
    store = redis.Redis.from_url(url)
    store.delete(DEMO_RAN_KEY)
    submitted: dict[str, tuple[str, str, str]] = {}
    with Client(url) as client:
        for i in range(count):
            name, key, prio = JOBS[i % len(JOBS)]
            job_id = client.submit_job(name, {"n": i}, prio, routing_key=key)
            submitted[job_id] = (name, key, prio.value)
        click.echo(f"submitted {count} jobs across routing keys gpu, email, default\n")
        deadline = time.monotonic() + 30
        while store.hlen(DEMO_RAN_KEY) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        ran = {k.decode(): v.decode() for k, v in store.hgetall(DEMO_RAN_KEY).items()}  # type: ignore[union-attr]
        jobs = [client.get_job(j) for j in submitted]
        statuses = Counter(str(job.status) for job in jobs if job is not None)
    tally: Counter[tuple[str, str]] = Counter()
    for job_id, (_name, key, _prio) in submitted.items():
        tally[(key, ran.get(job_id, "(not run)"))] += 1
    click.echo(f"{'ROUTING KEY':<12} {'RAN ON':<14} {'JOBS':>5}")
    for (key, pool), n in sorted(tally.items()):
        click.echo(f"{key:<12} {pool:<14} {n:>5}")
    click.echo(f"\njob statuses: {dict(statuses)}")
    wrong = [j for j, (_n, key, _p) in submitted.items() if ran.get(j) and key not in POOLS[ran[j]].split(",")]
    click.echo("every job ran on a pool that listens on its routing key" if not wrong else f"MISROUTED: {wrong}")

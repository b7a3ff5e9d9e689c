"""Prometheus metrics over HTTP: a ``--processes 2`` worker group behind one endpoint, and
``bananas exporter`` reading the queues from Redis."""

from __future__ import annotations

import os
import re
import signal
import urllib.request
from collections import Counter
from pathlib import Path

import redis
from prometheus_client.parser import text_string_to_metric_families
from support import CliRunner, wait_until

from bananas import Client
from bananas.embedded import free_port
from bananas.metrics import exporter_registry


def scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def total(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], metric: str, /, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == metric and wanted <= ls)


def runs_by_pid(r: redis.Redis) -> Counter[str]:
    return Counter(entry.decode().split("|")[1] for entry in r.lrange("test:pids", 0, -1))  # type: ignore[union-attr]


def group_directory(cli: CliRunner, proc: object) -> Path:
    found = wait_until(
        lambda: re.search(r"multiprocess directory (\S+)\)", cli.output(proc)),  # type: ignore[arg-type]
        what="the supervisor to name its metrics directory",
    )
    return Path(found.group(1))


def test_one_endpoint_sums_a_worker_group_and_forgets_a_killed_child(
    cli: CliRunner, client: Client, r: redis.Redis
) -> None:
    port = free_port()
    proc = cli.worker("--processes", "2", "--concurrency", "2", "--metrics-port", str(port))
    directory = group_directory(cli, proc)
    wait_until(lambda: len(cli.worker_ids()) == 2, what="two worker processes")
    for _ in range(24):
        client.submit_job("whoami", {"seconds": 0.05})
    for _ in range(2):
        client.submit_job("boom", None, max_retries=0)
    wait_until(lambda: r.llen("test:pids") == 24 and r.llen("test:ran") == 2, what="every job to run", timeout=30)
    by_pid = runs_by_pid(r)
    assert len(by_pid) == 2, f"both children should have run jobs: {by_pid}"

    default = {"routing_key": "default", "priority": "normal"}

    def settled() -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
        samples = scrape(port)
        done = total(samples, "bananas_jobs_succeeded_total", name="whoami") == 24
        return samples if done and total(samples, "bananas_jobs_dead_total", name="boom") == 2 else None

    samples = wait_until(settled, what="the counters of both children", timeout=30)
    assert total(samples, "bananas_jobs_started_total", **default, name="whoami") == 24
    assert total(samples, "bananas_jobs_failed_total", **default, name="boom") == 2
    assert total(samples, "bananas_jobs_retried_total") == 0
    assert total(samples, "bananas_job_duration_seconds_count", name="whoami") == 24
    assert total(samples, "bananas_job_duration_seconds_sum", name="whoami") >= 24 * 0.05
    assert total(samples, "bananas_worker_jobs_running", routing_key="default") == 0
    child_pids = {int(pid) for pid in by_pid}
    assert {int(m.group(1)) for f in directory.iterdir() if (m := re.search(r"_(\d+)\.db$", f.name))} == child_pids

    # kill -9 one child: the supervisor restarts it and drops its files, so the sums are
    # the survivor's alone and nothing of the dead process is left on disk.
    victim, survivor = sorted(by_pid, key=lambda pid: by_pid[pid])
    os.kill(int(victim), signal.SIGKILL)
    wait_until(
        lambda: not list(directory.glob(f"*_{victim}.db")) and len(cli.worker_ids()) >= 2,
        what="the killed child's files to go and its replacement to start",
        timeout=30,
    )
    samples = scrape(port)
    assert total(samples, "bananas_jobs_started_total", name="whoami") == by_pid[survivor]
    assert total(samples, "bananas_jobs_succeeded_total", name="whoami") == by_pid[survivor]
    assert not any(f"_{victim}." in f.name for f in directory.iterdir())

    proc.send_signal(signal.SIGTERM)  # type: ignore[attr-defined]
    assert cli.wait_exit(proc) == 0  # type: ignore[arg-type]
    assert not directory.exists(), "the supervisor removes its metrics directory when it stops"


def test_single_process_worker_serves_its_metrics(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    port = free_port()
    proc = cli.worker("--metrics-port", str(port), env={"WORKER_UNKNOWN_JOBS": "fail"})
    cli.wait_ready(proc)
    client.submit_job("noop", None, routing_key="default", priority="high")
    client.submit_job("unknown_name", None)
    wait_until(lambda: r.llen("test:ran") == 1, what="the job to run", timeout=30)
    samples = wait_until(
        lambda: (s := scrape(port)) and total(s, "bananas_jobs_dead_total") == 1 and s,
        what="the outcomes to be counted",
        timeout=30,
    )
    assert total(samples, "bananas_jobs_succeeded_total", routing_key="default", priority="high", name="noop") == 1
    # A name without a handler is "other", never the name a producer chose.
    assert total(samples, "bananas_jobs_dead_total", name="other") == 1
    assert "unknown_name" not in repr(samples)


def test_a_metrics_port_in_use_is_a_one_line_error(cli: CliRunner) -> None:
    port = free_port()
    import socket

    with socket.socket() as held:
        held.bind(("0.0.0.0", port))
        held.listen()
        done = cli.run("worker", "apps.basic:registry", "--metrics-port", str(port), timeout=30)
        assert done.returncode != 0
        assert f"--metrics-port: cannot serve metrics on port {port}" in done.stderr
        assert "Traceback" not in done.stderr
    bad = cli.run("worker", "apps.basic:registry", env={"WORKER_METRICS_PORT": "http"})
    assert bad.returncode == 2 and "WORKER_METRICS_PORT: expected a port number, got 'http'" in bad.stderr


def test_exporter_serves_the_queue_gauges(cli: CliRunner, client: Client, r: redis.Redis) -> None:
    worker = cli.worker("--routing-keys", "default")
    cli.wait_ready(worker)
    for _ in range(3):
        client.submit_job("send_email", None, routing_key="email", priority="high")
    client.pause("gpu")
    client.submit_job("resize", None, routing_key="gpu")
    client.schedule_job("resize", None, delay=3600)
    client.submit_job("slow", {"seconds": 60}, routing_key="default")
    client.submit_job("not_handled_anywhere", None, routing_key="default")
    wait_until(lambda: r.llen("test:started") == 1, what="the slow job to start", timeout=30)
    port = free_port()
    proc = cli.start("exporter", "--port", str(port))

    def parked(samples: dict[tuple[str, frozenset[tuple[str, str]]], float]) -> float:
        return total(samples, "bananas_parked_jobs", routing_key="default", name="not_handled_anywhere")

    samples = wait_until(
        lambda: (s := _try_scrape(port)) and parked(s) == 1 and s, what="the exporter to serve", timeout=30
    )
    assert total(samples, "bananas_redis_up") == 1
    assert total(samples, "bananas_queue_ready_jobs", routing_key="email", priority="high") == 3
    assert total(samples, "bananas_queue_oldest_job_age_seconds", routing_key="email", priority="high") > 0
    assert total(samples, "bananas_queue_ready_jobs", routing_key="gpu", priority="normal") == 1
    assert total(samples, "bananas_route_orphaned", routing_key="email") == 1
    assert total(samples, "bananas_route_consumers", routing_key="email") == 0
    assert total(samples, "bananas_route_orphaned", routing_key="default") == 0
    assert total(samples, "bananas_route_consumers", routing_key="default") == 1
    assert total(samples, "bananas_route_paused", routing_key="gpu") == 1
    assert total(samples, "bananas_route_paused", routing_key="email") == 0
    assert total(samples, "bananas_queue_paused", routing_key="gpu", priority="low") == 1
    assert total(samples, "bananas_jobs_in_flight", routing_key="default") == 1
    assert total(samples, "bananas_scheduled_jobs") == 1
    assert total(samples, "bananas_dead_jobs") == 0
    assert total(samples, "bananas_workers") == 1
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(10) == 0


def _try_scrape(port: int) -> dict[tuple[str, frozenset[tuple[str, str]]], float] | None:
    try:
        return scrape(port)
    except OSError:
        return None


def test_queue_collector_is_a_reusable_registry(client: Client) -> None:
    from prometheus_client import generate_latest

    client.submit_job("send_email", None, routing_key="email")
    text = generate_latest(exporter_registry(client)).decode()
    assert 'bananas_queue_ready_jobs{priority="normal",routing_key="email"} 1.0' in text


def test_exporter_says_when_redis_cannot_be_read() -> None:
    from prometheus_client import generate_latest

    with Client(f"redis://127.0.0.1:{free_port()}/0") as unreachable:
        text = generate_latest(exporter_registry(unreachable)).decode()
    assert "bananas_redis_up 0.0" in text
    assert "bananas_queue_ready_jobs" not in text

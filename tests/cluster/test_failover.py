"""kill -9 of one Cluster master under load: producers and workers on routing keys spread
over the three masters follow the promoted replica within seconds, no worker hangs, and
with ``BANANAS_WAIT_REPLICAS=1`` no job whose submit returned is lost; only jobs in flight
at the kill may run twice. Printed like the fault suite (submitted, completed, lost,
duplicated). The model is tests/sentinel/test_failover.py."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import redis
from faults.harness import Fleet, Outcome, Submitter, job_specs, report, runs, wait_until

from bananas import Client
from cluster.group import ClusterGroup, master_index, slot_of

pytestmark = pytest.mark.timeout(150)

#: Worker processes and their concurrency: jobs in flight at the kill are at most this many.
WORKERS, CONCURRENCY = 3, 6
#: Longer than a failover, so leases held across it are renewed, not recovered.
LEASE = 8.0
#: The routing keys of the load (faults.harness.job_specs): one on each master.
KEYS = ("alpha", "beta", "default")
#: The routing key whose master is killed.
VICTIM = "alpha"


@pytest.fixture
def store(redis_url: str) -> Iterator[redis.Redis]:
    """The instrument: where handlers record their runs (never the servers under test)."""
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture
def fleet(cluster_env: dict[str, str], redis_url: str, tmp_path: Path) -> Iterator[Fleet]:
    pool = Fleet(cluster_env, redis_url, tmp_path)
    try:
        yield pool
    finally:
        pool.cleanup()


def statuses(client: Client, ids: Sequence[str]) -> dict[str, str | None]:
    """Each job's status through the public API (a Cluster has no MGET across slots)."""
    out: dict[str, str | None] = {}
    for job_id in ids:
        job = client.get_job(job_id)
        out[job_id] = None if job is None else job.status.value
    return out


def wait_completed(client: Client, ids: Sequence[str], timeout: float) -> None:
    left = list(ids)
    deadline = time.monotonic() + timeout
    while left:
        left = [i for i, s in statuses(client, left).items() if s != "completed"]
        if left and time.monotonic() > deadline:
            raise AssertionError(f"{len(left)} of {len(ids)} jobs did not complete within {timeout:.0f}s")
        time.sleep(0.5 if left else 0)


def test_master_killed_under_load(cluster: ClusterGroup, fleet: Fleet, store: redis.Redis) -> None:
    assert sorted(master_index(k) for k in KEYS) == [0, 1, 2]
    url = cluster.url
    env = {"BANANAS_WAIT_REPLICAS": "1"}
    # The victim last in the workers' strict order: its jobs are still waiting at the kill.
    order = (*(k for k in KEYS if k != VICTIM), VICTIM)
    procs = [
        fleet.worker(url, concurrency=CONCURRENCY, lease=LEASE, routing_keys=order, env=env) for _ in range(WORKERS)
    ]
    with Client(url) as probe:
        wait_until(lambda: len(probe.workers()) >= WORKERS, 30, f"{WORKERS} workers to announce themselves")

    started = time.monotonic()
    clients = {key: Client(url, wait_replicas=1) for key in KEYS}
    try:
        ids: list[str] = []
        victim_ids: set[str] = set()
        for key, client in clients.items():
            batch = [spec for spec in job_specs(600, ms=(5, 40)) if spec[1] == key]
            for name in ("work", "work_sync"):
                payloads = [spec[3] for spec in batch if spec[0] == name]
                submitted = client.submit_many(name, payloads, routing_key=key)
                ids += submitted
                if key == VICTIM:
                    victim_ids.update(submitted)
        # One producer per routing key, so the victim's own submits can be followed.
        producers = {
            key: Submitter(client, [s for s in job_specs(1200, ms=(5, 40)) if s[1] == key], batch=5, pause=0.05)
            for key, client in clients.items()
        }
        for producer in producers.values():
            producer.start()
        wait_until(lambda: len(runs(store)) >= 300, 60, "300 jobs to run before the kill")
        accepted_at_kill = {key: len(p.accepted) for key, p in producers.items()}
        ran_at_kill = runs(store)
        victim_producer = producers[VICTIM]
        assert len(victim_producer.accepted) < len(victim_producer.specs), "the victim's producer ended before the kill"
        victims = [*victim_ids, *producers[VICTIM].accepted[: accepted_at_kill[VICTIM]]]
        waiting_victims = [i for i in victims if i not in ran_at_kill]

        killed = cluster.kill_master(VICTIM)  # kill -9
        assert killed is cluster.initial_masters[0]
        at_kill = time.monotonic()
        promoted = cluster.wait_failover(killed, slot_of(VICTIM))
        failover_s = time.monotonic() - at_kill
        ran_during = len(runs(store)) - len(ran_at_kill)

        # Workers follow the promoted replica: a victim job that waited at the kill runs.
        follow_s = None
        if waiting_victims:
            wait_until(lambda: any(i in runs(store) for i in waiting_victims), 30, f"a waiting {VICTIM} job to run")
            follow_s = round(time.monotonic() - at_kill, 1)
        # The killed master comes back empty as a replica of the promoted one; until then
        # no WAIT 1 on that slot range can succeed, so no submit to the victim returns.
        cluster.restart(killed)
        with promoted.client() as c:
            assert c.info("replication")["connected_slaves"] >= 1
        rejoined_s = time.monotonic() - at_kill
        # Producers follow too: a victim job submitted after the kill runs.
        wait_until(
            lambda: any(i in runs(store) for i in producers[VICTIM].accepted[accepted_at_kill[VICTIM] :]),
            30,
            f"a {VICTIM} job submitted after the kill to run",
        )
        producers_s = time.monotonic() - at_kill
        for producer in producers.values():
            producer.join(90)
        accepted_after = sum(len(p.accepted) for p in producers.values()) - sum(accepted_at_kill.values())
        assert accepted_after > 0, "no submit returned after the failover"
        for producer in producers.values():
            ids += producer.accepted

        with Client(url) as reader:
            wait_completed(reader, ids, timeout=60)
            hung = [p.name for p in procs if not p.alive()]
            assert hung == [], f"workers exited during the failover: {hung}"
            state = statuses(reader, ids)
        count = runs(store)
        completed = sum(1 for i in ids if state[i] == "completed" and count.get(i, 0) >= 1)
        outcome = Outcome(
            "cluster_failover", len(ids), completed, len(ids) - completed,
            sum(1 for i in ids if count.get(i, 0) > 1), time.monotonic() - started,
            {
                "failover_s": round(failover_s, 1), "follow_s": follow_s,
                "rejoined_s": round(rejoined_s, 1), "producers_s": round(producers_s, 1),
                "ran_during_failover": ran_during,
                "submit_errors": sum(p.failures for p in producers.values()),
            },
        )  # fmt: skip
        report(outcome)
    finally:
        for client in clients.values():
            client.close()
    assert outcome.lost == 0, outcome.line()
    # Only jobs in flight at the kill (leased, running or with an ack not yet replicated) run twice.
    assert outcome.duplicated <= WORKERS * CONCURRENCY * 2, outcome.line()
    # Every worker stops on SIGTERM within its grace: none is stuck on the dead master.
    for proc in procs:
        proc.signal(15)
    for proc in procs:
        assert proc.wait(30) == 0, proc.log_text()[-2000:]

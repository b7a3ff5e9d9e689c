"""The example end to end on one machine, with no Redis to install.

Starts an embedded Redis-compatible server, two schedulers (for availability) and one
worker. Halfway through, one scheduler is killed without warning; the other carries
on. At the end it checks that every tick ran exactly once and prints ``bananas
schedules``.

    python run_demo.py            # 20 seconds
    python run_demo.py 60         # longer
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import redis

from bananas.core.job import Job
from bananas.embedded import EmbeddedServer
from bananas.redis import keys

HERE = Path(__file__).resolve().parent
BANANAS = [sys.executable, "-m", "bananas"]


def main() -> int:
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else 20.0
    with tempfile.TemporaryDirectory() as data:
        server = EmbeddedServer(data).start()
        env = {**os.environ, "REDIS_URL": server.url, "PYTHONUNBUFFERED": "1", "BANANAS_SCHEDULES": ""}
        try:
            return run(seconds, env, server.url)
        finally:
            server.stop()


def start(args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([*BANANAS, *args], cwd=HERE, env=env)


def run(seconds: float, env: dict[str, str], url: str) -> int:
    scheduler_args = ["scheduler", "tasks:registry", "--schedules", "schedules.toml", "--log-level", "WARNING"]
    schedulers = [start(scheduler_args, env) for _ in range(2)]
    worker = start(["worker", "tasks:registry", "--routing-keys", "default,maintenance", "--log-level", "WARNING"], env)
    print(f"two schedulers and a worker running for {seconds:.0f} s (Ctrl-C to stop early)\n", flush=True)
    try:
        time.sleep(seconds / 2)
        schedulers[0].kill()
        print("\n--- scheduler 1 killed (SIGKILL); scheduler 2 carries on ---\n", flush=True)
        time.sleep(seconds / 2)
    except KeyboardInterrupt:
        pass
    for proc in (*schedulers[1:], worker):
        proc.send_signal(signal.SIGTERM)
    codes = [proc.wait(timeout=30) for proc in (*schedulers, worker)]
    print(f"\nexit codes: schedulers {codes[:2]} (the first was killed), worker {codes[2]}")

    client = redis.Redis.from_url(url)
    jobs = []
    for key in client.scan_iter(match=keys.job("*"), count=1000):
        raw = client.get(key)
        if raw:
            jobs.append(Job.from_record(raw))
    per_tick = Counter((j.extra.get("schedule_id"), j.extra.get("schedule_tick")) for j in jobs)
    per_schedule = Counter(schedule_id for schedule_id, _ in per_tick)
    twice = [tick for tick, n in per_tick.items() if n > 1]
    print(f"jobs per schedule: {dict(per_schedule)}; ticks enqueued more than once: {len(twice)}")
    client.close()

    print("\n$ bananas schedules tasks:registry --schedules schedules.toml")
    subprocess.run([*BANANAS, "schedules", "tasks:registry", "--schedules", "schedules.toml"], cwd=HERE, env=env)
    return 1 if twice or codes[1:] != [0, 0] else 0


if __name__ == "__main__":
    sys.exit(main())

"""A worker that only takes jobs routed to ``gpu``: run it on the machines with GPUs.

    python gpu_worker.py

does what ``WORKER_ROUTING_KEYS=gpu bananas worker tasks:registry`` does. Everything
else (REDIS_URL, WORKER_CONCURRENCY, JOB_TIMEOUT...) comes from the environment.
Stop it with Ctrl-C or SIGTERM: running jobs finish first, then it exits 0.
"""

from __future__ import annotations

import asyncio
import logging
import os

import tasks

from bananas import Worker, WorkerSettings


async def main() -> None:
    # routing_keys is given the way a command-line flag is, so it wins over
    # WORKER_ROUTING_KEYS; every other setting is read from the environment.
    settings = WorkerSettings.from_env(os.environ, routing_keys="gpu")
    await Worker(tasks.registry, settings).run(install_signal_handlers=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tasks.WORKER_NAME = tasks.WORKER_NAME or "gpu-worker"
    asyncio.run(main())

"""A general-purpose worker on ``gpu``, ``email`` and ``default``, in that order.

    python multi_worker.py

does what ``WORKER_ROUTING_KEYS=gpu,email,default bananas worker tasks:registry`` does.
It takes work in strict order: gpu:high, gpu:normal, gpu:low, email:high, ...,
default:low, so it helps with GPU jobs first and falls back to the rest. Being on
``default``, it also drains the pre-routing lists ``bananas:queue:{priority}``.
"""

from __future__ import annotations

import asyncio
import logging
import os

import tasks

from bananas import Worker, WorkerSettings


async def main() -> None:
    settings = WorkerSettings.from_env(os.environ, routing_keys="gpu,email,default")
    await Worker(tasks.registry, settings).run(install_signal_handlers=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    tasks.WORKER_NAME = tasks.WORKER_NAME or "multi-worker"
    asyncio.run(main())

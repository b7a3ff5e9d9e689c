"""Handlers shared by the example workers.

Every worker process imports the same registry; which jobs a worker actually receives
is decided by its routing keys, not by the handlers it has. Each handler prints one
line naming the worker that ran it, so you can watch the routing happen.
"""

from __future__ import annotations

import asyncio
import os
import time

from bananas import Job, Registry

registry = Registry()

#: Set by gpu_worker.py / multi_worker.py; a worker started with ``bananas worker``
#: shows its process id instead.
WORKER_NAME = os.environ.get("EXAMPLE_WORKER_NAME", "")


def report(job: Job, what: str) -> dict[str, str]:
    worker = WORKER_NAME or f"pid {os.getpid()}"
    print(
        f"[{worker}] {job.name:<16} routing_key={job.routing_key:<8} priority={job.priority.value:<6} {what}",
        flush=True,
    )
    return {"worker": worker, "routing_key": job.routing_key}


# -- GPU work -------------------------------------------------------------------


@registry.handler("process_image")
def process_image(job: Job) -> dict[str, str]:
    time.sleep(0.05)  # stands in for a CUDA kernel
    return report(job, f"image {job.payload['image']} -> {job.payload['ops']}")


@registry.handler("train_model")
def train_model(job: Job) -> dict[str, str]:
    time.sleep(0.1)
    return report(job, f"model {job.payload['model']} for {job.payload['epochs']} epochs")


@registry.handler("transcode_video")
async def transcode_video(job: Job) -> dict[str, str]:
    await asyncio.sleep(0.05)
    return report(job, f"video {job.payload['video']} -> {job.payload['format']}")


# -- email ----------------------------------------------------------------------


@registry.handler("send_email")
async def send_email(job: Job) -> dict[str, str]:
    await asyncio.sleep(0.01)  # stands in for an SMTP call
    return report(job, f"to {job.payload['to']} ({job.payload['template']})")


# -- everything else ------------------------------------------------------------


@registry.handler("generate_report")
def generate_report(job: Job) -> dict[str, str]:
    return report(job, f"{job.payload['report']} report")

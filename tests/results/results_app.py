"""Handlers for the result tests, importable by CLI workers as ``results_app:registry``
(the tests put this directory on ``PYTHONPATH``)."""

from __future__ import annotations

import asyncio
from typing import Any

from bananas import Job, Registry

registry = Registry()


@registry.handler("add")
def add(job: Job) -> dict[str, Any]:
    return {"sum": job.payload["a"] + job.payload["b"], "id": job.id}


@registry.handler("echo")
async def echo(job: Job) -> Any:
    return job.payload


@registry.handler("nothing")
def nothing(job: Job) -> None:
    return None


@registry.handler("slow")
async def slow(job: Job) -> dict[str, Any]:
    """Sleeps ``payload["seconds"]``, then returns ``payload["value"]``."""
    await asyncio.sleep(float(job.payload["seconds"]))
    return {"value": job.payload.get("value"), "slept": job.payload["seconds"]}


@registry.handler("explode")
def explode(job: Job) -> None:
    raise ValueError(f"exploded on purpose: {job.payload}")


@registry.handler("returns_set")
def returns_set(job: Job) -> Any:
    return {1, 2, 3}


@registry.handler("returns_object")
def returns_object(job: Job) -> Any:
    return object()


@registry.handler("returns_bytes")
def returns_bytes(job: Job) -> Any:
    return b"\x00\x01"


@registry.handler("returns_nan")
def returns_nan(job: Job) -> Any:
    return {"ratio": float("nan")}


@registry.handler("returns_int_keys")
def returns_int_keys(job: Job) -> Any:
    return {1: "one"}

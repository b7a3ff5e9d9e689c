"""Handlers for the results example. A handler's return value (any JSON value) is the
job's result; an exception, after the job's retries, makes it a failed result.

    bananas worker tasks:registry
"""

from __future__ import annotations

import asyncio
import time

from bananas import Fail, Job, Registry

registry = Registry()


@registry.handler("make_thumbnail")
def make_thumbnail(job: Job) -> dict[str, object]:
    """Pretends to scale an image down to fit 128x128; returns the new size."""
    width, height = job.payload["width"], job.payload["height"]
    scale = min(128 / width, 128 / height, 1.0)
    time.sleep(0.02)  # stands in for the real work
    return {
        "thumbnail": job.payload["image"].rsplit(".", 1)[0] + "_thumb.png",
        "width": round(width * scale),
        "height": round(height * scale),
    }


@registry.handler("charge_card")
async def charge_card(job: Job) -> dict[str, object]:
    """Declines one test card number; ``Fail`` fails the job at once, without retries."""
    await asyncio.sleep(0.01)
    if job.payload["card"].endswith("0002"):
        raise Fail(f"card ending {job.payload['card'][-4:]} declined")
    return {"charged": job.payload["amount"], "currency": "EUR"}


@registry.handler("build_report")
async def build_report(job: Job) -> dict[str, object]:
    """Takes ``payload["seconds"]``: longer than a short wait is willing to wait."""
    await asyncio.sleep(float(job.payload["seconds"]))
    return {"report": job.payload["name"], "rows": 1234}

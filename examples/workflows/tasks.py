"""Handlers of the workflows example: image work on the ``gpu`` pool, mail on ``email``."""

from __future__ import annotations

import time

from bananas import Job, Registry

registry = Registry()


@registry.handler("resize")
def resize(job: Job) -> dict[str, object]:
    width = job.payload["width"]
    for step in range(1, 5):
        time.sleep(0.05)
        job.set_progress(step / 4, f"pass {step} of 4")
    return {"image": job.payload["image"], "width": width}


@registry.handler("send_email")
def send_email(job: Job) -> str:
    resized = job.parent_result  # what "resize" returned
    return f"mailed {resized['image']} at {resized['width']}px to {job.payload['to']}"


@registry.handler("thumbnail")
def thumbnail(job: Job) -> str:
    return f"thumb-{job.payload}.png"


@registry.handler("make_album")
def make_album(job: Job) -> str:
    thumbnails = job.parent_result  # every member's result, in the group's order
    return f"album of {len(thumbnails)}: {', '.join(thumbnails)}"

"""Handlers and periodic schedules of the example.

``bananas scheduler tasks:registry`` runs the schedules below; ``bananas worker
tasks:registry`` runs the handlers. Each handler prints one line with the tick it was
created for (``job.extra["schedule_tick"]``) and the process that ran it.
"""

from __future__ import annotations

import os
from datetime import datetime

from bananas import Job, Registry

registry = Registry()

# Every 5 seconds (6 fields: the first is seconds). A heartbeat is useless late, so
# missed ticks are skipped, and "late" means more than 5 seconds.
registry.periodic("*/5 * * * * *", "heartbeat", {"service": "billing"}, missed="skip", grace=5)

# The example: every five hours on the hour, Berlin time, to the maintenance pool.
registry.periodic(
    "0 */5 * * *", "cleanup", {"older_than_days": 7},
    routing_key="maintenance", priority="low", timezone="Europe/Berlin",
)  # fmt: skip

# A daily 02:30 report in Berlin: runs once on DST days too (03:00 on the spring-forward
# day, the first 02:30 on the fall-back day). Missed runs are collapsed into one.
registry.periodic("30 2 * * *", "report", {"kind": "daily"}, schedule_id="daily-report", timezone="Europe/Berlin")


def show(job: Job) -> None:
    tick = datetime.fromisoformat(job.extra["schedule_tick"]).astimezone().strftime("%H:%M:%S")
    print(
        f"[worker pid {os.getpid()}] {job.name:<10} tick {tick}  schedule={job.extra['schedule_id']:<14} "
        f"routing_key={job.routing_key} priority={job.priority.value} payload={job.payload}",
        flush=True,
    )


@registry.handler("heartbeat")
def heartbeat(job: Job) -> None:
    show(job)


@registry.handler("pulse")
def pulse(job: Job) -> None:
    show(job)


@registry.handler("cleanup")
def cleanup(job: Job) -> None:
    show(job)


@registry.handler("report")
def report(job: Job) -> None:
    show(job)

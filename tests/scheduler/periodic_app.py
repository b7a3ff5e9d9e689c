"""Apps for the periodic-task tests (imported by ``bananas scheduler`` subprocesses as
``periodic_app:registry`` with tests/scheduler on PYTHONPATH)."""

from __future__ import annotations

import os

from bananas import Job, Registry

#: The exactly-once soak: one tick per second on its own routing key.
registry = Registry()
registry.periodic(
    "* * * * * *",
    "tick",
    {"source": "soak"},
    schedule_id="soak-every-second",
    routing_key="soak",
    priority="high",
    grace=float(os.environ.get("SOAK_GRACE", "60")),
)

#: For ``bananas schedules``: two schedules, one of which is never started in the tests.
catalog = Registry()
catalog.periodic("30 2 * * *", "nightly", {"days": 30}, schedule_id="nightly-cleanup", timezone="Europe/Berlin")
catalog.periodic("@hourly", "report", routing_key="reports", priority="low", missed="skip")


@catalog.handler("report")
def report(job: Job) -> None:
    return None

"""Periodic (cron) tasks: schedules, and the scheduler service that enqueues their ticks.

- ``cron``: cron expressions in IANA time zones (parsing by cronsim), tick arithmetic
- ``definition``: ``Schedule``, the validated definition of one periodic job
- ``policy``: what to do at a given moment (fire a tick, skip or collapse missed ones)
- ``schedule_file``: schedules from a TOML file
- ``store``: the schedule state in Redis, changed only by compare-and-set scripts
- ``service``: ``Scheduler``, the loop run by ``bananas scheduler`` (also promotes
  due scheduled jobs)

Importing this package has no side effects and does not import redis-py, so the
worker's ``Registry`` can hold schedules without depending on the service.
"""

from bananas.scheduler.cron import CronError, CronSpec
from bananas.scheduler.definition import MissedPolicy, Schedule

__all__ = ["CronError", "CronSpec", "MissedPolicy", "Schedule"]

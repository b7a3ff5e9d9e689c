"""The exceptions Bananas raises, in one tree.

::

    BananasError
    ├── ConfigurationError          a setting (env var, flag, file) has a bad value
    ├── ValidationError (ValueError) input to the API is wrong; nothing was written
    │   ├── InvalidRoutingKeyError
    │   ├── InvalidPriorityError
    │   ├── PayloadError            not JSON-serializable, NaN/Infinity, too large
    │   ├── RouteTableError         a route table rule is invalid (names the rule)
    │   └── ScheduleError           a periodic schedule is invalid (names the schedule;
    │                               defined in bananas.scheduler.definition)
    ├── StartupError                a worker cannot start on this Redis: unreachable, wrong
    │                               password, missing ACL permission, an evicting policy
    ├── MalformedJobError           a record found in Redis cannot be read as a job
    ├── JobFailedError              the job awaited failed for good (carries job id, error)
    │   ├── JobCancelledError       it was cancelled (``bananas cancel``, ``Client.cancel``)
    │   └── JobExpiredError         it was not started before its ``expires_at``
    └── JobTimeoutError (TimeoutError) waiting for a result timed out; the job runs on

Connection failures surface as redis-py's ``redis.exceptions.ConnectionError`` (the
CLI turns them into one line with the password masked).

Control-flow signals raised *by handlers* (``Retry``, ``Fail``) live in
``bananas.worker.signals``: they are not errors of Bananas itself.
"""

from __future__ import annotations


class BananasError(Exception):
    """Base class of every error Bananas raises."""


class ConfigurationError(BananasError):
    """A configuration value is invalid. The message names the setting."""

    def __init__(self, setting: str, message: str) -> None:
        self.setting = setting
        super().__init__(f"{setting}: {message}")


class ValidationError(BananasError, ValueError):
    """Input to a Bananas API is invalid. Nothing was written to Redis."""


class InvalidRoutingKeyError(ValidationError):
    """A routing key breaks the rule: 1 to 64 characters of A-Z a-z 0-9 _ -."""

    def __init__(self, key: object, reason: str) -> None:
        self.key = key
        self.reason = reason
        super().__init__(
            f"invalid routing key {key!r}: {reason} (a routing key is 1 to 64 characters of A-Z a-z 0-9 _ -)"
        )


class InvalidPriorityError(ValidationError):
    """A priority is not one of high, normal, low."""

    def __init__(self, value: object) -> None:
        self.value = value
        super().__init__(f"unknown priority {value!r}: expected one of 'high', 'normal', 'low'")


class PayloadError(ValidationError):
    """A payload cannot cross the wire as JSON."""


class RouteTableError(ValidationError):
    """A route table (``bananas.Router``) is invalid, or one of its rules gave a bad answer.

    The message names where: the file (``source``), the rule's number (1-based, in the
    order the rules were added or appear in the file) and its pattern.
    """

    def __init__(
        self,
        reason: str,
        *,
        rule_number: int | None = None,
        pattern: str | None = None,
        source: str | None = None,
    ) -> None:
        self.reason = reason
        self.rule_number = rule_number
        self.pattern = pattern
        self.source = source
        where: list[str] = []
        if source is not None:
            where.append(f"route table {source}")
        if rule_number is not None:
            where.append(f"rule #{rule_number}" + (f" ({pattern})" if pattern else ""))
        super().__init__(": ".join([*where, reason]) if where else f"route table: {reason}")


class StartupError(BananasError):
    """A worker cannot start on this Redis (the message says why and what to do).

    The CLI prints it as one line and exits 3, as for an unreachable server."""


class MalformedJobError(BananasError):
    """A job record in Redis is not a readable job (not JSON, not an object, no id...)."""

    def __init__(self, reason: str, job_id: str | None = None) -> None:
        self.reason = reason
        self.job_id = job_id
        super().__init__(reason if job_id is None else f"job {job_id}: {reason}")


class JobFailedError(BananasError):
    """The awaited job failed for good (no retries left, or failed on purpose)."""

    def __init__(self, job_id: str, error: str) -> None:
        self.job_id = job_id
        self.error = error
        first_line = error.splitlines()[0] if error else "unknown error"
        super().__init__(f"job {job_id} failed: {first_line}")


class JobCancelledError(JobFailedError):
    """The awaited job was cancelled by an operator; it will not run (again)."""

    def __init__(self, job_id: str, error: str = "cancelled") -> None:
        self.job_id = job_id
        self.error = error
        BananasError.__init__(self, f"job {job_id} was cancelled")


class JobExpiredError(JobFailedError):
    """The awaited job was not started before its ``expires_at``; it never runs."""

    def __init__(self, job_id: str, error: str = "expired") -> None:
        self.job_id = job_id
        self.error = error
        BananasError.__init__(self, f"job {job_id} expired before it started")


class JobTimeoutError(BananasError, TimeoutError):
    """No result arrived within the timeout. The job itself is not cancelled."""

    def __init__(self, job_id: str, timeout: float) -> None:
        self.job_id = job_id
        self.timeout = timeout
        super().__init__(f"no result for job {job_id} within {timeout:g} seconds (the job keeps running)")

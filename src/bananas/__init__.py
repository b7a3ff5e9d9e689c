"""Bananas: a distributed task queue for Python on Redis, with routed priority queues."""

from bananas.client import AsyncClient, Client
from bananas.client.inspect import ParkedDepth, Problem, QueueDepth, QueueStats, RouteStats
from bananas.config import WorkerSettings
from bananas.core.fleet import PausedQueue, RunningJob, WorkerInfo
from bananas.core.job import Job, JobStatus
from bananas.core.priority import Priority
from bananas.core.result import JobResult
from bananas.core.router import Route, Router
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.errors import (
    BananasError,
    ConfigurationError,
    InvalidPriorityError,
    InvalidRoutingKeyError,
    JobCancelledError,
    JobExpiredError,
    JobFailedError,
    JobTimeoutError,
    MalformedJobError,
    PayloadError,
    RouteTableError,
    ValidationError,
)
from bananas.events import EventKind, JobEvent
from bananas.worker.registry import Registry
from bananas.worker.service import Worker
from bananas.worker.signals import Fail, Retry

__version__ = "0.1.0"

__all__ = [
    "DEFAULT_ROUTING_KEY",
    "AsyncClient",
    "BananasError",
    "Client",
    "ConfigurationError",
    "EventKind",
    "Fail",
    "InvalidPriorityError",
    "InvalidRoutingKeyError",
    "Job",
    "JobCancelledError",
    "JobEvent",
    "JobExpiredError",
    "JobFailedError",
    "JobResult",
    "JobStatus",
    "JobTimeoutError",
    "MalformedJobError",
    "ParkedDepth",
    "PausedQueue",
    "PayloadError",
    "Priority",
    "Problem",
    "QueueDepth",
    "QueueStats",
    "Registry",
    "Retry",
    "Route",
    "RouteStats",
    "RouteTableError",
    "Router",
    "RunningJob",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "WorkerSettings",
    "validate_routing_key",
]

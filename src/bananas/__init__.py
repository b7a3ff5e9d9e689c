"""Bananas: a distributed task queue for Python on Redis, with routed priority queues."""

from bananas.client import AsyncClient, Client
from bananas.client.inspect import ParkedDepth, Problem, QueueDepth, QueueStats, RouteStats
from bananas.client.workflows import AsyncWorkflowHandle, WorkflowHandle
from bananas.config import WorkerSettings
from bananas.core.fleet import PausedQueue, RunningJob, WorkerInfo
from bananas.core.job import Job, JobStatus
from bananas.core.priority import Priority
from bananas.core.progress import Progress
from bananas.core.result import JobResult
from bananas.core.router import Route, Router
from bananas.core.routing import DEFAULT_ROUTING_KEY, validate_routing_key
from bananas.core.workflow import Chain, Chord, Group, Signature, WorkflowInfo, WorkflowStep, chain, chord, group, sig
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
    "AsyncWorkflowHandle",
    "BananasError",
    "Chain",
    "Chord",
    "Client",
    "ConfigurationError",
    "EventKind",
    "Fail",
    "Group",
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
    "Progress",
    "QueueDepth",
    "QueueStats",
    "Registry",
    "Retry",
    "Route",
    "RouteStats",
    "RouteTableError",
    "Router",
    "RunningJob",
    "Signature",
    "ValidationError",
    "Worker",
    "WorkerInfo",
    "WorkerSettings",
    "WorkflowHandle",
    "WorkflowInfo",
    "WorkflowStep",
    "chain",
    "chord",
    "group",
    "sig",
    "validate_routing_key",
]

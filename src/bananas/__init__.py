"""Bananas: a distributed task queue for Python on Redis, with routed priority queues.

The public names below are imported on first use (PEP 562), so ``import bananas`` (and
the ``bananas`` command's start, ``bananas --help``) does not pull in redis-py and the
worker until a program asks for them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
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
    from bananas.core.workflow import (
        Chain,
        Chord,
        Group,
        Signature,
        WorkflowInfo,
        WorkflowStep,
        chain,
        chord,
        group,
        sig,
    )
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


#: public name -> the module that defines it.
_EXPORTS: dict[str, str] = {
    "AsyncClient": "bananas.client",
    "Client": "bananas.client",
    "ParkedDepth": "bananas.client.inspect",
    "Problem": "bananas.client.inspect",
    "QueueDepth": "bananas.client.inspect",
    "QueueStats": "bananas.client.inspect",
    "RouteStats": "bananas.client.inspect",
    "AsyncWorkflowHandle": "bananas.client.workflows",
    "WorkflowHandle": "bananas.client.workflows",
    "WorkerSettings": "bananas.config",
    "PausedQueue": "bananas.core.fleet",
    "RunningJob": "bananas.core.fleet",
    "WorkerInfo": "bananas.core.fleet",
    "Job": "bananas.core.job",
    "JobStatus": "bananas.core.job",
    "Priority": "bananas.core.priority",
    "Progress": "bananas.core.progress",
    "JobResult": "bananas.core.result",
    "Route": "bananas.core.router",
    "Router": "bananas.core.router",
    "DEFAULT_ROUTING_KEY": "bananas.core.routing",
    "validate_routing_key": "bananas.core.routing",
    "Chain": "bananas.core.workflow",
    "Chord": "bananas.core.workflow",
    "Group": "bananas.core.workflow",
    "Signature": "bananas.core.workflow",
    "WorkflowInfo": "bananas.core.workflow",
    "WorkflowStep": "bananas.core.workflow",
    "chain": "bananas.core.workflow",
    "chord": "bananas.core.workflow",
    "group": "bananas.core.workflow",
    "sig": "bananas.core.workflow",
    "BananasError": "bananas.errors",
    "ConfigurationError": "bananas.errors",
    "InvalidPriorityError": "bananas.errors",
    "InvalidRoutingKeyError": "bananas.errors",
    "JobCancelledError": "bananas.errors",
    "JobExpiredError": "bananas.errors",
    "JobFailedError": "bananas.errors",
    "JobTimeoutError": "bananas.errors",
    "MalformedJobError": "bananas.errors",
    "PayloadError": "bananas.errors",
    "RouteTableError": "bananas.errors",
    "ValidationError": "bananas.errors",
    "EventKind": "bananas.events",
    "JobEvent": "bananas.events",
    "Registry": "bananas.worker.registry",
    "Worker": "bananas.worker.service",
    "Fail": "bananas.worker.signals",
    "Retry": "bananas.worker.signals",
}


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'bananas' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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

"""Reading workflows back, and the handle ``Client.submit`` returns (both clients).

A workflow's outcome is stored like a job's, in ``bananas:result:<workflow id>``, and
announced on the same kind of channel: waiting for it is waiting for a result.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import TYPE_CHECKING, Any

from bananas.client.inspect import read_records
from bananas.core.progress import Progress
from bananas.core.workflow import WorkflowInfo, spec_step_ids, workflow_info
from bananas.redis.keys import KeyLayout

if TYPE_CHECKING:
    from bananas.client.async_client import AsyncClient
    from bananas.client.sync_client import Client


def read_workflow(workflow_id: str, layout: KeyLayout) -> Generator[list[Any], list[Any], WorkflowInfo | None]:
    """The workflow's state and every step's, in two round trips."""
    fields, outcome = yield [("HGETALL", layout.workflow(workflow_id)), ("HGETALL", layout.result(workflow_id))]
    if not fields:
        return None
    ids = spec_step_ids(fields)
    records = yield from read_records(ids, layout)
    return workflow_info(workflow_id, fields, records, outcome or {})


def read_progress(job_id: str, layout: KeyLayout) -> Generator[list[Any], list[Any], Progress | None]:
    (data,) = yield [("HGETALL", layout.progress(job_id))]
    return Progress.from_hash(data) if data else None


class WorkflowHandle:
    """A submitted workflow: ``id``, the ids of its steps, and ``wait`` for its outcome."""

    def __init__(self, client: Client, workflow_id: str, stages: list[list[str]]) -> None:
        self._client = client
        self.id = workflow_id
        #: Step ids, stage by stage (a group's members in the group's order).
        self.stages = stages

    @property
    def job_ids(self) -> list[str]:
        """Every step's job id, in stage order."""
        return [job_id for stage in self.stages for job_id in stage]

    def wait(self, timeout: float | None = 30) -> Any:
        """The result of the last step (a list for a final group, or the chord callback's
        result); ``JobFailedError`` if the workflow failed, ``JobTimeoutError`` after
        ``timeout`` seconds (None: no limit)."""
        return self._client.wait_workflow(self.id, timeout)

    def info(self) -> WorkflowInfo | None:
        """The state of the workflow and of every step (``Client.get_workflow``)."""
        return self._client.get_workflow(self.id)

    def __repr__(self) -> str:
        return f"WorkflowHandle({self.id!r})"


class AsyncWorkflowHandle:
    """``WorkflowHandle`` of the asyncio client: ``await handle.wait(timeout)``."""

    def __init__(self, client: AsyncClient, workflow_id: str, stages: list[list[str]]) -> None:
        self._client = client
        self.id = workflow_id
        self.stages = stages

    @property
    def job_ids(self) -> list[str]:
        return [job_id for stage in self.stages for job_id in stage]

    async def wait(self, timeout: float | None = 30) -> Any:
        return await self._client.wait_workflow(self.id, timeout)

    async def info(self) -> WorkflowInfo | None:
        return await self._client.get_workflow(self.id)

    def __repr__(self) -> str:
        return f"AsyncWorkflowHandle({self.id!r})"


def read_job_and_progress(
    job_id: str, layout: KeyLayout
) -> Generator[list[Any], list[Any], tuple[Any, Progress | None]]:
    """A job's record and its progress, in one round trip."""
    raw, data = yield [("GET", layout.job(job_id)), ("HGETALL", layout.progress(job_id))]
    return raw, (Progress.from_hash(data) if data else None)

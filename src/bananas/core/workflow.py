"""Workflows (chains, groups, chords) and their plan: pure, no I/O.

A workflow is flattened into *stages*, run one after another. A stage is one signature
or a group of signatures run in parallel; the next stage starts when every member of
the previous one ended (``chain(a, group(b, c), d)`` is three stages; ``chord(group,
callback)`` is the group's stage, then the callback's). Every step's record is built at
submit time, so its id and keys are known: the script that ends a step enqueues the
next stage in the same atomic step (docs/WORKFLOWS.md).

A step receives the previous stage's outcome as ``job.parent_result``: the previous
step's result, or the list of a group's results in the group's order.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from bananas.core import codec
from bananas.core.clock import parse_time
from bananas.core.job import Job
from bananas.core.priority import Priority
from bananas.errors import ValidationError

#: Steps a workflow may have (each one's record is written at submit time).
MAX_STEPS = 10_000
#: Seconds a workflow's state is kept while it runs (bounded: an abandoned workflow goes away).
DEFAULT_WORKFLOW_TTL = 7 * 24 * 3600
#: Seconds a workflow's state and outcome are kept after it ended.
DEFAULT_WORKFLOW_RESULT_TTL = 24 * 3600

RUNNING = "running"
COMPLETED = "completed"
FAILED = "failed"
#: Status shown for a step whose stage has not started (its record is not queued yet).
WAITING = "waiting"
#: Status shown for a step that never ran because its workflow failed before it.
SKIPPED = "skipped"


@dataclass(frozen=True, slots=True)
class Signature:
    """One step of a workflow: a job name, its payload and how to submit it."""

    name: str
    payload: Any = None
    routing_key: str | None = None
    priority: Priority | str | None = None
    max_retries: int | None = None
    description: str | None = None
    #: Seconds the step may run (the record's ``timeout``), None: the worker's default.
    timeout: float | None = None
    #: Seconds the step's own result is kept (as ``submit_job(result_ttl=)``).
    result_ttl: int | None = None


@dataclass(frozen=True, slots=True)
class Group:
    """Signatures run in parallel. As a stage of a chain or a chord, the next stage
    starts when every member ended and receives their results as a list."""

    members: tuple[Signature, ...]
    #: A member that fails for good counts as ended, with ``None`` as its result.
    allow_failure: bool = False


@dataclass(frozen=True, slots=True)
class Chain:
    """Steps run one after another; each receives the previous one's result."""

    steps: tuple[Workflow, ...]


@dataclass(frozen=True, slots=True)
class Chord:
    """A group, then ``callback`` once with the list of the group's results."""

    group: Group
    callback: Signature | Chain


Workflow: TypeAlias = Signature | Group | Chain | Chord


def sig(
    name: str,
    payload: Any = None,
    *,
    routing_key: str | None = None,
    priority: Priority | str | None = None,
    max_retries: int | None = None,
    description: str | None = None,
    timeout: float | None = None,
    result_ttl: int | None = None,
) -> Signature:
    """A workflow step. ``routing_key``/``priority`` not given: the route table's, as for
    any submit; ``max_retries`` not given: the default (3)."""
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, int | float) or not 0 < timeout < float("inf")
    ):
        raise ValidationError(f"timeout must be a number of seconds > 0, got {timeout!r}")
    if result_ttl is not None and (isinstance(result_ttl, bool) or not isinstance(result_ttl, int) or result_ttl < 0):
        raise ValidationError(f"result_ttl must be a whole number of seconds >= 0, got {result_ttl!r}")
    return Signature(name, payload, routing_key, priority, max_retries, description, timeout, result_ttl)


def chain(*steps: Workflow) -> Chain:
    """``chain(a, b, c)``: b runs after a succeeded, with a's result as ``parent_result``."""
    if len(steps) == 1 and _is_iterable(steps[0]):
        steps = tuple(steps[0])  # type: ignore[arg-type]
    if not steps:
        raise ValidationError("a chain needs at least one step")
    for index, step in enumerate(steps):
        _check_part(step, f"chain step {index}")
    return Chain(tuple(steps))


def group(*members: Signature, allow_failure: bool = False) -> Group:
    """``group(a, b, c)``: run in parallel (also ``group([a, b, c])``)."""
    if len(members) == 1 and _is_iterable(members[0]):
        members = tuple(members[0])  # type: ignore[arg-type]
    if not members:
        raise ValidationError("a group needs at least one member")
    for index, member in enumerate(members):
        if not isinstance(member, Signature):
            raise ValidationError(
                f"group member {index} is a {type(member).__name__}: a group's members are signatures (bananas.sig)"
            )
    return Group(tuple(members), bool(allow_failure))


def chord(
    members: Group | Iterable[Signature], callback: Signature | Chain, *, allow_failure: bool | None = None
) -> Chord:
    """``chord(group(a, b), cb)``: cb runs once after a and b ended, with ``[result_a,
    result_b]`` as ``parent_result``. A member that fails for good fails the chord and
    the callback never runs, unless ``allow_failure=True`` (its result is then ``None``)."""
    grouped = members if isinstance(members, Group) else group(*members)
    if allow_failure is not None:
        grouped = Group(grouped.members, bool(allow_failure))
    _check_part(callback, "chord callback")
    if not isinstance(callback, Signature | Chain):
        raise ValidationError("a chord's callback is a signature (bananas.sig) or a chain")
    return Chord(grouped, callback)


def _is_iterable(value: object) -> bool:
    return isinstance(value, list | tuple)


def _check_part(part: object, where: str) -> None:
    if not isinstance(part, Signature | Group | Chain | Chord):
        raise ValidationError(f"{where} is a {type(part).__name__}: expected bananas.sig, chain, group or chord")


@dataclass(frozen=True, slots=True)
class Stage:
    steps: tuple[Signature, ...]
    is_group: bool
    allow_failure: bool = False


def stages_of(workflow: Workflow) -> list[Stage]:
    """Flatten a workflow into the stages run one after another."""
    if isinstance(workflow, Signature):
        return [Stage((workflow,), False)]
    if isinstance(workflow, Group):
        return [Stage(workflow.members, True, workflow.allow_failure)]
    if isinstance(workflow, Chain):
        return [stage for step in workflow.steps for stage in stages_of(step)]
    if isinstance(workflow, Chord):
        return [*stages_of(workflow.group), *stages_of(workflow.callback)]
    raise ValidationError(f"cannot submit a {type(workflow).__name__} as a workflow (use chain, group, chord or sig)")


def new_workflow_id() -> str:
    return str(uuid.uuid4())


@dataclass(slots=True)
class WorkflowPlan:
    """Every step's job, stage by stage, with its ``workflow`` record field set."""

    id: str
    stages: list[list[Job]]
    allow_failure: list[bool]
    is_group: list[bool]

    def spec(self, created_at: str) -> bytes:
        """The ``spec`` field of the workflow hash: its shape and every step's id."""
        return codec.dumps(
            {
                "id": self.id,
                "created_at": created_at,
                "stages": [
                    {
                        "group": self.is_group[k],
                        "allow_failure": self.allow_failure[k],
                        "steps": [
                            {"id": j.id, "name": j.name, "routing_key": j.routing_key, "priority": j.priority.value}
                            for j in jobs
                        ],
                    }
                    for k, jobs in enumerate(self.stages)
                ],
            }
        )


def plan_workflow(
    workflow: Workflow, build: Callable[[Signature], Job], workflow_id: str | None = None
) -> WorkflowPlan:
    """Build (and so validate) every step's job; link each stage to the next one."""
    stages = stages_of(workflow)
    total = sum(len(s.steps) for s in stages)
    if total > MAX_STEPS:
        raise ValidationError(f"a workflow has at most {MAX_STEPS} steps, this one has {total}")
    wid = workflow_id or new_workflow_id()
    jobs: list[list[Job]] = []
    for k, stage in enumerate(stages):
        built = []
        for index, signature in enumerate(stage.steps):
            try:
                built.append(build(signature))
            except ValidationError as exc:
                raise ValidationError(f"stage {k} step {index} ({signature.name!r}): {exc}") from None
        jobs.append(built)
    for k, stage in enumerate(stages):
        following = jobs[k + 1] if k + 1 < len(jobs) else []
        for index, job in enumerate(jobs[k]):
            job.extra["workflow"] = {
                "id": wid,
                "stage": k,
                "index": index,
                "size": len(jobs[k]),
                "group": stage.is_group,
                "allow_failure": stage.allow_failure,
                "next": [{"id": n.id, "routing_key": n.routing_key, "priority": n.priority.value} for n in following],
            }
    return WorkflowPlan(wid, jobs, [s.allow_failure for s in stages], [s.is_group for s in stages])


# -- a step's view of its workflow (worker side) ------------------------------------------


@dataclass(frozen=True, slots=True)
class NextStep:
    id: str
    routing_key: str
    priority: Priority


@dataclass(frozen=True, slots=True)
class StepLink:
    """The ``workflow`` field of a step's record: where it stands and what follows."""

    workflow_id: str
    stage: int
    index: int
    size: int
    is_group: bool
    allow_failure: bool
    next: tuple[NextStep, ...]


def step_link(job: Job) -> StepLink | None:
    """The step's workflow link, or None (not a step, or a field this version cannot read)."""
    raw = job.extra.get("workflow")
    if not isinstance(raw, dict):
        return None
    try:
        wid, stage, index, size = raw["id"], raw["stage"], raw["index"], raw["size"]
        following = tuple(
            NextStep(str(n["id"]), str(n["routing_key"]), Priority.parse(n.get("priority") or "normal"))
            for n in raw.get("next") or ()
        )
    except (KeyError, TypeError, ValueError, AttributeError):
        return None
    if not isinstance(wid, str) or not all(
        isinstance(v, int) and not isinstance(v, bool) for v in (stage, index, size)
    ):
        return None
    return StepLink(wid, stage, index, size, bool(raw.get("group")), bool(raw.get("allow_failure")), following)


def workflow_result_ttl(job: Job) -> int:
    """Seconds a workflow's state is kept after it ended: the ``result_ttl`` in the step's
    ``workflow`` field (set at submit time), else a day."""
    raw = job.extra.get("workflow")
    own = raw.get("result_ttl") if isinstance(raw, dict) else None
    return own if isinstance(own, int) and not isinstance(own, bool) and own > 0 else DEFAULT_WORKFLOW_RESULT_TTL


def unique_key_of(job: Job) -> str | None:
    """The unique key a job holds (``submit_job(unique_key=)``), or None."""
    key = job.extra.get("unique_key")
    return key if isinstance(key, str) and key else None


# -- reading a workflow back (client side) ------------------------------------------------


@dataclass(frozen=True, slots=True)
class WorkflowStep:
    id: str
    name: str
    routing_key: str
    stage: int
    index: int
    #: The job's status (pending, processing, completed, failed...), ``waiting`` before
    #: its stage started, ``skipped`` if the workflow failed before it ran.
    status: str
    attempts: int = 0
    error: str | None = None


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    id: str
    #: running, completed or failed.
    state: str
    steps: list[WorkflowStep] = field(default_factory=list)
    #: The last stage's outcome (completed): a result, or a list for a final group.
    result: Any = None
    error: str | None = None
    created_at: datetime | None = None
    finished_at: datetime | None = None
    #: Id of the step that failed the workflow.
    failed_step: str | None = None

    @property
    def status(self) -> str:
        """The same as ``state``."""
        return self.state

    @property
    def done(self) -> bool:
        """True once the workflow completed or failed."""
        return self.state != RUNNING

    @property
    def stages(self) -> list[list[WorkflowStep]]:
        out: list[list[WorkflowStep]] = []
        for step in self.steps:
            while len(out) <= step.stage:
                out.append([])
            out[step.stage].append(step)
        return out

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "state": self.state,
            "created_at": self.created_at.isoformat() if self.created_at else None,
            "finished_at": self.finished_at.isoformat() if self.finished_at else None,
            "failed_step": self.failed_step,
            "error": self.error,
            "result": self.result,
            "steps": [
                {
                    "id": s.id,
                    "name": s.name,
                    "routing_key": s.routing_key,
                    "stage": s.stage,
                    "index": s.index,
                    "status": s.status,
                    "attempts": s.attempts,
                    "error": s.error,
                }
                for s in self.steps
            ],
        }


def _text(value: bytes | str | None) -> str | None:
    return value.decode() if isinstance(value, bytes) else value


def spec_step_ids(fields: Mapping[bytes | str, bytes | str]) -> list[str]:
    """Every step id named by a workflow hash's ``spec``, in stage order."""
    spec = _spec(fields)
    return [step["id"] for stage in spec.get("stages", []) for step in stage.get("steps", [])]


def _spec(fields: Mapping[bytes | str, bytes | str]) -> dict[str, Any]:
    text = {_text(k): v for k, v in fields.items()}.get("spec")
    if text is None:
        return {}
    data = codec.loads(text)
    return data if isinstance(data, dict) else {}


def workflow_info(
    workflow_id: str,
    fields: Mapping[bytes | str, bytes | str],
    records: Sequence[bytes | str | None],
    outcome: Mapping[bytes | str, bytes | str],
) -> WorkflowInfo:
    """Put together the workflow hash, its steps' records (``spec_step_ids`` order) and
    its outcome hash (``bananas:result:<workflow id>``)."""
    text = {_text(k): _text(v) for k, v in fields.items()}
    done = {_text(k): _text(v) for k, v in outcome.items()}
    spec = _spec(fields)
    state = text.get("state") or RUNNING
    failed_step = text.get("failed_step")
    steps: list[WorkflowStep] = []
    position = 0
    for k, stage in enumerate(spec.get("stages", [])):
        for index, step in enumerate(stage.get("steps", [])):
            raw = records[position] if position < len(records) else None
            position += 1
            status, attempts, error = (SKIPPED if state == FAILED else WAITING), 0, None
            if raw is not None:
                try:
                    job = Job.from_record(raw, job_id=step["id"])
                    status, attempts, error = job.status.value, job.attempts, job.error
                except Exception:  # an unreadable record still shows up, as such
                    status = "unreadable"
            steps.append(WorkflowStep(step["id"], step["name"], step["routing_key"], k, index, status, attempts, error))
    result_text = done.get("result")
    return WorkflowInfo(
        id=workflow_id,
        state=state,
        steps=steps,
        result=codec.loads(result_text) if result_text else None,
        error=done.get("error") or None,
        created_at=parse_time(spec.get("created_at")),
        finished_at=parse_time(text.get("finished_at")),
        failed_step=failed_step,
    )

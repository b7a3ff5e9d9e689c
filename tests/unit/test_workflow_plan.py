"""The pure workflow core: flattening into stages and linking them (issue 14)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

import bananas
from bananas.core.job import Job, new_job
from bananas.core.workflow import Signature, plan_workflow, stages_of, step_link
from bananas.errors import ValidationError


def build(signature: Signature) -> Job:
    return new_job(
        signature.name, signature.payload, "normal", signature.routing_key or "default", now=datetime.now(UTC)
    )


def test_stages_of_nested_workflows() -> None:
    a, b, c, d = (bananas.sig(n) for n in "abcd")
    assert [len(s.steps) for s in stages_of(bananas.chain(a, bananas.group(b, c), d))] == [1, 2, 1]
    chord = bananas.chord([a, b], bananas.chain(c, d))
    stages = stages_of(chord)
    assert [(len(s.steps), s.is_group) for s in stages] == [(2, True), (1, False), (1, False)]
    assert stages_of(bananas.chain(chord, a))[-1].steps == (a,)
    assert stages_of(bananas.chord(bananas.group(a, b), c, allow_failure=True))[0].allow_failure


def test_plan_links_every_stage_to_the_next() -> None:
    plan = plan_workflow(
        bananas.chain(bananas.sig("a", routing_key="gpu"), bananas.group(bananas.sig("b"), bananas.sig("c"))), build
    )
    first, second = plan.stages
    link = step_link(first[0])
    assert link is not None and link.workflow_id == plan.id and link.size == 1 and not link.is_group
    assert [n.id for n in link.next] == [j.id for j in second]
    last = step_link(second[1])
    assert last is not None and last.index == 1 and last.size == 2 and last.is_group and last.next == ()
    # The link survives the record's round trip (an unknown field to older readers).
    again = Job.from_record(first[0].to_record())
    assert step_link(again) == link


@pytest.mark.parametrize(
    "make",
    [
        lambda: bananas.chain(),
        lambda: bananas.group(),
        lambda: bananas.group(bananas.chain(bananas.sig("a"))),
        lambda: bananas.chain("a"),
        lambda: bananas.chord([bananas.sig("a")], bananas.group(bananas.sig("b"))),
        lambda: bananas.sig("a", timeout=0),
    ],
)
def test_bad_workflows_are_refused(make: object) -> None:
    with pytest.raises(ValidationError):
        make()  # type: ignore[operator]


def test_job_parent_result_and_local_progress() -> None:
    job = new_job("a", None, "normal", "default", now=datetime.now(UTC))
    assert job.parent_result is None
    job.extra["parent_result"] = [1, 2]
    assert job.parent_result == [1, 2]
    job.set_progress(0.5, "half")
    assert job.progress == 0.5 and job.progress is not None and job.progress.message == "half"
    assert "progress" not in job.to_dict()
    for bad in (-0.1, 1.01, float("nan"), True, "0.5"):
        with pytest.raises(ValidationError):
            job.set_progress(bad)  # type: ignore[arg-type]

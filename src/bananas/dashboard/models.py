"""Request bodies of the JSON API. Unknown fields are refused, so a typo is a 422."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from bananas.client.core import MAX_DELAY_SECONDS
from bananas.core.job import MAX_COUNTER, MAX_NAME_LENGTH

ROUTING_KEY_PATTERN = r"^[A-Za-z0-9_-]{1,64}$"
PriorityName = Literal["high", "normal", "low"]


class SubmitJob(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH, description="The job name a handler is registered for.")
    payload: Any = Field(default=None, description="Any JSON value (no NaN or Infinity).")
    priority: PriorityName | None = Field(default=None, description="Default: the route table's, else normal.")
    routing_key: str | None = Field(
        default=None,
        pattern=ROUTING_KEY_PATTERN,
        description="Worker pool to send it to. Default: the route table's, else 'default'.",
    )
    delay: float | None = Field(
        default=None, ge=0, le=MAX_DELAY_SECONDS, allow_inf_nan=False, description="Run after this many seconds."
    )
    max_retries: int | None = Field(default=None, ge=0, le=MAX_COUNTER, description="Retries after the first attempt.")
    expires_in: float | None = Field(
        default=None,
        gt=0,
        le=MAX_DELAY_SECONDS,
        allow_inf_nan=False,
        description="Seconds after which the job, if not started, never starts (status expired).",
    )


class Created(BaseModel):
    id: str


class PauseBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: PriorityName | None = Field(default=None, description="Only this priority of the routing key.")


class PurgeDead(BaseModel):
    model_config = ConfigDict(extra="forbid")

    routing_key: str | None = Field(default=None, pattern=ROUTING_KEY_PATTERN, description="Only this routing key.")
    name: str | None = Field(default=None, min_length=1, max_length=MAX_NAME_LENGTH, description="Only this job name.")


class ErrorBody(BaseModel):
    error: str
    detail: str
    errors: list[dict[str, str]] | None = None

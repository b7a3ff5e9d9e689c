"""The JSON API under ``/api/v1/`` (names fixed by issue 11; the OpenAPI schema is served
at ``/openapi.json``)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from bananas.dashboard.auth import token_matches, unauthorized
from bananas.dashboard.backend import MAX_PAGE, Backend, error_for_routing_key, parse_priority
from bananas.dashboard.models import ROUTING_KEY_PATTERN, Created, ErrorBody, PauseBody, PurgeDead, SubmitJob
from bananas.dashboard.settings import DashboardSettings

bearer = HTTPBearer(auto_error=False, description="The dashboard's API token (BANANAS_API_TOKEN).")
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def settings_of(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.dashboard_settings
    return settings


def backend_of(request: Request) -> Backend:
    backend: Backend = request.app.state.dashboard_backend
    return backend


def _check(request: Request) -> None:
    settings = settings_of(request)
    header = request.headers.get("authorization")
    if not header:
        raise unauthorized("this needs the API token: send 'Authorization: Bearer TOKEN'")
    if not token_matches(settings.token, header):
        raise unauthorized("wrong API token")


def require_read(request: Request, _credentials: Credentials) -> None:
    if not settings_of(request).public_read:
        _check(request)


def require_write(request: Request, _credentials: Credentials) -> None:
    _check(request)


Store = Annotated[Backend, Depends(backend_of)]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Rows to skip.")]
Limit = Annotated[int, Query(ge=1, le=MAX_PAGE, description="Rows to return.")]
RoutingKeyFilter = Annotated[str | None, Query(pattern=ROUTING_KEY_PATTERN, description="Only this routing key.")]
NameFilter = Annotated[str | None, Query(min_length=1, max_length=256, description="Only this job name.")]
JobId = Annotated[str, Path(min_length=1, max_length=256)]
RoutingKey = Annotated[str, Path(max_length=300)]

ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorBody, "description": "Missing or wrong API token; nothing written."},
    413: {"model": ErrorBody, "description": "Body over the size limit; nothing written."},
    422: {"model": ErrorBody, "description": "Invalid input; the body names the field and the rule."},
}
NOT_FOUND: dict[int | str, dict[str, Any]] = {404: {"model": ErrorBody, "description": "Unknown id."}}
CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": ErrorBody, "description": "Not possible in its state."}}

reads = APIRouter(prefix="/api/v1", dependencies=[Depends(require_read)], responses=ERRORS)
writes = APIRouter(prefix="/api/v1", dependencies=[Depends(require_write)], responses=ERRORS)


@writes.post("/jobs", status_code=201, response_model=Created, tags=["jobs"])
def submit_job(body: SubmitJob, store: Store) -> dict[str, str]:
    """Queue a job; the route table applies when no routing key (or priority) is given.
    With ``delay`` it is scheduled instead."""
    job_id = store.submit(
        body.name,
        body.payload,
        priority=body.priority,
        routing_key=body.routing_key,
        delay=body.delay,
        max_retries=body.max_retries,
        expires_in=body.expires_in,
    )
    return {"id": job_id}


@reads.get("/jobs/{job_id}", tags=["jobs"], responses=NOT_FOUND)
def get_job(job_id: JobId, store: Store) -> dict[str, Any]:
    """The job's record (status, attempts, error, timestamps) and ``location``: where it
    is now and why."""
    return store.job(job_id)


@reads.get("/jobs/{job_id}/result", tags=["jobs"], responses=NOT_FOUND)
def get_job_result(job_id: JobId, store: Store) -> dict[str, Any]:
    """The stored outcome; ``finished`` is false while the job has none yet."""
    return store.result(job_id)


@writes.post("/jobs/{job_id}/cancel", tags=["jobs"], responses={**NOT_FOUND, **CONFLICT})
def cancel_job(job_id: JobId, store: Store) -> dict[str, Any]:
    """Cancel a pending, scheduled or running job (409 if it already finished)."""
    return store.cancel(job_id)


@reads.get("/queues", tags=["fleet"])
def get_queues(store: Store) -> dict[str, Any]:
    """The same document as ``bananas queues --json``."""
    return store.queues()


@reads.get("/workers", tags=["fleet"])
def get_workers(store: Store, offset: Offset = 0, limit: Limit = 100, routing_key: RoutingKeyFilter = None) -> Any:
    """Live workers, a page at a time (``bananas workers --json`` rows)."""
    return store.workers(offset, limit, routing_key).to_json()


@reads.get("/running", tags=["fleet"])
def get_running(
    store: Store,
    offset: Offset = 0,
    limit: Limit = 100,
    routing_key: RoutingKeyFilter = None,
    name: NameFilter = None,
) -> Any:
    """Jobs in flight now, a page at a time (``bananas running --json`` rows)."""
    return store.running(offset, limit, routing_key, name).to_json()


def _route_action(routing_key: str, body: PauseBody | None, store: Backend, *, resume: bool) -> dict[str, Any]:
    error = error_for_routing_key(routing_key)
    if error is not None:
        raise error
    return store.pause(routing_key, parse_priority(body.priority if body else None), resume=resume)


@writes.post("/routes/{routing_key}/pause", tags=["fleet"])
def pause_route(routing_key: RoutingKey, store: Store, body: PauseBody | None = None) -> dict[str, Any]:
    """Fleet-wide: no worker starts a job of this routing key (or key and priority)."""
    return _route_action(routing_key, body, store, resume=False)


@writes.post("/routes/{routing_key}/resume", tags=["fleet"])
def resume_route(routing_key: RoutingKey, store: Store, body: PauseBody | None = None) -> dict[str, Any]:
    """Undo a pause."""
    return _route_action(routing_key, body, store, resume=True)


@reads.get("/overview", tags=["fleet"])
def get_overview(
    store: Store,
    offset: Offset = 0,
    limit: Limit = 100,
    q: Annotated[str | None, Query(max_length=64, description="Routing keys containing this text.")] = None,
    problems: Annotated[bool, Query(description="Only routing keys with a problem.")] = False,
) -> dict[str, Any]:
    """The routing map: routing keys as rows, priorities as columns, problems first."""
    return store.overview(offset, limit, q, problems)


@reads.get("/dead", tags=["dead letters"])
def list_dead(
    store: Store,
    cursor: Annotated[int, Query(ge=0, le=10_000_000, description="Position to read from (next_cursor).")] = 0,
    limit: Limit = 50,
    routing_key: RoutingKeyFilter = None,
    name: NameFilter = None,
) -> dict[str, Any]:
    """Dead letters newest first, a page at a time; follow ``next_cursor``."""
    return store.dead_page(cursor, limit, routing_key, name)


@reads.get("/dead/{job_id}", tags=["dead letters"], responses=NOT_FOUND)
def show_dead(job_id: JobId, store: Store) -> dict[str, Any]:
    """One dead letter with its error, traceback, history and payload."""
    return store.dead_entry(job_id).details()


@writes.post("/dead/purge", tags=["dead letters"])
def purge_dead(store: Store, body: PurgeDead | None = None) -> dict[str, Any]:
    """Delete dead letters (of one routing key and/or job name) with their records."""
    return store.dead_purge(body.routing_key if body else None, body.name if body else None)


@writes.post("/dead/{job_id}/retry", tags=["dead letters"], responses={**NOT_FOUND, **CONFLICT})
def retry_dead(job_id: JobId, store: Store) -> dict[str, Any]:
    """Send a dead job back to its own routing key and priority, attempts reset."""
    return store.dead_retry(job_id)


@writes.delete("/dead/{job_id}", tags=["dead letters"], responses=NOT_FOUND)
def delete_dead(job_id: JobId, store: Store) -> dict[str, Any]:
    """Delete one dead letter with its record and result."""
    return store.dead_delete(job_id)


@reads.get("/schedules", tags=["schedules and limits"])
def list_schedules(store: Store, offset: Offset = 0, limit: Limit = 100) -> Any:
    """Periodic schedules, soonest next run first."""
    return store.schedules(offset, limit).to_json()


@reads.get("/limits", tags=["schedules and limits"])
def list_limits(store: Store) -> dict[str, Any]:
    """Fleet-wide concurrency and rate limits, with what is in flight now."""
    return store.limits()

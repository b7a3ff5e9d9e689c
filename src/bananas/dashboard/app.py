"""The dashboard as one ASGI application: pages at ``/``, the JSON API under ``/api/v1/``,
``/openapi.json`` and ``/docs``, ``/metrics``, ``/healthz`` and ``/readyz``.

Mount it in your own ASGI app (FastAPI or Starlette)::

    from bananas import Client
    from bananas.dashboard import DashboardSettings, create_app

    dashboard = create_app(Client("redis://..."), DashboardSettings(token=os.environ["BANANAS_API_TOKEN"]))
    app.mount("/bananas", dashboard)

Every link, form and script of the pages is relative to the mount point.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bananas.client import Client
from bananas.dashboard import api, pages
from bananas.dashboard.backend import Backend
from bananas.dashboard.errors import ApiError, FieldError
from bananas.dashboard.metrics import QueueMetrics
from bananas.dashboard.settings import DashboardSettings
from bananas.errors import BananasError, ValidationError
from bananas.redis.connection import mask_secrets

log = logging.getLogger("bananas.dashboard")

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class BodyLimit:
    """Refuse request bodies over ``limit`` bytes with 413 before anything reads them."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in _BODY_METHODS:
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await self._refuse(scope, receive, send)
            return
        # No (or a lying) Content-Length: read the body here, up to the limit.
        chunks: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        sent = False

        async def replay() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send) -> None:
        error = ApiError(413, "too_large", f"request body is over the limit of {self.limit} bytes")
        await JSONResponse(error.body(), status_code=413)(scope, receive, send)


def create_app(client: Client | None = None, settings: DashboardSettings | None = None) -> FastAPI:
    """The dashboard app over ``client`` (default: ``Client()``, i.e. ``$REDIS_URL``).

    ``settings.token`` is the API token; with None, everything that needs it is refused.
    """
    client = client if client is not None else Client()
    settings = settings if settings is not None else DashboardSettings(token=None)
    redis_url = client.redis_url
    app = FastAPI(
        title="Bananas dashboard API",
        version="1",
        description="Jobs, queues, workers, dead letters, schedules and limits of one Bananas fleet. "
        "Every write (POST, DELETE) needs `Authorization: Bearer TOKEN`; reads too unless the "
        "dashboard runs with --public-read.",
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json",
    )
    app.state.dashboard_settings = settings
    app.state.dashboard_backend = Backend(client)
    app.state.dashboard_client = client
    queue_metrics = QueueMetrics(client)

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(exc.body(), status_code=exc.status, headers=headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc.errors())

    @app.exception_handler(StarletteHTTPException)
    async def _http(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return JSONResponse({"error": code, "detail": str(exc.detail)}, status_code=exc.status_code)

    @app.exception_handler(redis.exceptions.RedisError)
    async def _redis(_request: Request, exc: redis.exceptions.RedisError) -> JSONResponse:
        text = mask_secrets(str(exc), redis_url)
        log.warning("Redis error: %s", text)
        return JSONResponse({"error": "redis_unavailable", "detail": f"Redis error: {text}"}, status_code=503)

    @app.exception_handler(BananasError)
    async def _bananas(_request: Request, exc: BananasError) -> JSONResponse:
        # Validation is mapped to its field where the request is read; what reaches here
        # is a state the request cannot change (an unreadable record, a job that kept changing).
        text = mask_secrets(str(exc), redis_url)
        if isinstance(exc, ValidationError):
            return JSONResponse(ApiError(422, "invalid", text, [FieldError("body", "value", text)]).body(), 422)
        return JSONResponse({"error": "conflict", "detail": text}, status_code=409)

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        # A bug: say so in JSON (never a traceback or a secret on the wire); logged masked.
        log.error("unexpected error: %s", mask_secrets(f"{type(exc).__name__}: {exc}", redis_url))
        return JSONResponse({"error": "internal", "detail": "unexpected server error"}, status_code=500)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """The process is alive (it does not touch Redis)."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Redis is not reachable"}})
    def readyz() -> Response:
        """Ready when Redis answers a PING; 503 with the reason when it does not."""
        try:
            app.state.dashboard_backend.ping()
        except redis.exceptions.RedisError as exc:
            reason = f"Redis is not reachable: {mask_secrets(str(exc), redis_url)}"
            return JSONResponse({"status": "unavailable", "reason": reason}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/metrics", tags=["health"], dependencies=[Depends(api.require_read)], include_in_schema=True)
    def metrics() -> Response:
        """The fleet's queue gauges in Prometheus' text format (as ``bananas exporter``)."""
        body, content_type = queue_metrics.render()
        return Response(body, media_type=content_type)

    app.include_router(api.reads)
    app.include_router(api.writes)
    app.include_router(pages.router)
    pages.mount_static(app)
    pages.mount_docs(app)
    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def _validation_response(errors: Any) -> JSONResponse:
    """422 naming each field and the rule it breaks; a body that is not JSON is a 400."""
    found: list[FieldError] = []
    status = 422
    for error in errors:
        location = [str(part) for part in error.get("loc", ()) if part not in ("body", "query", "path")]
        rule = str(error.get("type", "invalid"))
        if rule == "json_invalid":
            status = 400
        name = ".".join(location) or "body"
        found.append(FieldError(name, rule, str(error.get("msg", "invalid"))))
    detail = "; ".join(f"{e.field}: {e.message}" for e in found) or "invalid request"
    code = "bad_request" if status == 400 else "invalid"
    return JSONResponse(ApiError(status, code, detail, found).body(), status_code=status)

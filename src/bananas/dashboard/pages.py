"""The HTML pages: thin shells rendered with Jinja2; the data comes from the JSON API,
fetched by a little plain JavaScript shipped in the package (no build step, no CDN).

A page holds no data of its own, so it needs no token to load: the script sends the
token (kept in the browser's local storage, taken from the ``#token=`` in the URL the
command prints) with every API call. Without it, reads work only with ``--public-read``
and the action buttons are refused.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from bananas.dashboard.settings import DashboardSettings

_HERE = files("bananas.dashboard")
templates = Jinja2Templates(directory=str(_HERE / "templates"))
router = APIRouter(include_in_schema=False)

#: (path, page id, title) of the navigation bar, in order.
NAV = [
    ("/", "overview", "Overview"),
    ("/workers", "workers", "Workers"),
    ("/running", "running", "Running"),
    ("/jobs", "job", "Job"),
    ("/dead", "dead", "Dead letters"),
    ("/schedules", "schedules", "Schedules"),
    ("/limits", "limits", "Limits"),
]


def _render(request: Request, page: str, **context: Any) -> HTMLResponse:
    settings: DashboardSettings = request.app.state.dashboard_settings
    base = request.scope.get("root_path", "").rstrip("/")
    title = next(t for _, p, t in NAV if p == page)
    return templates.TemplateResponse(
        request,
        f"{page}.html",
        {
            "base": base,
            "page": page,
            "title": title,
            "nav": NAV,
            "public_read": settings.public_read,
            "refresh_ms": settings.refresh_ms,
            **context,
        },
    )


@router.get("/", response_class=HTMLResponse)
def overview(request: Request) -> HTMLResponse:
    return _render(request, "overview")


@router.get("/workers", response_class=HTMLResponse)
def workers(request: Request) -> HTMLResponse:
    return _render(request, "workers")


@router.get("/running", response_class=HTMLResponse)
def running(request: Request) -> HTMLResponse:
    return _render(request, "running")


@router.get("/jobs", response_class=HTMLResponse)
def job_search(request: Request) -> HTMLResponse:
    return _render(request, "job", job_id="")


@router.get("/jobs/{job_id}", response_class=HTMLResponse)
def job_detail(request: Request, job_id: str) -> HTMLResponse:
    return _render(request, "job", job_id=job_id)


@router.get("/dead", response_class=HTMLResponse)
def dead(request: Request) -> HTMLResponse:
    return _render(request, "dead")


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request) -> HTMLResponse:
    return _render(request, "schedules")


@router.get("/limits", response_class=HTMLResponse)
def limits(request: Request) -> HTMLResponse:
    return _render(request, "limits")


def mount_static(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="dashboard-static")


def mount_docs(app: FastAPI) -> None:
    """Interactive API docs at ``/docs`` with Swagger UI served from the package
    (``swagger-ui-bundle-v2``), so the docs work on a machine with no internet either."""
    import swagger_ui_bundle

    app.mount("/docs-assets", StaticFiles(directory=swagger_ui_bundle.swagger_ui_path), name="dashboard-docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs(request: Request) -> HTMLResponse:
        base = request.scope.get("root_path", "").rstrip("/")
        return get_swagger_ui_html(
            openapi_url=f"{base}/openapi.json",
            title="Bananas dashboard API",
            swagger_js_url=f"{base}/docs-assets/swagger-ui-bundle.js",
            swagger_css_url=f"{base}/docs-assets/swagger-ui.css",
            swagger_favicon_url=f"{base}/docs-assets/favicon-32x32.png",
        )

"""Schemathesis against the served OpenAPI schema: generated requests (valid and invalid)
to every operation never get a 500. Bounded: a few examples per operation.

The operations are driven with Hypothesis directly (``as_strategy``), one test per
operation, against the dashboard each test serves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import schemathesis
from dashboard_support import TOKEN, Served
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bananas import Client, Router
from bananas.dashboard import DashboardSettings, create_app

SETTINGS = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck), database=None)


def _operations() -> list[str]:
    """Operation labels ("POST /api/v1/jobs"), from the app's own schema (no server needed)."""
    app = create_app(Client("redis://127.0.0.1:1", router=Router()), DashboardSettings(token=TOKEN))
    schema = app.openapi()
    return [f"{method.upper()} {path}" for path, methods in schema["paths"].items() for method in methods]


@pytest.mark.parametrize("label", _operations())
def test_no_operation_answers_500(dash: Served, label: str) -> None:
    schema = schemathesis.openapi.from_url(f"{dash.url}/openapi.json")
    operation = schema.find_operation_by_label(label)
    assert operation is not None, label
    seen: list[int] = []

    @given(case=operation.as_strategy(), with_token=st.booleans())
    @SETTINGS
    def run(case: Any, with_token: bool) -> None:
        headers = {"Authorization": f"Bearer {TOKEN}"} if with_token else {}
        response = case.call(headers=headers)
        seen.append(response.status_code)
        assert response.status_code < 500, (label, response.status_code, response.text[:500])
        if not with_token and label.split()[1] not in ("/healthz", "/readyz", "/openapi.json"):
            assert response.status_code == 401, (label, response.status_code)

    run()
    assert seen


def test_the_schema_is_valid_openapi(dash: Served) -> None:
    schema = httpx.get(f"{dash.url}/openapi.json").json()
    assert schema["openapi"].startswith("3.")
    assert "HTTPBearer" in schema["components"]["securitySchemes"]

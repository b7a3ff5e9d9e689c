"""What the API answers when a request cannot be served; each maps to one status code.

Every error body is JSON: ``{"error": CODE, "detail": TEXT}``, plus ``errors`` (a list of
``{"field", "rule", "message"}``) when input was invalid. Nothing is written on any error.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class FieldError:
    field: str
    rule: str
    message: str

    def to_json(self) -> dict[str, str]:
        return {"field": self.field, "rule": self.rule, "message": self.message}


@dataclass
class ApiError(Exception):
    status: int
    code: str
    detail: str
    errors: list[FieldError] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        out: dict[str, Any] = {"error": self.code, "detail": self.detail, **self.extra}
        if self.errors:
            out["errors"] = [e.to_json() for e in self.errors]
        return out


def invalid(field_name: str, rule: str, message: str, status: int = 422) -> ApiError:
    """Input that breaks a rule; the body names the field and the rule."""
    return ApiError(status, "invalid", f"{field_name}: {message}", [FieldError(field_name, rule, message)])


def not_found(detail: str) -> ApiError:
    return ApiError(404, "not_found", detail)


def conflict(detail: str, **extra: Any) -> ApiError:
    return ApiError(409, "conflict", detail, extra=extra)

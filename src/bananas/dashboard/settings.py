"""The dashboard's settings: a frozen object the CLI (or your code) builds and passes in."""

from __future__ import annotations

from dataclasses import dataclass

#: Largest request body accepted (413 above it), in bytes.
DEFAULT_MAX_BODY_BYTES = 1024 * 1024
#: How often the pages refresh themselves, in milliseconds (the issue asks for <= 2 s).
DEFAULT_REFRESH_MS = 1000


@dataclass(frozen=True, slots=True)
class DashboardSettings:
    #: The API token; None means every request that needs it is refused.
    token: str | None
    #: Reads (GET) without the token.
    public_read: bool = False
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    refresh_ms: int = DEFAULT_REFRESH_MS

    def __post_init__(self) -> None:
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be at least 1, got {self.max_body_bytes}")
        if self.refresh_ms < 100:
            raise ValueError(f"refresh_ms must be at least 100, got {self.refresh_ms}")

    def __repr__(self) -> str:
        # Never print the token.
        return (
            f"DashboardSettings(token={'***' if self.token else None}, public_read={self.public_read}, "
            f"max_body_bytes={self.max_body_bytes}, refresh_ms={self.refresh_ms})"
        )

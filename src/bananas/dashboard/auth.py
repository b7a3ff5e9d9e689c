"""Bearer-token auth: every write needs the token; reads too unless public reads are on.

The token is compared in constant time (``hmac.compare_digest``), so timing tells an
attacker nothing about how much of a guess was right.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets

from bananas.dashboard.errors import ApiError

#: Environment variable holding the API token.
TOKEN_ENV = "BANANAS_API_TOKEN"


def new_token() -> str:
    return secrets.token_urlsafe(24)


def token_matches(expected: str | None, authorization: str | None) -> bool:
    """Whether an ``Authorization`` header carries ``Bearer <expected>``."""
    if not expected or not authorization:
        return False
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer":
        return False
    return hmac.compare_digest(given.strip().encode(), expected.encode())


def unauthorized(detail: str) -> ApiError:
    return ApiError(401, "unauthorized", detail, extra={})


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False

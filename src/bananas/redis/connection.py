"""Connecting to Redis: URL handling, password masking, clients with reconnect backoff."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff
from redis.retry import Retry

from bananas.errors import ConfigurationError

DEFAULT_REDIS_URL = "redis://localhost:6379"

#: userinfo of any URL scheme: a mistyped scheme (http://, redis+sentinel://) must not leak.
_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^:@/\s]*):([^@/\s]*)@")
#: redis-py also takes the password as a query parameter (``?password=...``).
_QUERY_PASSWORD = re.compile(r"([?&]password=)[^&#\s]*", re.IGNORECASE)


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``, for logs, errors and CLI output."""
    masked = _PASSWORD.sub(lambda m: f"{m.group(1)}://{m.group(2)}:***@", url)
    return _QUERY_PASSWORD.sub(lambda m: f"{m.group(1)}***", masked)


def mask_secrets(text: str, url: str | None = None) -> str:
    """Remove a URL's password from arbitrary text (e.g. an exception message)."""
    text = mask_url(text)
    if url:
        for password in sorted(_passwords(url), key=len, reverse=True):
            text = text.replace(password, "***")
    return text


def _passwords(url: str) -> set[str]:
    """The password of ``url`` in every form it may be printed in (raw, percent-decoded)."""
    parts = urlsplit(url)
    found = {value for key, value in parse_qsl(parts.query) if key.lower() == "password"}
    if parts.password:
        found |= {parts.password, unquote(parts.password)}
    return {p for p in found if p}


def validate_url(url: str, setting: str = "REDIS_URL") -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            setting,
            f"{mask_url(url)!r} is not a Redis URL (expected redis://, rediss:// or unix://)",
        )
    return url


_NOT_RETRIED = (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError)


def _retryable(error: Exception) -> bool:
    # A wrong password or a missing ACL permission will not mend itself: say so at once.
    return not isinstance(error, _NOT_RETRIED)


class _SyncRetry(Retry):
    def call_with_retry(self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False) -> Any:
        return super().call_with_retry(do, fail, is_retryable or _retryable, with_failure_count)


class _AsyncRetry(AsyncRetry):
    async def call_with_retry(
        self, do: Any, fail: Any, is_retryable: Any = None, with_failure_count: bool = False
    ) -> Any:
        return await super().call_with_retry(do, fail, is_retryable or _retryable, with_failure_count)


def _options(asynchronous: bool = False) -> dict[str, Any]:
    # Reconnect with jittered exponential backoff instead of failing on the first dropped
    # connection; every Bananas write is safe to repeat (see the scripts).
    backoff = ExponentialWithJitterBackoff(base=0.05, cap=2.0)
    return {
        "retry": _AsyncRetry(backoff, 5) if asynchronous else _SyncRetry(backoff, 5),
        "retry_on_timeout": True,
        "health_check_interval": 30,
        "socket_connect_timeout": 5,
        "socket_keepalive": True,
        # Ids from foreign clients need not be UTF-8: decode and encode them losslessly.
        "encoding_errors": "surrogateescape",
    }


#: Connections per client. Callers beyond this wait for a free connection (a blocking
#: pool) instead of failing, so thousands of concurrent calls queue up politely.
MAX_CONNECTIONS = 64


def sync_client(url: str, **overrides: Any) -> redis.Redis:
    validate_url(url)
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=20, **{**_options(), **overrides}
    )
    return redis.Redis.from_pool(pool)


def async_client(url: str, **overrides: Any) -> aioredis.Redis:
    validate_url(url)
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=20, **{**_options(asynchronous=True), **overrides}
    )
    return aioredis.Redis.from_pool(pool)

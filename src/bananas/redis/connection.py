"""Connecting to Redis: URL handling, password masking, clients with reconnect backoff.

The one place that turns a ``REDIS_URL`` into a client. Besides redis-py's own schemes
(``redis://``, ``rediss://``, ``unix://``) it reads Bananas' Sentinel scheme::

    redis+sentinel://[user:pass@]host:port[,host:port...]/SERVICE_NAME[/db]
    rediss+sentinel://...                       (TLS to the sentinels and the servers)

The user and password are those of the Redis servers; sentinels that require their own
credentials take ``?sentinel_username=...&sentinel_password=...``. The client asks the
sentinels for the master on every new connection, so after a failover the next
reconnect lands on the new master.

And its Redis Cluster scheme::

    redis+cluster://[user:pass@]host:port[,host:port...][/0]
    rediss+cluster://...                        (TLS; ?ssl_cert_reqs=...&ssl_ca_certs=...)

The hosts are startup nodes (any few of the cluster's nodes: the client asks them for
the slot map and follows it, and re-reads it when a slot moves or a master fails over).
A cluster has only database 0. Such a URL selects the cluster key layout
(``keys.layout_for_url``, docs/adr/0001-cluster-key-layout.md); the client built for it is
a ``redis.cluster.RedisCluster`` (``redis.asyncio.cluster.RedisCluster``), typed as the
plain client it stands in for: code that must tell them apart asks ``is_cluster_client``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, cast
from urllib.parse import parse_qsl, unquote, urlsplit

import redis
import redis.asyncio as aioredis
import redis.asyncio.cluster as aiocluster
import redis.asyncio.sentinel as aiosentinel
import redis.cluster
import redis.sentinel
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialWithJitterBackoff, NoBackoff
from redis.retry import Retry

from bananas.errors import ConfigurationError

DEFAULT_REDIS_URL = "redis://localhost:6379"

#: userinfo of any URL scheme: a mistyped scheme (http://, redis+sentinel://) must not leak.
_PASSWORD = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^:@/\s]*):([^@\s]*?)@")
#: redis-py also takes the password as a query parameter (``?password=...``).
#: ... and a Sentinel URL its sentinels' password as ``?sentinel_password=...``.
_QUERY_PASSWORD = re.compile(r"([?&](?:sentinel_)?password=)[^&#\s]*", re.IGNORECASE)

SENTINEL_SCHEMES = ("redis+sentinel", "rediss+sentinel")
CLUSTER_SCHEMES = ("redis+cluster", "rediss+cluster")
DEFAULT_SENTINEL_PORT = 26379
DEFAULT_CLUSTER_PORT = 6379
#: Query parameters a Sentinel URL may carry.
_SENTINEL_QUERY = frozenset({"sentinel_username", "sentinel_password", "ssl_cert_reqs", "ssl_ca_certs"})
_CERT_REQS = ("none", "optional", "required")
#: Query parameters a Cluster URL may carry.
_CLUSTER_QUERY = frozenset({"ssl_cert_reqs", "ssl_ca_certs"})


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
    found = {value for key, value in parse_qsl(parts.query) if key.lower() in ("password", "sentinel_password")}
    if parts.password:
        found |= {parts.password, unquote(parts.password)}
    return {p for p in found if p}


@dataclass(frozen=True, slots=True)
class SentinelURL:
    """A parsed ``redis+sentinel://`` URL."""

    sentinels: tuple[tuple[str, int], ...]
    service_name: str
    db: int = 0
    username: str | None = None
    password: str | None = None
    sentinel_username: str | None = None
    sentinel_password: str | None = None
    tls: bool = False
    ssl_cert_reqs: str | None = None
    ssl_ca_certs: str | None = None


def _scheme(url: str) -> str:
    return url.partition("://")[0].lower() if "://" in url else ""


@dataclass(frozen=True, slots=True)
class _MultiHostParts:
    """What ``redis+sentinel://`` and ``redis+cluster://`` URLs share, read and checked."""

    username: str | None
    password: str | None
    hostlist: str
    path: str
    options: dict[str, str]
    tls: bool
    ssl_cert_reqs: str | None
    ssl_ca_certs: str | None


def _split_multi_host_url(
    url: str, kind: str, schemes: tuple[str, str], known_options: frozenset[str], bad: Any
) -> _MultiHostParts:
    """``scheme://[user:pass@]host:port[,host:port...][/path][?options]``: the credentials,
    the host list, the path and the TLS options, each checked (``bad(reason)`` builds the
    one-line error). ``kind`` names the URL in errors: ``Sentinel``, ``Cluster``."""
    scheme = _scheme(url)
    plain, secure = schemes  # ("redis+...", "rediss+...")
    if scheme not in schemes:
        raise bad(f"not a {plain}:// URL")
    rest = url.partition("://")[2]
    rest, _, fragment = rest.partition("#")
    if fragment:
        raise bad(f"a {kind} URL takes no #fragment")
    rest, _, query = rest.partition("?")
    netloc, _, path = rest.partition("/")
    userinfo, at, hostlist = netloc.rpartition("@")
    username = password = None
    if at:
        user, colon, secret = userinfo.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if colon else None
    options: dict[str, str] = {}
    for key, value in parse_qsl(query, keep_blank_values=True, strict_parsing=False):
        if key not in known_options:
            raise bad(f"unknown option {key!r} (known: {', '.join(sorted(known_options))})")
        options[key] = value
    cert_reqs = options.get("ssl_cert_reqs")
    if cert_reqs is not None and cert_reqs not in _CERT_REQS:
        raise bad(f"ssl_cert_reqs must be one of {', '.join(_CERT_REQS)}, not {cert_reqs!r}")
    tls = scheme == secure
    if not tls and (cert_reqs is not None or "ssl_ca_certs" in options):
        raise bad(f"ssl_cert_reqs and ssl_ca_certs need {secure}://")
    return _MultiHostParts(
        username, password, hostlist, path, options, tls, cert_reqs, options.get("ssl_ca_certs") or None
    )


def parse_sentinel_url(url: str, setting: str = "REDIS_URL") -> SentinelURL:
    """Parse ``redis+sentinel://[user:pass@]host:port[,host:port...]/SERVICE_NAME[/db]``."""

    def bad(reason: str) -> ConfigurationError:
        return ConfigurationError(setting, f"{mask_url(url)!r}: {reason}")

    parts = _split_multi_host_url(url, "Sentinel", SENTINEL_SCHEMES, _SENTINEL_QUERY, bad)
    sentinels = tuple(_host_port(item, bad) for item in parts.hostlist.split(","))
    segments = parts.path.split("/") if parts.path else []
    if segments and segments[-1] == "":
        segments.pop()  # a trailing slash
    if not segments or not segments[0]:
        raise bad("the service name is missing (expected .../SERVICE_NAME[/db])")
    if len(segments) > 2:
        raise bad("too many path segments (expected .../SERVICE_NAME[/db])")
    db = 0
    if len(segments) == 2:
        if not segments[1].isdigit():
            raise bad(f"the database must be a number, not {segments[1]!r}")
        db = int(segments[1])
    return SentinelURL(
        sentinels=sentinels,
        service_name=unquote(segments[0]),
        db=db,
        username=parts.username,
        password=parts.password,
        sentinel_username=parts.options.get("sentinel_username") or None,
        sentinel_password=parts.options.get("sentinel_password") or None,
        tls=parts.tls,
        ssl_cert_reqs=parts.ssl_cert_reqs,
        ssl_ca_certs=parts.ssl_ca_certs,
    )


def _host_port(
    item: str, bad: Any, what: str = "sentinel", default_port: int = DEFAULT_SENTINEL_PORT
) -> tuple[str, int]:
    item = item.strip()
    if item.startswith("["):  # [IPv6]:port
        host, _, tail = item[1:].partition("]")
        port_text = tail[1:] if tail.startswith(":") else ""
        if tail and not tail.startswith(":"):
            raise bad(f"cannot read the {what} address {item!r}")
    else:
        host, _, port_text = item.partition(":")
    if not host:
        raise bad(f"a {what} address is empty or has no host ({item!r}); expected host:port[,host:port...]")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise bad(f"the {what} port {port_text!r} is not a port number")
    return host, int(port_text)


@dataclass(frozen=True, slots=True)
class ClusterURL:
    """A parsed ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    username: str | None = None
    password: str | None = None
    tls: bool = False
    ssl_cert_reqs: str | None = None
    ssl_ca_certs: str | None = None


def is_cluster_url(url: str) -> bool:
    """True for ``redis+cluster://`` and ``rediss+cluster://`` (the cluster key layout)."""
    return _scheme(url) in CLUSTER_SCHEMES


def parse_cluster_url(url: str, setting: str = "REDIS_URL") -> ClusterURL:
    """Parse ``redis+cluster://[user:pass@]host:port[,host:port...][/0]``."""

    def bad(reason: str) -> ConfigurationError:
        return ConfigurationError(setting, f"{mask_url(url)!r}: {reason}")

    parts = _split_multi_host_url(url, "Cluster", CLUSTER_SCHEMES, _CLUSTER_QUERY, bad)
    if not parts.hostlist.strip():
        raise bad("no node address (expected host:port[,host:port...])")
    nodes = tuple(_host_port(item, bad, "node", DEFAULT_CLUSTER_PORT) for item in parts.hostlist.split(","))
    path = parts.path.rstrip("/")
    if path and path != "0":
        raise bad(f"a Redis Cluster has only database 0, not {path!r}")
    return ClusterURL(
        nodes=nodes,
        username=parts.username,
        password=parts.password,
        tls=parts.tls,
        ssl_cert_reqs=parts.ssl_cert_reqs,
        ssl_ca_certs=parts.ssl_ca_certs,
    )


def validate_url(url: str, setting: str = "REDIS_URL") -> str:
    scheme = _scheme(url)
    if scheme in CLUSTER_SCHEMES:
        parse_cluster_url(url, setting)
        return url
    if scheme in SENTINEL_SCHEMES:
        parse_sentinel_url(url, setting)
        return url
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss", "unix"):
        raise ConfigurationError(
            setting,
            f"{mask_url(url)!r} is not a Redis URL"
            " (expected redis://, rediss://, unix://, redis+sentinel:// or redis+cluster://)",
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


class _BlockingSentinelPool(redis.sentinel.SentinelConnectionPool, redis.BlockingConnectionPool):
    """A Sentinel pool that makes callers wait for a free connection, as the plain one does."""


class _AsyncBlockingSentinelPool(aiosentinel.SentinelConnectionPool, aioredis.BlockingConnectionPool):
    """The asyncio form of ``_BlockingSentinelPool``."""


def _no_master(service: str, sentinels: Any) -> redis.sentinel.MasterNotFoundError:
    addresses = (s.connection_pool.connection_kwargs for s in sentinels)
    where = ",".join(f"{a.get('host')}:{a.get('port')}" for a in addresses)
    return redis.sentinel.MasterNotFoundError(f"no sentinel at {where} names a master for service {service!r}")


class _Sentinel(redis.sentinel.Sentinel):
    """redis-py's Sentinel with a one-line error (its own lists every client's repr)."""

    def discover_master(self, service_name: str) -> Any:
        try:
            return super().discover_master(service_name)  # type: ignore[no-untyped-call]
        except redis.sentinel.MasterNotFoundError:
            raise _no_master(service_name, self.sentinels) from None


class _AsyncSentinel(aiosentinel.Sentinel):
    async def discover_master(self, service_name: str) -> Any:
        try:
            return await super().discover_master(service_name)
        except aiosentinel.MasterNotFoundError:
            raise aiosentinel.MasterNotFoundError(str(_no_master(service_name, self.sentinels))) from None


def _sentinel_kwargs(target: SentinelURL) -> tuple[dict[str, Any], dict[str, Any]]:
    """Keyword arguments for the sentinels' connections and for the servers' connections."""
    tls: dict[str, Any] = {}
    if target.tls:
        tls["ssl"] = True
        if target.ssl_cert_reqs is not None:
            tls["ssl_cert_reqs"] = target.ssl_cert_reqs
        if target.ssl_ca_certs is not None:
            tls["ssl_ca_certs"] = target.ssl_ca_certs
    sentinel = {
        "socket_connect_timeout": 2,
        "socket_timeout": 2,
        "username": target.sentinel_username,
        "password": target.sentinel_password,
        "encoding_errors": "surrogateescape",
        **tls,
    }
    server = {
        "db": target.db,
        "username": target.username,
        "password": target.password,
        **tls,
    }
    return sentinel, server


def _cluster_kwargs(target: ClusterURL) -> dict[str, Any]:
    kwargs: dict[str, Any] = {"username": target.username, "password": target.password}
    if target.tls:
        kwargs["ssl"] = True
        if target.ssl_cert_reqs is not None:
            kwargs["ssl_cert_reqs"] = target.ssl_cert_reqs
        if target.ssl_ca_certs is not None:
            kwargs["ssl_ca_certs"] = target.ssl_ca_certs
    return kwargs


def is_cluster_client(client: object) -> bool:
    """True for a client built from a ``redis+cluster://`` URL (either kind)."""
    return isinstance(client, redis.cluster.RedisCluster | aiocluster.RedisCluster)


#: Connections per client and cluster node; the cluster's own pools do not wait for a
#: free connection, they fail: keep room for the clients' bursts.
CLUSTER_MAX_CONNECTIONS = 4 * MAX_CONNECTIONS


def _sync_cluster(url: str, overrides: dict[str, Any]) -> redis.Redis:
    target = parse_cluster_url(url)
    options = {k: v for k, v in _options().items() if k not in ("retry", "retry_on_timeout")}
    client = redis.cluster.RedisCluster(
        startup_nodes=[redis.cluster.ClusterNode(host, port) for host, port in target.nodes],  # type: ignore[no-untyped-call]
        # The cluster client retries a command on a fresh slot map after a connection
        # error or a failover, with the same backoff as the plain clients.
        retry=Retry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), 5),
        max_connections=CLUSTER_MAX_CONNECTIONS,
        **{**options, **_cluster_kwargs(target), **overrides},
    )
    # Typed as the plain client it stands in for (the same commands); see the docstring.
    return cast(redis.Redis, client)


def _async_cluster(url: str, overrides: dict[str, Any]) -> aioredis.Redis:
    target = parse_cluster_url(url)
    options = {k: v for k, v in _options(asynchronous=True).items() if k not in ("retry", "retry_on_timeout")}
    client = aiocluster.RedisCluster(
        startup_nodes=[aiocluster.ClusterNode(host, port) for host, port in target.nodes],
        retry=AsyncRetry(ExponentialWithJitterBackoff(base=0.05, cap=2.0), 5),
        max_connections=CLUSTER_MAX_CONNECTIONS,
        **{**options, **_cluster_kwargs(target), **overrides},
    )
    return cast(aioredis.Redis, client)


def sync_client(url: str, **overrides: Any) -> redis.Redis:
    """A client for ``url``; for a cluster URL a ``redis.cluster.RedisCluster``."""
    validate_url(url)
    if _scheme(url) in CLUSTER_SCHEMES:
        return _sync_cluster(url, overrides)
    if _scheme(url) in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)
        sentinel_kwargs, server_kwargs = _sentinel_kwargs(target)
        # One question per sentinel per attempt: the next sentinel is the retry.
        sentinel_kwargs["retry"] = Retry(NoBackoff(), 0)
        manager = _Sentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        client: redis.Redis = manager.master_for(  # type: ignore[no-untyped-call]
            target.service_name,
            connection_pool_class=_BlockingSentinelPool,
            max_connections=MAX_CONNECTIONS,
            timeout=20,
            **{**_options(), **server_kwargs, **overrides},
        )
        return client
    pool = redis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=20, **{**_options(), **overrides}
    )
    return redis.Redis.from_pool(pool)


def async_client(url: str, **overrides: Any) -> aioredis.Redis:
    """A client for ``url``; for a cluster URL a ``redis.asyncio.cluster.RedisCluster``."""
    validate_url(url)
    if _scheme(url) in CLUSTER_SCHEMES:
        return _async_cluster(url, overrides)
    if _scheme(url) in SENTINEL_SCHEMES:
        target = parse_sentinel_url(url)
        sentinel_kwargs, server_kwargs = _sentinel_kwargs(target)
        sentinel_kwargs["retry"] = AsyncRetry(NoBackoff(), 0)
        manager = _AsyncSentinel(list(target.sentinels), sentinel_kwargs=sentinel_kwargs)  # type: ignore[no-untyped-call]
        aclient: aioredis.Redis = manager.master_for(
            target.service_name,
            connection_pool_class=_AsyncBlockingSentinelPool,
            max_connections=MAX_CONNECTIONS,
            timeout=20,
            **{**_options(asynchronous=True), **server_kwargs, **overrides},
        )
        return aclient
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=MAX_CONNECTIONS, timeout=20, **{**_options(asynchronous=True), **overrides}
    )
    return aioredis.Redis.from_pool(pool)

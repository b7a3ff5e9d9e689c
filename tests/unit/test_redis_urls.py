"""REDIS_URL forms: redis+sentinel:// and redis+cluster:// parsed in one place, passwords masked."""

from __future__ import annotations

import re

import pytest

from bananas import ConfigurationError, WorkerSettings
from bananas.redis.connection import (
    is_cluster_url,
    mask_secrets,
    mask_url,
    parse_cluster_url,
    parse_sentinel_url,
    validate_url,
)
from bananas.redis.runner import parse_wait_replicas, wait_replicas_from


def test_sentinel_url_full():
    url = "redis+sentinel://app:p%40ss@10.0.0.1:26379,10.0.0.2:26380,[::1]:26381/mymaster/3?sentinel_password=sp"
    target = parse_sentinel_url(url)
    assert target.sentinels == (("10.0.0.1", 26379), ("10.0.0.2", 26380), ("::1", 26381))
    assert target.service_name == "mymaster"
    assert target.db == 3
    assert (target.username, target.password) == ("app", "p@ss")
    assert target.sentinel_password == "sp"
    assert target.tls is False


def test_sentinel_url_minimal_and_defaults():
    target = parse_sentinel_url("redis+sentinel://s1,s2:1234/svc")
    assert target.sentinels == (("s1", 26379), ("s2", 1234))
    assert (target.service_name, target.db, target.username, target.password) == ("svc", 0, None, None)
    assert parse_sentinel_url("redis+sentinel://:only-pw@s1/svc/").password == "only-pw"
    tls = parse_sentinel_url("rediss+sentinel://s1/svc?ssl_cert_reqs=none")
    assert tls.tls and tls.ssl_cert_reqs == "none"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis+sentinel://s1:26379", "service name is missing"),
        ("redis+sentinel://s1:26379/", "service name is missing"),
        ("redis+sentinel://s1:26379/svc/x", "database must be a number"),
        ("redis+sentinel://s1:26379/svc/0/extra", "too many path segments"),
        ("redis+sentinel://s1:99999/svc", "not a port number"),
        ("redis+sentinel://s1:26379,,s2/svc", "sentinel address is empty"),
        ("redis+sentinel://s1/svc?timeout=3", "unknown option 'timeout'"),
        ("redis+sentinel://s1/svc?ssl_cert_reqs=none", "need rediss+sentinel"),
        ("rediss+sentinel://s1/svc?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of"),
    ],
)
def test_bad_sentinel_urls(url: str, fragment: str):
    with pytest.raises(ConfigurationError, match=re.escape(fragment)) as info:
        validate_url(url)
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("REDIS_URL: ")


def test_cluster_url_full_and_defaults():
    target = parse_cluster_url("rediss+cluster://app:p%40ss@10.0.0.1:7000,10.0.0.2,[::1]:7002/0?ssl_cert_reqs=none")
    assert target.nodes == (("10.0.0.1", 7000), ("10.0.0.2", 6379), ("::1", 7002))
    assert (target.username, target.password, target.tls, target.ssl_cert_reqs) == ("app", "p@ss", True, "none")
    plain = parse_cluster_url("redis+cluster://a:7000/")
    assert (plain.nodes, plain.username, plain.password, plain.tls) == ((("a", 7000),), None, None, False)
    assert is_cluster_url("redis+cluster://a:7000") and is_cluster_url("REDISS+CLUSTER://a")
    assert not is_cluster_url("redis://a:7000") and not is_cluster_url("redis+sentinel://a/svc")
    assert validate_url("redis+cluster://a:7000,b:7001") == "redis+cluster://a:7000,b:7001"


@pytest.mark.parametrize(
    ("url", "fragment"),
    [
        ("redis+cluster://", "no node address"),
        ("redis+cluster://u:pw@", "no node address"),
        ("redis+cluster://a:7000/3", "only database 0, not '3'"),
        ("redis+cluster://a:70000", "node port '70000' is not a port number"),
        ("redis+cluster://a:x", "node port 'x' is not a port number"),
        ("redis+cluster://a:1,,b:2", "node address is empty"),
        ("redis+cluster://a:1?timeout=3", "unknown option 'timeout'"),
        ("redis+cluster://a:1?ssl_cert_reqs=none", "need rediss+cluster"),
        ("rediss+cluster://a:1?ssl_cert_reqs=maybe", "ssl_cert_reqs must be one of"),
        ("redis+cluster://a:1#x", "no #fragment"),
    ],
)
def test_bad_cluster_urls(url: str, fragment: str):
    with pytest.raises(ConfigurationError, match=re.escape(fragment)) as info:
        validate_url(url, "--redis-url")
    assert "\n" not in str(info.value)
    assert str(info.value).startswith("--redis-url: ")


def test_cluster_url_passwords_are_masked():
    with pytest.raises(ConfigurationError) as info:
        validate_url("rediss+cluster://u:secret1@a:7000/2")
    assert "secret1" not in str(info.value)
    with pytest.raises(ConfigurationError, match=r"REDIS_URL: .*only database 0"):
        WorkerSettings.from_env({"REDIS_URL": "redis+cluster://u:secret1@a:7000/1"})
    assert WorkerSettings.from_env({"REDIS_URL": "redis+cluster://a:7000"}).redis_url == "redis+cluster://a:7000"


def test_sentinel_passwords_are_masked():
    url = "redis+sentinel://app:secret1@s1:1,s2:2/svc/0?sentinel_username=x&sentinel_password=secret2"
    masked = mask_url(url)
    assert "secret1" not in masked and "secret2" not in masked
    assert masked == "redis+sentinel://app:***@s1:1,s2:2/svc/0?sentinel_username=x&sentinel_password=***"
    text = f"failed: {url} (password secret1, sentinel secret2)"
    assert "secret" not in mask_secrets(text, url)
    with pytest.raises(ConfigurationError) as info:
        validate_url("redis+sentinel://app:secret1@s1:1/svc/zero?sentinel_password=secret2")
    assert "secret" not in str(info.value)


def test_worker_settings_take_sentinel_url_and_wait_replicas():
    url = "redis+sentinel://s1:1,s2:2/svc"
    settings = WorkerSettings.from_env({"REDIS_URL": url, "BANANAS_WAIT_REPLICAS": "2"})
    assert (settings.redis_url, settings.wait_replicas) == (url, 2)
    assert WorkerSettings.from_env(settings.to_env()) == settings
    assert WorkerSettings.from_env({"BANANAS_WAIT_REPLICAS": "2"}, wait_replicas="0").wait_replicas == 0
    with pytest.raises(ConfigurationError, match="--wait-replicas"):
        WorkerSettings.from_env({}, wait_replicas="-1")


@pytest.mark.parametrize("bad", ["-1", "x", "1.0", " ", "2 replicas"])
def test_wait_replicas_bad_values(bad: str):
    if bad.strip():
        with pytest.raises(ConfigurationError, match="BANANAS_WAIT_REPLICAS: expected a whole number"):
            wait_replicas_from(None, {"BANANAS_WAIT_REPLICAS": bad})
    else:
        assert wait_replicas_from(None, {"BANANAS_WAIT_REPLICAS": bad}) == 0
    assert wait_replicas_from(3, {"BANANAS_WAIT_REPLICAS": "x"}) == 3
    with pytest.raises(ConfigurationError, match="wait_replicas"):
        parse_wait_replicas("wait_replicas", True)


def test_password_with_an_unescaped_slash_is_masked():
    for url in ("redis+sentinel://app:pa/ss@s1:1/svc", "redis://app:pa/ss@host:6379/0"):
        assert "pa/ss" not in mask_url(url)
        with pytest.raises(ConfigurationError) as info:
            validate_url(url.replace("redis://", "http://"))
        assert "pa/ss" not in str(info.value)
    # Text that only looks like userinfo after the host is left alone.
    assert mask_url("redis://host:6379/0 (user@example.com)") == "redis://host:6379/0 (user@example.com)"

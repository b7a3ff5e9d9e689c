"""The auth rules on their own: which hosts count as loopback, which headers carry the token."""

from __future__ import annotations

import pytest

from bananas.dashboard import DashboardSettings
from bananas.dashboard.auth import is_loopback, new_token, token_matches


@pytest.mark.parametrize("host", ["127.0.0.1", "127.1.2.3", "localhost", "LOCALHOST", "::1", "[::1]"])
def test_loopback_hosts(host: str) -> None:
    assert is_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.0.0.5", "192.168.1.2", "example.com", "", "127.0.0.1.nip.io"])
def test_other_hosts_are_not_loopback(host: str) -> None:
    assert not is_loopback(host)


@pytest.mark.parametrize(
    ("header", "ok"),
    [
        ("Bearer s3cret", True),
        ("bearer s3cret", True),
        ("Bearer  s3cret ", True),
        ("Bearer s3cre", False),
        ("Bearer s3cretx", False),
        ("Basic s3cret", False),
        ("s3cret", False),
        ("Bearer", False),
        ("", False),
        (None, False),
    ],
)
def test_token_matches(header: str | None, ok: bool) -> None:
    assert token_matches("s3cret", header) is ok


def test_no_expected_token_matches_nothing() -> None:
    assert not token_matches(None, "Bearer ")
    assert not token_matches("", "Bearer ")


def test_generated_tokens_are_long_and_distinct() -> None:
    tokens = {new_token() for _ in range(50)}
    assert len(tokens) == 50 and min(len(t) for t in tokens) >= 32


def test_settings_never_show_the_token() -> None:
    assert "s3cret" not in repr(DashboardSettings(token="s3cret"))
    with pytest.raises(ValueError, match="max_body_bytes"):
        DashboardSettings(token="t", max_body_bytes=0)

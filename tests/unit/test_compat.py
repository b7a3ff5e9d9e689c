"""Migration mode settings (docs/MIGRATING.md): parsing, the worker's round trip through
its environment (supervisor children), and what it turns on."""

from __future__ import annotations

import pytest

from bananas import ValidationError, WorkerSettings
from bananas.client.core import ClientCore
from bananas.core.compat import ORIGINAL, ORIGINAL_SCHEDULER_GRACE, parse_compat
from bananas.errors import ConfigurationError
from bananas.worker.promoter import promoter_compat


@pytest.mark.parametrize("value", [None, "", "  "])
def test_off(value: str | None) -> None:
    assert parse_compat(value) is None


@pytest.mark.parametrize("value", ["original", "Original", " ORIGINAL "])
def test_original(value: str) -> None:
    assert parse_compat(value) == ORIGINAL


@pytest.mark.parametrize("value", ["go", "1", "true", 1, b"original"])
def test_anything_else_is_one_line_naming_the_setting(value: object) -> None:
    with pytest.raises(ValidationError) as info:
        parse_compat(value, "BANANAS_COMPAT")
    message = str(info.value)
    assert message.startswith("BANANAS_COMPAT: must be 'original'") and "\n" not in message


def test_worker_settings_round_trip_through_the_environment() -> None:
    settings = WorkerSettings(compat="original")
    assert settings.to_env()["BANANAS_COMPAT"] == "original"
    assert WorkerSettings.from_env(settings.to_env()) == settings
    assert WorkerSettings.from_env(WorkerSettings().to_env()).compat is None
    with pytest.raises(ConfigurationError, match=r"^BANANAS_COMPAT: "):
        WorkerSettings.from_env({"BANANAS_COMPAT": "yes"})


def test_what_it_turns_on() -> None:
    assert promoter_compat(None) == {}
    assert promoter_compat(ORIGINAL) == {"grace": ORIGINAL_SCHEDULER_GRACE, "legacy_default": True}
    _, off = ClientCore().submit("task", {})
    _, on = ClientCore(compat=ORIGINAL).submit("task", {}, "low")
    _, routed = ClientCore(compat=ORIGINAL).submit("task", {}, routing_key="gpu")
    assert off.keys[1] == "bananas:route:default:queue:normal"
    assert on.keys[1] == "bananas:queue:low"
    assert routed.keys[1] == "bananas:route:gpu:queue:normal"

"""Shared Lua (``_*.lua``) is put in front of the scripts that use it, once, and the lease
bookkeeping is written in one place only."""

from __future__ import annotations

from importlib import resources

from bananas.redis.scripts import SCRIPTS

SCRIPT_DIR = resources.files("bananas.redis").joinpath("scripts")


def test_scripts_that_end_a_lease_get_the_prelude_once() -> None:
    users = [s for s in SCRIPTS.values() if "end_lease(" in s.source]
    assert len(users) >= 10
    for script in users:
        assert script.source.count("local function end_lease(") == 1, script.name
        if script.source.startswith("#!"):
            assert script.compat_source is not None and "local function end_lease(" in script.compat_source


def test_the_lease_block_is_not_copied_into_any_script_file() -> None:
    for entry in SCRIPT_DIR.iterdir():
        if entry.name.endswith(".lua") and not entry.name.startswith("_"):
            text = entry.read_text("utf-8")
            assert "HINCRBY', KEYS[4], route, -1" not in text, f"{entry.name} copies the lease block: call end_lease"


def test_a_flags_line_stays_first() -> None:
    for script in SCRIPTS.values():
        own_first_line = SCRIPT_DIR.joinpath(f"{script.name}.lua").read_text("utf-8").split("\n", 1)[0]
        if own_first_line.startswith("#!"):
            assert script.source.split("\n", 1)[0] == own_first_line, script.name


def test_scripts_that_publish_get_the_notify_prelude_once() -> None:
    users = [s for s in SCRIPTS.values() if "notify(" in s.source]
    assert len(users) >= 20
    for script in users:
        assert script.source.count("local function notify(") == 1, script.name
        if script.source.startswith("#!"):
            assert script.compat_source is not None and "local function notify(" in script.compat_source


def test_no_script_file_publishes_on_its_own() -> None:
    """Every notice goes through notify(): on the cluster layout a routing key's channel
    is a shard channel (SPUBLISH), which a plain PUBLISH would miss."""
    for entry in SCRIPT_DIR.iterdir():
        if entry.name.endswith(".lua") and entry.name != "_notify.lua":
            text = entry.read_text("utf-8")
            assert "'PUBLISH'" not in text and "'SPUBLISH'" not in text, f"{entry.name} publishes itself: call notify"

"""Scripts with a Redis 7 flags line, and the flag-less forms the runner falls back to on
servers that predate script flags (issue 9, item 3)."""

from __future__ import annotations

import pytest
import redis

from bananas.redis import calls, keys
from bananas.redis.runner import SyncRunner
from bananas.redis.scripts import SCRIPTS, ScriptName, compat_sources, needs_compat


def test_flagged_scripts_and_their_compat_forms() -> None:
    flagged = {name for name, script in SCRIPTS.items() if script.compat_source is not None}
    assert flagged == {ScriptName.EXTEND, ScriptName.DEQUEUE}
    assert SCRIPTS[ScriptName.EXTEND].source.startswith("#!lua flags=allow-oom\n")
    for name in flagged:
        script = SCRIPTS[name]
        assert script.compat_source is not None and not script.compat_source.startswith("#!")
        assert script.source.endswith(script.compat_source)
        assert script.compat_sha != script.sha


def test_needs_compat_only_when_flagged_scripts_alone_are_refused() -> None:
    refused = redis.ResponseError("Unexpected #! in script")
    replies: list[object] = [refused if s.compat_source is not None else "sha" for s in SCRIPTS.values()]
    assert needs_compat(replies) is True
    assert needs_compat(["sha"] * len(SCRIPTS)) is False
    broken = ["sha"] * len(SCRIPTS)
    broken[0] = redis.ResponseError("syntax error")
    with pytest.raises(redis.ResponseError, match="syntax error"):
        needs_compat(broken)


def test_the_compat_forms_run_the_same(r: redis.Redis) -> None:
    """What a server without script flags runs: the same scripts without the flags line."""
    r.script_flush()  # runners load what they need again on NOSCRIPT
    runner = SyncRunner(r)
    for source in compat_sources():
        r.script_load(source)
    runner.compat = True
    r.hset(keys.LEASE_OWNERS, "j1", "tok")
    r.zadd(keys.LEASES, {"j1": 1})
    seconds, micros = r.time()
    assert runner.run(calls.extend(30_000, [("j1", "tok"), ("j2", "other")], layout=keys.STANDALONE)[0]) == [b"j2"]
    deadline = r.zscore(keys.LEASES, "j1")  # the server's time + the lease length
    assert deadline is not None and 0 <= deadline - (seconds * 1000 + micros // 1000 + 30_000) < 2000
    assert r.script_exists(SCRIPTS[ScriptName.EXTEND].sha) == [False]  # only the compat form ran

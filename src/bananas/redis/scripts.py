"""The Lua scripts, one file per atomic operation (see each file's header for its contract).

Scripts are loaded once per server and run with EVALSHA; after a server restart (which
forgets scripts) the runner reloads them on the first NOSCRIPT reply.

A script may start with a Redis 7 flags line (``#!lua flags=allow-oom``, or a bare
``#!lua``, which makes the server refuse the whole script while it is out of memory).
Servers that predate script flags reject that line: for them the runner loads the same
script without it (``compat_source``) and runs that instead.

Code shared by several scripts lives in ``_*.lua`` files (``_lease.lua``: ending a lease;
``_notify.lua``: publishing, SPUBLISH for a cluster layout's shard channel) that the loader
puts in front of each script that uses them; see ``_PRELUDES``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str
    #: The source without its ``#!lua`` flags line, for servers without script flags
    #: (None when the script has no such line).
    compat_source: str | None = None
    compat_sha: str | None = None


class ScriptName(StrEnum):
    SUBMIT = "submit"
    SUBMIT_MANY = "submit_many"
    SCHEDULE = "schedule"
    DEQUEUE = "dequeue"
    START = "start"
    ACK = "ack"
    ACK_MANY = "ack_many"
    RETRY = "retry"
    BURY = "bury"
    BURY_SCHEDULED = "bury_scheduled"
    RELEASE = "release"
    DROP = "drop"
    DROP_IF_HELD = "drop_if_held"
    PARK = "park"
    REROUTE = "reroute"
    PRUNE_PARKED = "prune_parked"
    EXTEND = "extend"
    PROMOTE = "promote"
    RECOVER = "recover"
    PERIODIC_REGISTER = "periodic_register"
    PERIODIC_FIRE = "periodic_fire"
    PERIODIC_ADVANCE = "periodic_advance"
    DLQ_RETRY = "dlq_retry"
    DLQ_PURGE = "dlq_purge"
    REHOME = "rehome"
    REPAIR_INFLIGHT = "repair_inflight"
    NONEMPTY = "nonempty"
    CANCEL = "cancel"
    PURGE = "purge"
    SUBMIT_WORKFLOW = "submit_workflow"
    SUBMIT_UNIQUE = "submit_unique"
    FINISH = "finish"
    PROGRESS = "progress"
    ABANDON = "abandon"


def _read(name: str) -> str:
    return resources.files("bananas.redis").joinpath("scripts", f"{name}.lua").read_text("utf-8")


#: Shared Lua functions (files named ``_*.lua``), prepended to each script that calls one.
#: Redis scripts cannot import: one definition instead of a copy in each of twelve files.
_PRELUDES = {"end_lease(": "_lease", "notify(": "_notify"}


def _with_preludes(source: str) -> str:
    shared = [_read(prelude) for marker, prelude in _PRELUDES.items() if marker in source]
    if not shared:
        return source
    # A flags line (``#!lua ...``) must stay the first line.
    head, body = source.split("\n", 1) if source.startswith("#!") else ("", source)
    return "".join(f"{part}\n" for part in (head, *shared) if part) + body


def _load(name: str) -> Script:
    source = _with_preludes(_read(name))
    compat = source.partition("\n")[2] if source.startswith("#!") else None
    return Script(name, source, _sha(source), compat, _sha(compat) if compat is not None else None)


def _sha(source: str) -> str:
    return hashlib.sha1(source.encode()).hexdigest()


SCRIPTS: dict[ScriptName, Script] = {name: _load(name.value) for name in ScriptName}


@dataclass(frozen=True, slots=True)
class Call:
    """One script invocation, built by the I/O-free core and run by a sync or async runner."""

    script: ScriptName
    keys: tuple[str, ...]
    args: tuple[str | bytes | int | float, ...]

    def evalsha_args(self, compat: bool = False) -> tuple[object, ...]:
        """EVALSHA's arguments; ``compat`` runs the flag-less form (servers before Redis 7)."""
        script = SCRIPTS[self.script]
        sha = script.compat_sha if compat and script.compat_sha is not None else script.sha
        return (sha, len(self.keys), *self.keys, *self.args)


def needs_compat(load_replies: Sequence[object]) -> bool:
    """Given the replies to SCRIPT LOAD of every script in ``SCRIPTS`` order: True when
    the server refused only flagged scripts (it predates script flags); raises the first
    error otherwise."""
    refused = [(script, reply) for script, reply in zip(SCRIPTS.values(), load_replies, strict=True)
               if isinstance(reply, Exception)]  # fmt: skip
    for script, reply in refused:
        if script.compat_source is None:
            assert isinstance(reply, Exception)
            raise reply
    return bool(refused)


def compat_sources() -> list[str]:
    return [script.compat_source for script in SCRIPTS.values() if script.compat_source is not None]

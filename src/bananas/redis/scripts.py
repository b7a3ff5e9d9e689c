"""The Lua scripts, one file per atomic operation (see each file's header for its contract).

Scripts are loaded once per server and run with EVALSHA; after a server restart (which
forgets scripts) the runner reloads them on the first NOSCRIPT reply.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum
from importlib import resources


@dataclass(frozen=True, slots=True)
class Script:
    name: str
    source: str
    sha: str


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
    PARK = "park"
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


def _load(name: str) -> Script:
    source = resources.files("bananas.redis").joinpath("scripts", f"{name}.lua").read_text("utf-8")
    return Script(name, source, hashlib.sha1(source.encode()).hexdigest())


SCRIPTS: dict[ScriptName, Script] = {name: _load(name.value) for name in ScriptName}


@dataclass(frozen=True, slots=True)
class Call:
    """One script invocation, built by the I/O-free core and run by a sync or async runner."""

    script: ScriptName
    keys: tuple[str, ...]
    args: tuple[str | bytes | int | float, ...]

    def evalsha_args(self) -> tuple[object, ...]:
        return (SCRIPTS[self.script].sha, len(self.keys), *self.keys, *self.args)

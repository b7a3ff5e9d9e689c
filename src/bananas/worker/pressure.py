"""Redis out of memory: one state per worker, said once, with the fix.

When Redis reaches ``maxmemory`` under the ``noeviction`` policy it refuses commands
that may grow memory. The worker then stops taking new jobs (the dequeue script is
refused as a whole, and the fetch loop waits here), keeps the jobs it runs (lease
extensions are flagged ``allow-oom``) and retries its refused writes until memory is
available again. Whoever meets a refusal reports it here; the state is logged once when
it begins and once when it ends, never per job.
"""

from __future__ import annotations

import logging
import time

from bananas.redis.broker import Broker

log = logging.getLogger("bananas.worker")

FIX = (
    "fix: raise Redis' maxmemory (CONFIG SET maxmemory <bytes>) or free memory "
    "(delete unneeded keys, shorten JOB_COMPLETED_TTL / RESULT_TTL, purge the dead letters)"
)


class MemoryPressure:
    def __init__(self) -> None:
        self._since: float | None = None

    @property
    def full(self) -> bool:
        return self._since is not None

    def refused(self, where: str) -> None:
        """A write was refused for memory (``where`` says which step met it first)."""
        if self._since is not None:
            return
        self._since = time.monotonic()
        log.error(
            "redis is out of memory (maxmemory reached, policy noeviction) and refused %s: this worker "
            "takes no new jobs, keeps running its own and retries its writes until memory is available; %s",
            where,
            FIX,
        )

    def cleared(self) -> None:
        if self._since is None:
            return
        waited = time.monotonic() - self._since
        self._since = None
        log.warning("redis accepts writes again after %.1fs out of memory; taking jobs again", waited)

    async def check(self, broker: Broker) -> bool:
        """While full: whether memory is available again (then the state ends)."""
        if self._since is None:
            return True
        if await broker.memory_available():
            self.cleared()
            return True
        return False

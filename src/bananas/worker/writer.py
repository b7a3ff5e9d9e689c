"""Batches the worker's state changes into pipelines.

Every state change goes through one FIFO: a job's ``start`` is always sent before its
outcome, and under load many jobs' changes share one round trip. Two reductions apply
within a batch, neither changing the end state:

- a ``start`` whose job's outcome is in the same batch is dropped (the outcome record
  supersedes it: it carries the same attempt count);
- all ``ack``s are merged into one ``ack_many`` script call.

A write Redis refuses for memory (maxmemory reached under noeviction) is kept, first in
line, and tried again until memory is available; a merged ``ack_many`` that fails for
another reason is sent again as single ``ack``s, so one job's error stays its own.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bananas.redis import calls
from bananas.redis.backoff import Backoff, is_connection_error, is_out_of_memory
from bananas.redis.broker import Broker
from bananas.redis.scripts import Call, ScriptName
from bananas.worker.pressure import MemoryPressure

log = logging.getLogger("bananas.worker")

MAX_BATCH = 512
_OUTCOMES = frozenset({ScriptName.ACK, ScriptName.RETRY, ScriptName.BURY, ScriptName.FINISH})


@dataclass(frozen=True, slots=True)
class Deferred:
    """A call built only when it is about to be sent (or never, if dropped)."""

    script: ScriptName
    job_id: str
    build: Callable[[], Call]


Pending = tuple[Call | Deferred, "asyncio.Future[Any]"]


class Writer:
    def __init__(self, broker: Broker, pressure: MemoryPressure | None = None) -> None:
        self._pressure = pressure
        self._broker = broker
        #: The key names the calls sent here are built with.
        self.layout = broker.layout
        self._pending: list[Pending] = []
        self._wake = asyncio.Event()
        self._closed = False

    def send(self, call: Call | Deferred) -> asyncio.Future[Any]:
        """Queue ``call``; the future resolves with the script's reply once it ran."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending.append((call, future))
        self._wake.set()
        return future

    async def run(self) -> None:
        backoff = Backoff()
        memory = Backoff(cap=1.0)
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            try:
                refused = await self._flush(batch)
            except Exception as exc:
                if not is_connection_error(exc):
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(exc)
                    del self._pending[: len(batch)]
                    continue
                # Redis is away: keep the batch and try again. The scripts check the lease
                # token, so a change that did land before the cut is not applied twice.
                log.warning("redis unavailable while writing job state, retrying: %s", exc)
                await backoff.sleep()
                continue
            backoff.reset()
            del self._pending[: len(batch)]
            if refused:
                # Redis is out of memory: keep the refused writes, first in line, and try
                # again until memory is available (a refused script wrote nothing).
                self._pending[:0] = refused
                if self._pressure is not None:
                    self._pressure.refused("writing job state")
                await memory.sleep()
            else:
                memory.reset()

    async def _flush(self, batch: list[Pending]) -> list[Pending]:
        """Write ``batch``; returns the entries Redis refused for memory (to retry)."""
        # Over everything pending, not just this batch: an outcome is queued in the same
        # step as the job state it records changes, so a job with a pending outcome must
        # not have its start built from that changed state.
        finishing = {call.args[0] for call, _ in self._pending if isinstance(call, Call) and call.script in _OUTCOMES}
        plan: list[Call] = []
        # Each entry: the pending entries a planned call answers (several for a merged ack_many).
        answers: list[list[Pending]] = []
        acks: list[tuple[Call, Pending]] = []
        for pending in batch:
            entry, future = pending
            if entry.script is ScriptName.START and _job_of(entry) in finishing:
                # _resolve, not set_result: after a connection error the same batch is
                # flushed again and this future is already resolved.
                _resolve(future, 1)
                continue
            call = entry.build() if isinstance(entry, Deferred) else entry
            if call.script is ScriptName.ACK:
                acks.append((call, pending))
                continue
            plan.append(call)
            answers.append([pending])
        # Acks are merged per lease set: one group in the standalone layout, one per
        # routing key in the cluster layout (a script runs in one slot).
        groups: dict[str, list[tuple[Call, Pending]]] = {}
        for ack in acks:
            groups.setdefault(ack[0].keys[0], []).append(ack)
        merged: list[tuple[int, list[tuple[Call, Pending]]]] = []
        for group in groups.values():
            if len(group) > 1:
                merged.append((len(plan), group))
            plan.append(group[0][0] if len(group) == 1 else calls.ack_many([call for call, _ in group]))
            answers.append([pending for _, pending in group])
        if not plan:
            return []
        replies = await self._broker.write_many(plan)
        for at, group in reversed(merged):
            reply = replies[at]
            if isinstance(reply, Exception) and not is_out_of_memory(reply):
                # The merged call failed as a whole: send each ack on its own, so one
                # job's error stays that job's (a failed script wrote nothing; each ack
                # checks its lease token, so one that did land is not applied twice).
                answers[at : at + 1] = [[pending] for _, pending in group]
                replies[at : at + 1] = await self._broker.write_many([call for call, _ in group])
        refused: list[Pending] = []
        for entries, reply in zip(answers, replies, strict=True):
            if isinstance(reply, Exception) and is_out_of_memory(reply):
                refused.extend(entries)
            elif len(entries) > 1 and isinstance(reply, list):
                for (_, future), value in zip(entries, reply, strict=True):
                    _resolve(future, _refused() if value == -1 else value)
            else:
                for _, future in entries:
                    _resolve(future, reply)
        return refused

    def close(self) -> None:
        """Stop once everything queued so far is written."""
        self._closed = True
        self._wake.set()


def _job_of(entry: Call | Deferred) -> object:
    return entry.job_id if isinstance(entry, Deferred) else entry.args[0]


def _refused() -> Exception:
    return ValueError("ack refused: a TTL of the job is out of range (0..2147483647 seconds); nothing written")


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, Exception):
        future.set_exception(value)
    else:
        future.set_result(value)

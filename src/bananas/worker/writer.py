"""Batches the worker's state changes into pipelines.

Every state change goes through one FIFO: a job's ``start`` is always sent before its
outcome, and under load many jobs' changes share one round trip. Two reductions apply
within a batch, neither changing the end state:

- a ``start`` whose job's outcome is in the same batch is dropped (the outcome record
  supersedes it: it carries the same attempt count);
- all ``ack``s are merged into one ``ack_many`` script call.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bananas.redis import calls
from bananas.redis.backoff import Backoff, is_connection_error
from bananas.redis.broker import Broker
from bananas.redis.scripts import Call, ScriptName

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
    def __init__(self, broker: Broker) -> None:
        self._broker = broker
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
        while True:
            if not self._pending:
                if self._closed:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = self._pending[:MAX_BATCH]
            try:
                await self._flush(batch)
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

    async def _flush(self, batch: list[Pending]) -> None:
        # Over everything pending, not just this batch: an outcome is queued in the same
        # step as the job state it records changes, so a job with a pending outcome must
        # not have its start built from that changed state.
        finishing = {call.args[0] for call, _ in self._pending if isinstance(call, Call) and call.script in _OUTCOMES}
        plan: list[Call] = []
        # Each entry: the futures a planned call answers (several for a merged ack_many).
        answers: list[list[asyncio.Future[Any]]] = []
        acks: list[tuple[Call, asyncio.Future[Any]]] = []
        for entry, future in batch:
            if entry.script is ScriptName.START and _job_of(entry) in finishing:
                # _resolve, not set_result: after a connection error the same batch is
                # flushed again and this future is already resolved.
                _resolve(future, 1)
                continue
            call = entry.build() if isinstance(entry, Deferred) else entry
            if call.script is ScriptName.ACK:
                acks.append((call, future))
                continue
            plan.append(call)
            answers.append([future])
        if len(acks) == 1:
            plan.append(acks[0][0])
            answers.append([acks[0][1]])
        elif acks:
            plan.append(calls.ack_many([call for call, _ in acks]))
            answers.append([future for _, future in acks])
        if not plan:
            return
        replies = await self._broker.write_many(plan)
        for futures, reply in zip(answers, replies, strict=True):
            if len(futures) > 1 and isinstance(reply, list):
                for future, value in zip(futures, reply, strict=True):
                    _resolve(future, value)
            else:
                for future in futures:
                    _resolve(future, reply)

    def close(self) -> None:
        """Stop once everything queued so far is written."""
        self._closed = True
        self._wake.set()


def _job_of(entry: Call | Deferred) -> object:
    return entry.job_id if isinstance(entry, Deferred) else entry.args[0]


def _resolve(future: asyncio.Future[Any], value: Any) -> None:
    if future.done():
        return
    if isinstance(value, Exception):
        future.set_exception(value)
    else:
        future.set_result(value)

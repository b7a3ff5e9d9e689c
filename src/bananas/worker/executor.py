"""Runs one handler call: async handlers on the event loop, sync ones in a thread pool
(with the caller's context variables copied), both under the job's timeout."""

from __future__ import annotations

import asyncio
import contextvars
import heapq
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bananas.core.job import Job
from bananas.worker.registry import Handler


class JobTimeoutExceeded(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"job exceeded its timeout of {seconds:g} seconds")


class _Deadline:
    """One running call's timeout: the task to cancel when it passes."""

    __slots__ = ("cancelling", "done", "fired", "task", "when")

    def __init__(self, when: float, task: asyncio.Task[Any]) -> None:
        self.when = when
        self.task = task
        #: The task's pending cancellations when the call began (as ``asyncio.timeout``
        #: keeps them): a cancellation beyond ours is someone else's and is let through.
        self.cancelling = task.cancelling()
        self.done = False
        self.fired = False

    def __lt__(self, other: _Deadline) -> bool:
        return self.when < other.when


class Deadlines:
    """The timeouts of every running job, on one timer of the event loop.

    ``asyncio.timeout`` per job schedules and cancels a timer handle each time and
    costs more than the rest of a no-op job's bookkeeping in the executor; this keeps one
    heap and one timer for the earliest deadline. A call that ends only marks its entry
    done; done entries are dropped when they reach the top, or all at once when they
    outnumber the live ones (so a long default timeout does not let them pile up)."""

    def __init__(self) -> None:
        self._heap: list[_Deadline] = []
        self._live = 0
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = float("inf")

    def add(self, loop: asyncio.AbstractEventLoop, delay: float, task: asyncio.Task[Any]) -> _Deadline:
        entry = _Deadline(loop.time() + delay, task)
        heapq.heappush(self._heap, entry)
        self._live += 1
        if entry.when < self._timer_at:
            self._arm(loop, entry.when)
        return entry

    def remove(self, entry: _Deadline) -> None:
        if entry.done:
            return
        entry.done = True
        self._live -= 1
        heap = self._heap
        if len(heap) > 64 and self._live * 2 < len(heap):
            self._heap = [e for e in heap if not e.done]
            heapq.heapify(self._heap)

    def _arm(self, loop: asyncio.AbstractEventLoop, when: float) -> None:
        if self._timer is not None:
            self._timer.cancel()
        self._timer = loop.call_at(when, self._expire, loop)
        self._timer_at = when

    def _expire(self, loop: asyncio.AbstractEventLoop) -> None:
        self._timer = None
        self._timer_at = float("inf")
        heap = self._heap
        now = loop.time()
        while heap and (heap[0].done or heap[0].when <= now):
            entry = heapq.heappop(heap)
            if entry.done:
                continue
            entry.done = True
            entry.fired = True
            self._live -= 1
            entry.task.cancel()
        if heap:
            self._arm(loop, heap[0].when)


class Executor:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bananas-job")
        self._deadlines = Deadlines()

    async def call(self, handler: Handler, job: Job, timeout: float | None) -> Any:
        loop = asyncio.get_running_loop()
        if handler.is_async:
            work: Any = handler.func(job)
        else:
            ctx = contextvars.copy_context()
            work = loop.run_in_executor(self._pool, ctx.run, handler.func, job)
        task = asyncio.current_task()
        if timeout is None or task is None:
            return await work
        # As with ``asyncio.timeout``, the handler is cancelled in place (no new task as
        # with wait_for), and only our own cancellation becomes a timeout.
        deadline = self._deadlines.add(loop, timeout, task)
        try:
            result = await work
        except asyncio.CancelledError:
            if deadline.fired and task.uncancel() <= deadline.cancelling:
                # An async handler is cancelled; a thread cannot be stopped and is left to
                # finish, but its result is ignored and the attempt counts as failed.
                raise JobTimeoutExceeded(timeout) from None
            raise
        finally:
            self._deadlines.remove(deadline)
        if deadline.fired:
            task.uncancel()  # it fired as the call ended: withdraw our request, as asyncio.timeout does
        return result

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

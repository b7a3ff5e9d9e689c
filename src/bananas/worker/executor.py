"""Runs one handler call: async handlers on the event loop, sync ones in a thread pool
(with the caller's context variables copied), both under the job's timeout."""

from __future__ import annotations

import asyncio
import contextvars
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bananas.core.job import Job
from bananas.worker.registry import Handler


class JobTimeoutExceeded(Exception):
    def __init__(self, seconds: float) -> None:
        super().__init__(f"job exceeded its timeout of {seconds:g} seconds")


class Executor:
    def __init__(self, threads: int) -> None:
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="bananas-job")

    async def call(self, handler: Handler, job: Job, timeout: float | None) -> Any:
        if handler.is_async:
            work: Any = handler.func(job)
        else:
            ctx = contextvars.copy_context()
            work = asyncio.get_running_loop().run_in_executor(self._pool, ctx.run, handler.func, job)
        if timeout is None:
            return await work
        try:
            # asyncio.timeout cancels the handler in place, without wrapping it in a new
            # task as wait_for does: cheaper per job.
            async with asyncio.timeout(timeout):
                return await work
        except TimeoutError:
            # An async handler is cancelled by wait_for; a thread cannot be stopped and is
            # left to finish, but its result is ignored and the attempt counts as failed.
            raise JobTimeoutExceeded(timeout) from None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

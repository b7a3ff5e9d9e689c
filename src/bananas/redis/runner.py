"""Run ``Call``s with EVALSHA, on a sync or an async redis-py client.

A server that restarted has forgotten its scripts: on NOSCRIPT the runner loads every
script and runs the call again. That is safe because a script that answered NOSCRIPT
did not run at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import NoScriptError, ResponseError

from bananas.redis.scripts import SCRIPTS, Call


def _is_noscript(value: object) -> bool:
    return isinstance(value, NoScriptError) or (isinstance(value, ResponseError) and str(value).startswith("NOSCRIPT"))


class SyncRunner:
    def __init__(self, client: redis.Redis) -> None:
        self.client = client

    def load_scripts(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for script in SCRIPTS.values():
            pipe.script_load(script.source)
        pipe.execute()

    def run(self, call: Call) -> Any:
        try:
            return self.client.evalsha(*call.evalsha_args())  # type: ignore[arg-type]
        except NoScriptError:
            self.load_scripts()
            return self.client.evalsha(*call.evalsha_args())  # type: ignore[arg-type]

    def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        """All calls in one round trip (all-or-nothing with ``transaction``). Errors are
        returned in place, not raised, so one failed call does not hide the others."""
        for _attempt in (1, 2):
            pipe = self.client.pipeline(transaction=transaction)
            for call in calls:
                pipe.evalsha(*call.evalsha_args())  # type: ignore[arg-type]
            try:
                results = pipe.execute(raise_on_error=False)
            except NoScriptError:
                self.load_scripts()
                continue
            if any(_is_noscript(r) for r in results):
                self.load_scripts()
                if transaction:
                    continue
                retry_idx = [i for i, r in enumerate(results) if _is_noscript(r)]
                pipe = self.client.pipeline(transaction=False)
                for i in retry_idx:
                    pipe.evalsha(*calls[i].evalsha_args())  # type: ignore[arg-type]
                again = pipe.execute(raise_on_error=False)
                for i, value in zip(retry_idx, again, strict=True):
                    results[i] = value
            return list(results)
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover


def raise_first_error(results: Sequence[Any]) -> list[Any]:
    for value in results:
        if isinstance(value, Exception):
            raise value
    return list(results)


class AsyncRunner:
    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client

    async def load_scripts(self) -> None:
        pipe = self.client.pipeline(transaction=False)
        for script in SCRIPTS.values():
            pipe.script_load(script.source)
        await pipe.execute()

    async def run(self, call: Call) -> Any:
        try:
            return await self.client.evalsha(*call.evalsha_args())  # type: ignore[arg-type]
        except NoScriptError:
            await self.load_scripts()
            return await self.client.evalsha(*call.evalsha_args())  # type: ignore[arg-type]

    async def run_many(self, calls: Sequence[Call], *, transaction: bool = False) -> list[Any]:
        """All calls in one round trip. Errors are returned in place, not raised, so one
        failed call does not hide the results of the others."""
        for _attempt in (1, 2):
            pipe = self.client.pipeline(transaction=transaction)
            for call in calls:
                pipe.evalsha(*call.evalsha_args())  # type: ignore[arg-type]
            try:
                results = await pipe.execute(raise_on_error=False)
            except NoScriptError:
                await self.load_scripts()
                continue
            if any(_is_noscript(r) for r in results):
                await self.load_scripts()
                if transaction:
                    continue
                retry_idx = [i for i, r in enumerate(results) if _is_noscript(r)]
                pipe = self.client.pipeline(transaction=False)
                for i in retry_idx:
                    pipe.evalsha(*calls[i].evalsha_args())  # type: ignore[arg-type]
                again = await pipe.execute(raise_on_error=False)
                for i, value in zip(retry_idx, again, strict=True):
                    results[i] = value
            return list(results)
        raise RuntimeError("scripts could not be loaded")  # pragma: no cover

"""Reading and changing fleet-wide limits (``bananas limits``). Blocking; for the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bananas.core.codec import decode_id
from bananas.core.limits import FleetLimits, Rate, job_rate_field, route_concurrency_field, route_rate_field
from bananas.core.routing import validate_routing_key
from bananas.errors import ValidationError
from bananas.redis import keys


@dataclass(frozen=True, slots=True)
class LimitsView:
    limits: FleetLimits
    inflight: dict[str, int]


class LimitsAdmin:
    def __init__(self, client: redis.Redis) -> None:
        self._redis = client

    def read(self) -> LimitsView:
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.LIMITS)
        pipe.hgetall(keys.ROUTE_INFLIGHT)
        raw, inflight = pipe.execute()
        limits = FleetLimits.from_hash({decode_id(k): decode_id(v) for k, v in raw.items()})
        return LimitsView(limits, {decode_id(k): int(v) for k, v in inflight.items()})

    def set_route(self, routing_key: str, *, concurrency: int | None = None, rate: str | None = None) -> None:
        validate_routing_key(routing_key)
        if concurrency is None and rate is None:
            raise ValidationError("give --concurrency N and/or --rate COUNT/UNIT")
        fields: dict[str, str] = {}
        if concurrency is not None:
            if concurrency < 1:
                raise ValidationError(f"--concurrency must be at least 1, got {concurrency}")
            fields[route_concurrency_field(routing_key)] = str(concurrency)
        if rate is not None:
            fields[route_rate_field(routing_key)] = Rate.parse(rate).to_field()
        self._redis.hset(keys.LIMITS, mapping=fields)  # type: ignore[arg-type]

    def set_job(self, job_name: str, *, rate: str) -> None:
        if not job_name:
            raise ValidationError("--job-name must not be empty")
        self._redis.hset(keys.LIMITS, job_rate_field(job_name), Rate.parse(rate).to_field())

    def clear_route(self, routing_key: str, *, concurrency: bool = True, rate: bool = True) -> int:
        validate_routing_key(routing_key)
        fields = ([route_concurrency_field(routing_key)] if concurrency else []) + (
            [route_rate_field(routing_key)] if rate else []
        )
        return int(self._redis.hdel(keys.LIMITS, *fields)) if fields else 0

    def clear_job(self, job_name: str) -> int:
        return int(self._redis.hdel(keys.LIMITS, job_rate_field(job_name)))

    def clear_all(self) -> int:
        return int(self._redis.delete(keys.LIMITS))

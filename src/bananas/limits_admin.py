"""Reading and changing fleet-wide limits (``bananas limits``). Blocking; for the CLI."""

from __future__ import annotations

from dataclasses import dataclass

import redis

from bananas.client.core import layout_of_client
from bananas.client.inspect import set_owners
from bananas.core.codec import decode_id
from bananas.core.limits import FleetLimits, Rate, job_rate_field, route_concurrency_field, route_rate_field
from bananas.core.routing import validate_routing_key
from bananas.errors import ValidationError
from bananas.redis import keys
from bananas.redis.keys import KeyLayout


@dataclass(frozen=True, slots=True)
class LimitsView:
    limits: FleetLimits
    inflight: dict[str, int]
    #: Job-name rate limits count per routing key (Redis Cluster), not fleet-wide.
    per_routing_key: bool = False


class LimitsAdmin:
    """The limits themselves are one fleet-wide hash in both layouts; the jobs in flight
    per routing key are counted in one hash standalone, in each routing key's slot on
    Redis Cluster (read through the routing-key registry)."""

    def __init__(self, client: redis.Redis, layout: KeyLayout | None = None) -> None:
        self._redis = client
        self.layout = layout if layout is not None else layout_of_client(client)

    def read(self) -> LimitsView:
        owners = [""]
        if self.layout.cluster:
            owners = set_owners(self.layout, self._redis.smembers(keys.ROUTING_KEYS))
        pipe = self._redis.pipeline(transaction=False)
        pipe.hgetall(keys.LIMITS)
        for key in owners:
            pipe.hgetall(self.layout.inflight(key))
        raw, *counts = pipe.execute()
        limits = FleetLimits.from_hash({decode_id(k): decode_id(v) for k, v in raw.items()})
        inflight = {decode_id(k): int(v) for hashed in counts for k, v in hashed.items()}
        return LimitsView(limits, inflight, per_routing_key=self.layout.cluster)

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

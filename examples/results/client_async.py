"""The AsyncClient: many waits at once, all over one subscription connection.

    python client_async.py          # 200 jobs
    python client_async.py 2000

Needs a worker: ``bananas worker tasks:registry``. Uses REDIS_URL (default
redis://localhost:6379). Exits 0 when every result arrived and was right.
"""

from __future__ import annotations

import asyncio
import sys
import time

from bananas import AsyncClient, JobFailedError


async def main(count: int) -> int:
    async with AsyncClient() as client:
        print(f"using {client!r}")
        started = time.perf_counter()
        # Every one of these waits shares the client's single Pub/Sub connection.
        thumbs = await asyncio.gather(
            *(
                client.submit_and_wait(
                    "make_thumbnail", {"image": f"img{i}.png", "width": 256 + i, "height": 256}, timeout=60
                )
                for i in range(count)
            )
        )
        elapsed = time.perf_counter() - started
        wrong = [i for i, thumb in enumerate(thumbs) if thumb["thumbnail"] != f"img{i}_thumb.png"]
        print(f"{count} concurrent submit_and_wait calls answered in {elapsed:.2f}s ({len(wrong)} wrong)")

        # Submit first, wait for several results at once with get_result.
        ids = [await client.submit_job("charge_card", {"card": card, "amount": 5}) for card in ("4242", "0002")]
        outcomes = await asyncio.gather(*(client.get_result(i, timeout=10) for i in ids), return_exceptions=True)
        for job_id, outcome in zip(ids, outcomes, strict=True):
            text = f"failed: {outcome.error}" if isinstance(outcome, JobFailedError) else outcome
            print(f"charge_card {job_id}: {text}")
        ok = not wrong and isinstance(outcomes[0], dict) and isinstance(outcomes[1], JobFailedError)
    print("async client: all steps OK" if ok else "async client: something was off")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 200)))

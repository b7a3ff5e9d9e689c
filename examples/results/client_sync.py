"""The blocking Client: submit_and_wait, get_result, failures and timeouts.

    python client_sync.py

Needs a worker: ``bananas worker tasks:registry``. Uses REDIS_URL (default
redis://localhost:6379). Exits 0 when every step behaved as described.
"""

from __future__ import annotations

import sys

from bananas import Client, JobFailedError, JobTimeoutError


def main() -> int:
    with Client() as client:
        print(f"using {client!r}")

        # 1. Submit and wait for the return value (up to 30 s by default).
        thumb = client.submit_and_wait("make_thumbnail", {"image": "cat.jpg", "width": 1024, "height": 768})
        print(f"1. submit_and_wait -> {thumb}")

        # 2. Submit now, collect later by id.
        job_id = client.submit_job("make_thumbnail", {"image": "dog.jpg", "width": 64, "height": 64})
        print(f"2. submitted {job_id}; get_result(timeout=10) -> {client.get_result(job_id, timeout=10)}")
        details = client.get_job_result(job_id)
        assert details is not None
        print(f"   status={details.status} worker={details.worker} duration_ms={details.duration_ms}")

        # 3. A job that fails for good raises JobFailedError with the job's error.
        try:
            client.submit_and_wait("charge_card", {"card": "4000-0000-0000-0002", "amount": 12})
        except JobFailedError as exc:
            print(f"3. failed as expected: job {exc.job_id}: {exc.error}")
        else:
            print("3. the declined card was charged?!")
            return 1

        # 4. Waiting too briefly raises JobTimeoutError; the job runs on.
        try:
            client.submit_and_wait("build_report", {"name": "monthly", "seconds": 1}, timeout=0.2)
        except JobTimeoutError as exc:
            print(f"4. timed out as expected after {exc.timeout}s; the job keeps running")
            print(f"   get_result({exc.job_id}) right now -> {client.get_result(exc.job_id)}")
            print(f"   get_result(..., timeout=10) -> {client.get_result(exc.job_id, timeout=10)}")
            print(f"   try: bananas result {exc.job_id}")
        else:
            print("4. the report was faster than expected")
            return 1
    print("sync client: all steps OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())

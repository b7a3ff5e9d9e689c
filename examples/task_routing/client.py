"""Submits jobs to each routing key, then waits for the workers to finish them.

    python client.py            # submit and wait (up to 30 s), then print a summary
    python client.py --no-wait  # submit and exit

Uses REDIS_URL like the workers (default redis://localhost:6379).
"""

from __future__ import annotations

import sys
import time

from bananas import Client, JobStatus, Priority

FINAL = {JobStatus.COMPLETED, JobStatus.FAILED}


def submit_all(client: Client) -> list[str]:
    ids: list[str] = []

    # GPU jobs: only gpu-worker and multi-worker listen on "gpu".
    ids.append(
        client.submit_job_with_route(
            "process_image", {"image": "s3://bucket/cat.png", "ops": ["resize", "sharpen"]}, Priority.HIGH, "gpu"
        )
    )
    ids.append(client.submit_job("train_model", {"model": "resnet50", "epochs": 3}, Priority.LOW, routing_key="gpu"))
    # A scheduled job keeps its routing key: in 2 seconds it lands on gpu's queue, not default's.
    ids.append(
        client.schedule_job("transcode_video", {"video": "intro.mov", "format": "mp4"}, delay=2, routing_key="gpu")
    )

    # Email jobs: only multi-worker listens on "email". Several at once, one round trip.
    ids += client.submit_many(
        "send_email",
        [{"to": f"user{i}@example.com", "template": "welcome"} for i in range(3)],
        Priority.NORMAL,
        routing_key="email",
    )

    # No routing key: the job goes to "default", exactly as before routing existed.
    ids.append(client.submit_job("generate_report", {"report": "monthly"}))
    return ids


def wait_for(client: Client, ids: list[str], timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    jobs = [client.get_job(job_id) for job_id in ids]
    while time.monotonic() < deadline and not all(j is not None and j.status in FINAL for j in jobs):
        time.sleep(0.1)
        jobs = [client.get_job(job_id) for job_id in ids]
    print(f"\n{'JOB':<16} {'ROUTING KEY':<12} {'PRIORITY':<9} {'STATUS':<10} ID")
    for job_id, job in zip(ids, jobs, strict=True):
        if job is None:
            print(f"{'?':<16} {'?':<12} {'?':<9} {'missing':<10} {job_id}")
        else:
            print(f"{job.name:<16} {job.routing_key:<12} {job.priority.value:<9} {job.status.value:<10} {job_id}")
    done = sum(1 for j in jobs if j is not None and j.status is JobStatus.COMPLETED)
    print(f"\n{done} of {len(ids)} jobs completed")
    return 0 if done == len(ids) else 1


def main(argv: list[str]) -> int:
    with Client() as client:
        print(f"submitting to {client!r}")
        ids = submit_all(client)
        print(f"submitted {len(ids)} jobs (routing keys gpu, email, default)")
        if "--no-wait" in argv:
            for job_id in ids:
                print(job_id)
            return 0
        return wait_for(client, ids)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

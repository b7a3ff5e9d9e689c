"""Submit a chain and a chord across two pools, show their steps and wait for them."""

from __future__ import annotations

import bananas
from bananas import Client, Router

# Celery's task_routes, as a Celery project would have them.
ROUTES = {"resize": {"queue": "gpu"}, "thumbnail": "gpu", "send_*": {"queue": "email"}}


def main() -> None:
    with Client(router=Router.from_celery(ROUTES)) as client:
        chain = client.submit(
            bananas.chain(
                bananas.sig("resize", {"image": "cat.png", "width": 640}),
                bananas.sig("send_email", {"to": "ana@example.org"}),
            )
        )
        chord = client.submit(
            bananas.chord(bananas.group(*(bananas.sig("thumbnail", n) for n in range(4))), bananas.sig("make_album"))
        )
        first_step = chain.job_ids[0]
        print(
            "resize:", client.get_result(first_step, timeout=30, on_progress=lambda p: print(f"  {p:.0%} {p.message}"))
        )
        print("chain:", chain.wait(timeout=30))
        print("chord:", chord.wait(timeout=30))
        for handle in (chain, chord):
            info = client.get_workflow(handle.id)
            assert info is not None
            print(f"workflow {info.id}: {info.state}")
            for step in info.steps:
                print(f"  stage {step.stage}  {step.name:<11} on {step.routing_key:<8} {step.status}")


if __name__ == "__main__":
    main()

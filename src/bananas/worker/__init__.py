"""The worker: a few small loops around a registry of handlers.

- ``fetcher``: takes ready jobs in the configured order when slots are free
- ``executor``: runs handlers (async on the loop, sync in threads), with timeouts
- ``writer``: batches state changes (start, ack, retry, bury) into pipelines
- ``heartbeat``: extends the leases of running jobs, announces the worker
- ``recoverer``: returns jobs whose lease expired (dead workers) to their queues
- ``promoter``: moves due scheduled jobs and retries to their ready queues
- ``service``: wires them together, handles signals and graceful shutdown
"""

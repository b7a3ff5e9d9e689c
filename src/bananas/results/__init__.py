"""Results: reading stored outcomes and waiting for them over one shared subscription."""

from bananas.core.result import JobResult
from bananas.results.waiter import ResultWaiter

__all__ = ["JobResult", "ResultWaiter"]

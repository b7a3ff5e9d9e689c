"""Producers: the sync ``Client`` and the ``AsyncClient``, thin shells over one core."""

from bananas.client.async_client import AsyncClient
from bananas.client.sync_client import Client

__all__ = ["AsyncClient", "Client"]

"""``Client`` and ``AsyncClient`` are two shells over one I/O-free core: they must offer
the same public methods with the same parameters, so neither drifts from the other."""

from __future__ import annotations

import inspect

from bananas import AsyncClient, Client

#: Methods that exist on one shell only, by nature of sync versus async.
SHELL_ONLY = {"close", "aclose"}


def _public(cls: type) -> dict[str, inspect.Signature]:
    return {
        name: inspect.signature(member)
        for name, member in inspect.getmembers(cls, inspect.isfunction)
        if not name.startswith("_") and name not in SHELL_ONLY
    }


def test_same_public_methods() -> None:
    assert sorted(_public(Client)) == sorted(_public(AsyncClient))


def test_same_parameters() -> None:
    sync, asynchronous = _public(Client), _public(AsyncClient)
    for name, signature in sync.items():
        params = [(p.name, p.kind, p.default) for p in signature.parameters.values()]
        other = [(p.name, p.kind, p.default) for p in asynchronous[name].parameters.values()]
        assert params == other, name

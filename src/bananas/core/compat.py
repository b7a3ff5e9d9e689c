"""Migration mode: writing so the original Bananas (Go service and workers, its Python
and TypeScript SDKs) understands what we write (docs/MIGRATING.md).

Off by default. ``original`` (``BANANAS_COMPAT=original``, or ``compat="original"`` on
``Client``/``AsyncClient``) makes producers push jobs of the ``default`` routing key to
the legacy lists ``bananas:queue:<priority>``, the only lists the original Go workers
read, and makes promoters leave due jobs to a running original Go scheduler for a grace
period, so that the Go scheduler, which promotes without a claim, moves them first (what
no setting of ours can prevent is stated in docs/MIGRATING.md).
"""

from __future__ import annotations

from bananas.errors import ValidationError

#: Environment variable read where ``REDIS_URL`` is read (the CLI, ``Client()``,
#: ``AsyncClient()``, ``WorkerSettings.from_env``).
COMPAT_ENV = "BANANAS_COMPAT"
#: The one migration mode: interoperate with the original Bananas.
ORIGINAL = "original"
#: Seconds a promoter in migration mode waits past an entry's due time before promoting
#: it, so a running original Go scheduler (which polls about every second and promotes
#: without a claim) moves it first; if none runs, ours promotes it this much later.
ORIGINAL_SCHEDULER_GRACE = 5.0


def parse_compat(value: object, setting: str = "compat") -> str | None:
    """``"original"``, or ``None`` for off (``None`` or ``""``). Anything else raises
    ``ValidationError`` naming ``setting``."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "":
            return None
        if text == ORIGINAL:
            return ORIGINAL
    raise ValidationError(f"{setting}: must be {ORIGINAL!r} (or unset for off), got {value!r}")

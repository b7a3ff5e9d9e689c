"""JSON encoding for everything that crosses the wire. JSON only: never pickle.

orjson is used for speed, but it silently turns NaN and Infinity into ``null``; that
would change a user's data, so payloads are checked for non-finite floats first.
"""

from __future__ import annotations

import math
from typing import Any

import orjson

from bananas.errors import PayloadError

#: Default upper bound for an encoded payload, in bytes (1 MiB).
DEFAULT_MAX_PAYLOAD_BYTES = 1024 * 1024

dumps = orjson.dumps
loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def decode_id(value: object) -> str:
    """Text of an id (or any name) read from Redis. The one decoding rule for every reader:
    UTF-8 with ``surrogateescape``, so an id a foreign client wrote that is not UTF-8 still
    maps back to its exact bytes (the runners encode with the same error handler) instead
    of crashing the reader or being mangled."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "surrogateescape")
    return value if isinstance(value, str) else str(value)


def display_id(job_id: str) -> str:
    """An id as text safe to print: bytes that are not UTF-8 shown as ``\\xff`` escapes."""
    return job_id.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, dict):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, list | tuple):
        return any(_has_non_finite(v) for v in value)
    return False


def encode_payload(payload: Any, *, max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> bytes:
    """Encode a payload as JSON, or raise ``PayloadError`` saying why it cannot be."""
    try:
        encoded = orjson.dumps(payload)
    except TypeError as exc:
        raise PayloadError(f"payload is not JSON-serializable: {exc}") from None
    # orjson writes NaN/Infinity as null, so only an encoding with a null can hide one.
    if b"null" in encoded and _has_non_finite(payload):
        raise PayloadError("payload contains NaN or Infinity, which JSON cannot represent")
    if max_bytes is not None and len(encoded) > max_bytes:
        raise PayloadError(f"payload is {len(encoded)} bytes encoded, above the limit of {max_bytes} bytes")
    return encoded


def check_payload(payload: Any, *, max_bytes: int | None = DEFAULT_MAX_PAYLOAD_BYTES) -> None:
    """Validate a payload without keeping the encoding."""
    encode_payload(payload, max_bytes=max_bytes)

"""Shared pieces of the CLI: logging with masked secrets, app loading, error exits."""

from __future__ import annotations

import importlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, NoReturn, TypeVar

import click
import redis.exceptions

from bananas.cli.log_filters import CredentialErrorFilter
from bananas.cli.logformat import LOG_FORMATS, make_formatter
from bananas.cli.project import import_from_project
from bananas.errors import BananasError, ConfigurationError, StartupError
from bananas.redis.connection import DEFAULT_REDIS_URL, mask_secrets, validate_url
from bananas.worker.registry import Registry

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> NoReturn:
    """One line on stderr, no traceback, then exit."""
    click.echo(f"bananas: error: {message}", err=True)
    sys.exit(code)


def resolve_redis_url(flag: str | None) -> str:
    url = flag or os.environ.get("REDIS_URL") or DEFAULT_REDIS_URL
    try:
        return validate_url(url, "--redis-url" if flag else "REDIS_URL")
    except ConfigurationError as exc:
        fail(str(exc))


@contextmanager
def friendly_errors(redis_url: str | None = None) -> Iterator[None]:
    """Turn expected failures into one-line messages with secrets masked."""
    try:
        yield
    except StartupError as exc:
        fail(mask_secrets(str(exc), redis_url), code=3)
    except (BananasError, ValueError) as exc:
        fail(mask_secrets(str(exc), redis_url))
    except redis.exceptions.ConnectionError as exc:
        fail(f"cannot reach Redis: {mask_secrets(str(exc), redis_url)}", code=3)
    except redis.exceptions.RedisError as exc:
        fail(f"Redis error: {mask_secrets(str(exc), redis_url)}", code=3)


redis_url_option = click.option(
    "--redis-url", default=None, metavar="URL", help="Redis URL (default: $REDIS_URL, then redis://localhost:6379)."
)


class SecretMaskingFilter(logging.Filter):
    def __init__(self, url: str | None) -> None:
        super().__init__()
        self.url = url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        masked = mask_secrets(message, self.url)
        if masked != message:
            record.msg, record.args = masked, None
        # Tracebacks carry exception messages too: render and mask them here, so the
        # formatter prints the masked text (it reuses ``exc_text`` when set).
        if record.exc_info and not record.exc_text:
            record.exc_text = _FORMATTER.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = mask_secrets(record.exc_text, self.url)
        if record.stack_info:
            record.stack_info = mask_secrets(record.stack_info, self.url)
        return True


_FORMATTER = logging.Formatter()


log_format_option = click.option(
    "--log-format",
    default=None,
    metavar="text|json",
    help="text (one escaped line per record) or json (one object per line) ($BANANAS_LOG_FORMAT, default text).",
)


def resolve_log_format(flag: str | None) -> str:
    """The flag, else $BANANAS_LOG_FORMAT, else ``text``; anything else is a one-line error."""
    value = flag if flag is not None else os.environ.get("BANANAS_LOG_FORMAT") or "text"
    chosen = value.strip().lower()
    if chosen not in LOG_FORMATS:
        setting = "--log-format" if flag is not None else "BANANAS_LOG_FORMAT"
        fail(f"{setting}: unknown log format {value!r} (use text or json)")
    return chosen


def setup_logging(level: str, redis_url: str | None, log_format: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(make_formatter(log_format))
    handler.addFilter(CredentialErrorFilter())  # before masking: its line is masked too
    handler.addFilter(SecretMaskingFilter(redis_url))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    try:
        root.setLevel(level.upper())
    except ValueError:
        fail(f"BANANAS_LOG_LEVEL: unknown log level {level!r}")


def load_registry(spec: str) -> Registry:
    """Import ``module:attribute`` and check that it is a ``Registry``."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        fail(f"APP must be 'module:attribute' naming a Registry, got {spec!r}")
    import_from_project()
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        fail(f"cannot import module {module_name!r} for APP {spec!r}: {exc}")
    target: Any = module
    for part in attribute.split("."):
        if not hasattr(target, part):
            fail(f"module {module_name!r} has no attribute {attribute!r}")
        target = getattr(target, part)
    if callable(target) and not isinstance(target, Registry):
        try:
            target = target()
        except Exception as exc:
            fail(f"APP {spec!r} is callable but calling it with no arguments failed: {type(exc).__name__}: {exc}")
    if not isinstance(target, Registry):
        fail(f"APP {spec!r} is a {type(target).__name__}, not a bananas.Registry")
    return target

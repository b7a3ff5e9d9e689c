"""Parameter types of the CLI: help shows what a value is (``SECONDS``, ``INTEGER``), and a
bad value is one line naming the option (``bananas: error: Invalid value for '--delay':
'abc' is not a number of seconds``). Light: ``bananas --help`` imports this."""

from __future__ import annotations

from typing import Any

import click


class Seconds(click.ParamType[float]):
    """A number of seconds. Only the form is checked here; the range (finite, 0 or more,
    not absurd) is checked where the value is used, the same for every caller."""

    name = "seconds"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            number = float(value)
        else:
            try:
                number = float(str(value).strip())
            except ValueError:
                self.fail(f"{value!r} is not a number of seconds", param, ctx)
        return number


SECONDS = Seconds()

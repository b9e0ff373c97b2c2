"""Project errors. Anything raised as :class:`AutoaugError` is a user-facing problem with the input."""

from __future__ import annotations


class AutoaugError(ValueError):
    """Bad user input: the message names the bad value and what is allowed.

    The CLI prints it as one line on stderr and exits with code 2.
    """


def choice_error(kind: str, value: object, allowed: object) -> AutoaugError:
    """``unknown <kind> 'value'; choose from: a, b, c``."""
    names = ", ".join(str(a) for a in allowed)
    return AutoaugError(f"unknown {kind} {value!r}; choose from: {names}")

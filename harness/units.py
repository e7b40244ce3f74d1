"""Parsing of human units on the command line and in scenario files."""

from __future__ import annotations

import re

from harness.errors import UsageError

_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|min|h)?\s*$")
_SECONDS_PER_UNIT = {"ms": 0.001, "s": 1.0, "m": 60.0, "min": 60.0, "h": 3600.0}


def parse_duration(text: str | float | int, *, what: str = "duration") -> float:
    """Return seconds for ``"10s"``, ``"500ms"``, ``"2m"``, ``"1.5"`` (seconds) or a number.

    >>> parse_duration("2m")
    120.0
    """
    if isinstance(text, bool):
        raise UsageError(f"{what}: expected a duration like '10s', '500ms' or '2m', got {text!r}")
    if isinstance(text, int | float):
        seconds = float(text)
    else:
        match = _DURATION_RE.match(text)
        if match is None:
            raise UsageError(
                f"{what}: expected a duration like '10s', '500ms' or '2m', got {text!r}"
            )
        seconds = float(match.group(1)) * _SECONDS_PER_UNIT[match.group(2) or "s"]
    if seconds < 0:
        raise UsageError(f"{what}: expected a duration >= 0, got {text!r}")
    return seconds

"""Parsing of human units on the command line and in scenario files."""

from __future__ import annotations

import re

from harness.errors import UsageError

# The longest a trial, or any load the harness sends, may last: a bound on every load loop.
MAX_DURATION_S = 3600.0

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


_SIZE_RE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$")
_BYTES_PER_UNIT = {"B": 1, "KiB": 1024, "MiB": 1024 ** 2, "GiB": 1024 ** 3}
SIZE_EXAMPLE = "a size like '64KiB', '1MiB' or 512 (bytes)"


def parse_size(text: str | int, *, what: str = "size") -> int:
    """Return bytes for ``"64KiB"``, ``"16MiB"``, ``"512B"``, ``"512"`` or an integer.

    Binary units only (KiB, MiB, GiB: powers of 1024), so a size is never ambiguous between
    1000 and 1024.

    >>> parse_size("16MiB")
    16777216
    """
    if isinstance(text, bool) or not isinstance(text, int | str):
        raise UsageError(f"{what}: expected {SIZE_EXAMPLE}, got {text!r}")
    if isinstance(text, int):
        size = text
    else:
        match = _SIZE_RE.match(text)
        if match is None:
            raise UsageError(f"{what}: expected {SIZE_EXAMPLE}, got {text!r}")
        size = int(match.group(1)) * _BYTES_PER_UNIT[match.group(2) or "B"]
    if size < 0:
        raise UsageError(f"{what}: expected a size >= 0, got {text!r}")
    return size


def format_size(size: int, *, sep: str = " ") -> str:
    """The largest binary unit that divides ``size``: ``16 MiB``, ``64 KiB``, ``1000 B``;
    ``sep=""`` gives a file-name-safe ``16MiB``."""
    for unit in ("GiB", "MiB", "KiB"):
        factor = _BYTES_PER_UNIT[unit]
        if size >= factor and size % factor == 0:
            return f"{size // factor}{sep}{unit}"
    return f"{size}{sep}B"

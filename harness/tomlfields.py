"""Typed access to one table of a TOML file, with errors that name the file and the field, and
a record of every key read, so that a key nothing read (a misspelt ``duraton``) is refused
instead of silently becoming the default."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from harness.errors import UsageError
from harness.registry import did_you_mean
from harness.units import MAX_DURATION_S, parse_duration


class Fields:
    """Typed access to one TOML table with errors that name the file and the field.

    Every key read (or asked about) is remembered, so that after parsing ``check_unknown``
    can refuse a key nobody reads: a misspelt ``duraton`` must not silently become the default.
    """

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = "",
                 tables: list[Fields] | None = None) -> None:
        self.source = source
        self.table = table
        self.prefix = prefix
        self.read: set[str] = set()
        self.tables = tables if tables is not None else []
        self.tables.append(self)

    def fail(self, key: str, expected: str, got: object) -> UsageError:
        return UsageError(f"{self.source}: field '{self.prefix}{key}': expected {expected}, "
                          f"got {got!r}")

    def get(self, key: str, default: object = None) -> Any:
        self.read.add(key)
        return self.table.get(key, default)

    def sub(self, key: str) -> Fields:
        value = self.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return Fields(self.source, value, f"{self.prefix}{key}.", self.tables)

    def has(self, key: str) -> bool:
        self.read.add(key)
        return key in self.table

    def check_unknown(self) -> None:
        """UsageError naming the file, the table and the first key that nothing read."""
        for fields in self.tables:
            unknown = sorted(set(fields.table) - fields.read)
            if unknown:
                key = unknown[0]
                where = f"table [{fields.prefix.rstrip('.')}]" if fields.prefix \
                    else "the top level"
                raise UsageError(
                    f"{fields.source}: unknown key '{key}' in {where}"
                    f"{did_you_mean(key, sorted(fields.read))}: expected one of "
                    f"{', '.join(sorted(fields.read))}")

    def string(self, key: str, default: str | None = None) -> str:
        value = self.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def duration(self, key: str, default: str | float) -> float:
        value = self.get(key, default)
        try:
            seconds = parse_duration(value, what=key)
        except UsageError:
            raise self.fail(key, "a duration like '10s' or '500ms'", value) from None
        if seconds > MAX_DURATION_S:
            raise self.fail(key, f"a duration of at most {MAX_DURATION_S:g}s", value)
        return seconds

    def positive_int(self, key: str, default: int, *, maximum: int | None = None) -> int:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(key, "a positive integer", value)
        if maximum is not None and value > maximum:
            raise self.fail(key, f"an integer of at most {maximum}", value)
        return value

    def positive_float(self, key: str, default: float) -> float:
        value = self.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise self.fail(key, "a positive number", value)
        return float(value)

    def int_list(self, key: str, *, maximum: int, default: tuple[int, ...] = ()) -> tuple[int, ...]:
        value = self.get(key, list(default))
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= maximum for v in value
        ):
            raise self.fail(key, f"a list of integers between 1 and {maximum}", value)
        return tuple(value)

    def rate_list(self, key: str) -> tuple[float, ...]:
        value = self.get(key, [])
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in value
        ):
            raise self.fail(key, "a list of positive rates in requests per second", value)
        return tuple(float(v) for v in value)

    def string_list(self, key: str, default: list[str]) -> tuple[str, ...]:
        value = self.get(key, default)
        if not isinstance(value, list) or not value or any(
            not isinstance(v, str) or not v for v in value
        ):
            raise self.fail(key, "a non-empty list of strings", value)
        return tuple(value)

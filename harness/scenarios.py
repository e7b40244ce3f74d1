"""Scenario files (scenarios/NAME.toml): load and validate them into typed objects.

A scenario says what to send (endpoint and parameters), at which load levels (a closed-loop
concurrency sweep and/or an open-loop rate sweep), for how long, how often, and against which
servers by default. Validation happens before anything starts: an error names the file, the
field and what was expected.
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from harness.errors import UsageError
from harness.units import parse_duration

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
Kind = Literal["hello", "io", "cpu", "json", "websocket"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_CONCURRENCY = 10_000  # the generator holds this many connections, not more
MAX_DURATION_S = 3600.0  # one trial; a bound on every load loop
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 2048  # open loop: connections opened to keep up with the schedule


@dataclass(frozen=True, kw_only=True)
class Timing:
    warmup_s: float
    duration_s: float
    repeat: int


@dataclass(frozen=True, kw_only=True)
class Levels:
    concurrency: tuple[int, ...] = ()
    rate: tuple[float, ...] = ()


@dataclass(frozen=True, kw_only=True)
class Scenario:
    """A validated scenario. ``quick`` holds the short levels and timing used by ``--quick``."""

    name: str
    description: str
    kind: Kind
    path: str  # request path with query, e.g. "/io?ms=50"
    method: str
    app: str
    servers: tuple[str, ...]
    needs_upstream: bool
    levels: Levels
    timing: Timing
    quick_levels: Levels
    quick_timing: Timing
    timeout_s: float
    max_connections: int
    source: str
    sha256: str
    raw: Mapping[str, Any] = field(repr=False)

    def summary(self) -> dict[str, Any]:
        """What run.json records about the scenario."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "endpoint": self.path,
            "method": self.method,
            "app": self.app,
            "servers": list(self.servers),
            "needs_upstream": self.needs_upstream,
            "source": self.source,
            "hash": f"sha256:{self.sha256}",
            "definition": dict(self.raw),
        }


class _Fields:
    """Typed access to one TOML table with errors that name the file and the field."""

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = "") -> None:
        self.source = source
        self.table = table
        self.prefix = prefix

    def fail(self, key: str, expected: str, got: object) -> UsageError:
        return UsageError(f"{self.source}: field '{self.prefix}{key}': expected {expected}, "
                          f"got {got!r}")

    def sub(self, key: str) -> _Fields:
        value = self.table.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return _Fields(self.source, value, f"{self.prefix}{key}.")

    def has(self, key: str) -> bool:
        return key in self.table

    def string(self, key: str, default: str | None = None) -> str:
        value = self.table.get(key, default)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(key, "a non-empty string", value)
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false", value)
        return value

    def duration(self, key: str, default: str | float) -> float:
        value = self.table.get(key, default)
        try:
            seconds = parse_duration(value, what=key)
        except UsageError:
            raise self.fail(key, "a duration like '10s' or '500ms'", value) from None
        if seconds > MAX_DURATION_S:
            raise self.fail(key, f"a duration of at most {MAX_DURATION_S:g}s", value)
        return seconds

    def positive_int(self, key: str, default: int, *, maximum: int | None = None) -> int:
        value = self.table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
            raise self.fail(key, "a positive integer", value)
        if maximum is not None and value > maximum:
            raise self.fail(key, f"an integer of at most {maximum}", value)
        return value

    def int_list(self, key: str, *, maximum: int) -> tuple[int, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int) or not 0 < v <= maximum for v in value
        ):
            raise self.fail(key, f"a list of integers between 1 and {maximum}", value)
        return tuple(value)

    def rate_list(self, key: str) -> tuple[float, ...]:
        value = self.table.get(key, [])
        if not isinstance(value, list) or any(
            isinstance(v, bool) or not isinstance(v, int | float) or v <= 0 for v in value
        ):
            raise self.fail(key, "a list of positive rates in requests per second", value)
        return tuple(float(v) for v in value)

    def string_list(self, key: str, default: list[str]) -> tuple[str, ...]:
        value = self.table.get(key, default)
        if not isinstance(value, list) or not value or any(
            not isinstance(v, str) or not v for v in value
        ):
            raise self.fail(key, "a non-empty list of strings", value)
        return tuple(value)


def _levels(fields: _Fields, what: str) -> Levels:
    levels = Levels(
        concurrency=fields.int_list("concurrency", maximum=MAX_CONCURRENCY),
        rate=fields.rate_list("rate"),
    )
    if not levels.concurrency and not levels.rate:
        raise UsageError(f"{fields.source}: table '{what}': expected at least one of "
                         "'concurrency' (closed loop) or 'rate' (open loop)")
    return levels


def _timing(fields: _Fields, default: Timing | None) -> Timing:
    return Timing(
        warmup_s=fields.duration("warmup", default.warmup_s if default else "2s"),
        duration_s=fields.duration("duration", default.duration_s if default else "10s"),
        repeat=fields.positive_int("repeat", default.repeat if default else 1, maximum=100),
    )


def parse_scenario(text: str, source: str) -> Scenario:
    """Validate the TOML text of a scenario; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    top = _Fields(source, data)
    known = {"name", "description", "kind", "app", "servers", "request", "upstream", "load",
             "timing", "quick"}
    unknown = sorted(set(data) - known)
    if unknown:
        raise UsageError(f"{source}: unknown field '{unknown[0]}': expected one of "
                         f"{', '.join(sorted(known))}")
    kind = top.string("kind")
    if kind not in KINDS:
        raise top.fail("kind", f"one of {', '.join(KINDS)}", kind)
    if kind == "websocket":
        raise top.fail("kind", "an HTTP scenario (the WebSocket runner is not built yet)", kind)

    request = top.sub("request")
    path = request.string("path")
    if not path.startswith("/"):
        raise request.fail("path", "a path starting with '/'", path)
    params = request.table.get("params", {})
    if not isinstance(params, dict) or any(
        isinstance(v, bool) or not isinstance(v, str | int | float) for v in params.values()
    ):
        raise request.fail("params", "a table of strings and numbers", params)
    if params:
        path = f"{path}?{urlencode(params)}"
    method = request.string("method", "GET").upper()

    load = top.sub("load")
    timing = _timing(top.sub("timing"), None)
    quick = top.sub("quick")
    quick_levels = _levels(quick, "quick") if quick.has("concurrency") or quick.has("rate") \
        else _levels(load, "load")
    upstream = top.sub("upstream")
    return Scenario(
        name=top.string("name"),
        description=top.string("description"),
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        path=path,
        method=method,
        app=top.string("app", "raw"),
        servers=top.string_list("servers", []),
        needs_upstream=upstream.boolean("enabled", kind == "io"),
        levels=_levels(load, "load"),
        timing=timing,
        quick_levels=quick_levels,
        quick_timing=_timing(quick, Timing(warmup_s=0.5, duration_s=2.0, repeat=1)),
        timeout_s=load.duration("timeout", DEFAULT_TIMEOUT_S),
        max_connections=load.positive_int("max_connections", DEFAULT_MAX_CONNECTIONS,
                                          maximum=MAX_CONCURRENCY),
        source=source,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        raw=data,
    )


def available() -> list[str]:
    """Names of the scenarios shipped in scenarios/."""
    return sorted(p.stem for p in SCENARIO_DIR.glob("*.toml"))


def load_scenario(name_or_path: str) -> Scenario:
    """A scenario by name (scenarios/NAME.toml) or by path to a TOML file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml" or "/" in name_or_path:
        path = candidate
    else:
        path = SCENARIO_DIR / f"{name_or_path}.toml"
        if not path.is_file():
            raise UsageError(f"unknown scenario {name_or_path!r}: expected one of "
                             f"{', '.join(available())} or a path to a .toml file")
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"{path}: cannot read scenario: {exc.strerror}") from None
    return parse_scenario(text, str(path))

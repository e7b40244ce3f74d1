"""Scenario files (scenarios/NAME.toml): load and validate them into typed objects.

A scenario says what to send (endpoint and parameters), at which load levels (a closed-loop
concurrency sweep and/or an open-loop rate sweep), for how long, how often, and against which
servers by default. Validation happens before anything starts: an error names the file, the
field and what was expected.
"""

from __future__ import annotations

import dataclasses
import hashlib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, get_args
from urllib.parse import urlencode

from harness.errors import UsageError
from harness.loadgen.spec import (
    BROADCAST_HEADER_BYTES,
    DEFAULT_MESSAGE_SIZE_BYTES,
    MAX_MESSAGE_SIZE_BYTES,
    MAX_MIX_KINDS,
    RequestKind,
    parse_header,
)
from harness.registry import did_you_mean
from harness.slo import SearchPolicy, Slo, parse_slo
from harness.units import SIZE_EXAMPLE, format_size, parse_duration, parse_size
from harness.uploads import MAX_UPLOAD_BYTES

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
Kind = Literal["hello", "io", "cpu", "json", "db", "stream", "websocket", "upload",
               "background", "disconnect", "mixed"]
KINDS: tuple[str, ...] = get_args(Kind)
MAX_CONCURRENCY = 10_000  # the generator holds this many connections, not more
MAX_DURATION_S = 3600.0  # one trial; a bound on every load loop
DEFAULT_TIMEOUT_S = 10.0
DEFAULT_MAX_CONNECTIONS = 2048  # open loop: connections opened to keep up with the schedule
# WebSocket open loop: the connections opened up front that carry the messages
DEFAULT_WS_CONNECTIONS = 256


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
class WebSocketLevels:
    """A WebSocket scenario's levels beyond the echo loops (``[websocket]``).

    Echo: every closed- and open-loop level of ``[load]`` runs once per message size.
    Broadcast: one publisher at ``broadcast_rate`` messages/s to each subscriber count.
    Idle: each count of connections held without a message.
    """

    message_sizes: tuple[int, ...] = (DEFAULT_MESSAGE_SIZE_BYTES,)
    text: bool = False
    broadcast_path: str = "/ws/broadcast"
    broadcast_subscribers: tuple[int, ...] = ()
    broadcast_rate: float = 100.0
    broadcast_message_size: int = DEFAULT_MESSAGE_SIZE_BYTES
    idle_connections: tuple[int, ...] = ()


# The app contract's bounds on /stream (apps/README.md).
MAX_STREAM_EVENTS = 10_000
MAX_STREAM_INTERVAL_S = 60.0
# Methods that carry an upload's body (the contract's /upload takes POST only).
UPLOAD_METHODS = ("POST", "PUT", "PATCH")
SlowMode = Literal["headers", "read"]
SLOW_MODES: tuple[str, ...] = get_args(SlowMode)


@dataclass(frozen=True, kw_only=True)
class SlowClientsLevels:
    """``[slow_clients]``: each closed-loop level runs once per count of slow clients held
    meanwhile (0: the baseline), each trickling its request headers (``headers``) or reading
    its answer (``read``, from ``path``) one byte every ``byte_interval_s``."""

    counts: tuple[int, ...]
    mode: SlowMode = "headers"
    byte_interval_s: float = 1.0
    path: str = "/hello"


@dataclass(frozen=True, kw_only=True)
class StreamShape:
    """``[stream]`` of a ``kind = "stream"`` scenario: each stream asks for ``events`` events
    ``interval_ms`` apart; ``[load] concurrency`` gives how many streams are held at once."""

    events: int
    interval_ms: float


@dataclass(frozen=True, kw_only=True)
class BackgroundShape:
    """``[background]`` of a ``kind = "background"`` scenario: each ``[load] concurrency`` is
    a level of requests whose answers start background work (harness.tasktrials), each client
    pausing ``think_s`` after each answer; with ``sigterm``, one more level at the last
    concurrency, the last of every target's, stops the server with SIGTERM halfway through and
    counts the tasks it lost."""

    sigterm: bool = True
    think_s: float = 0.0


# [disconnect]'s defaults: 5 s of events 100 ms apart, three read before the client leaves
DISCONNECT_EVENTS = 50
DISCONNECT_READ = 3


@dataclass(frozen=True, kw_only=True)
class DisconnectShape:
    """``[disconnect]`` of a ``kind = "disconnect"`` scenario: each of ``[load] concurrency``
    clients asks for a stream of ``events`` events ``interval_ms`` apart, reads ``read`` of
    them and leaves; the server's task log says when it stopped producing for each."""

    events: int
    interval_ms: float
    read: int


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
    # PostgreSQL with TechEmpower's tables (harness.services.database), for the database routes
    needs_database: bool
    levels: Levels
    timing: Timing
    quick_levels: Levels
    quick_timing: Timing
    timeout_s: float
    max_connections: int
    headers: tuple[tuple[str, str], ...]
    body: bytes
    websocket: WebSocketLevels | None
    quick_websocket: WebSocketLevels | None
    slow_clients: SlowClientsLevels | None
    stream: StreamShape | None
    background: BackgroundShape | None = None
    disconnect: DisconnectShape | None = None
    # ``kind = "upload"``: each closed-loop level runs once per body size, in bytes
    # (``[upload] sizes``; ``[quick] upload_sizes`` under --quick)
    upload_sizes: tuple[int, ...] = ()
    quick_upload_sizes: tuple[int, ...] = ()
    # ``[[mix]]``: several kinds of request in proportion to their weights (``kind = "mixed"``);
    # ``path`` is then the first kind's
    mix: tuple[RequestKind, ...] = ()
    # ``[quick] servers`` and ``app``: a smaller set of targets under --quick (default: all)
    quick_servers: tuple[str, ...] = ()
    quick_app: str | None = None
    slo: Slo | None
    search: SearchPolicy
    source: str
    sha256: str
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def endpoint(self) -> str:
        """What it sends, as results name it: the path, or each kind of a mix with its
        share ("95% light /io?ms=20, 5% heavy /cpu?n=3000")."""
        if not self.mix:
            return self.path
        total = sum(kind.weight for kind in self.mix)
        return ", ".join(f"{kind.weight / total:.0%} {kind.name} {kind.path}" for kind in self.mix)

    @property
    def needs_task_log(self) -> bool:
        """Whether its levels read the app's task log (apps/raw/tasklog.py)."""
        return self.background is not None or self.disconnect is not None

    def summary(self) -> dict[str, Any]:
        """What run.json records about the scenario."""
        return {
            "name": self.name,
            "description": self.description,
            "kind": self.kind,
            "endpoint": self.endpoint,
            "method": self.method,
            "headers": [f"{name}: {value}" for name, value in self.headers],
            "body_bytes": len(self.body),
            "app": self.app,
            "servers": list(self.servers),
            "needs_upstream": self.needs_upstream,
            "needs_database": self.needs_database,
            "source": self.source,
            "hash": f"sha256:{self.sha256}",
            "websocket": dataclasses.asdict(self.websocket) if self.websocket else None,
            "definition": dict(self.raw),
        }


class _Fields:
    """Typed access to one TOML table with errors that name the file and the field.

    Every key read (or asked about) is remembered, so that after parsing ``check_unknown``
    can refuse a key nobody reads: a misspelt ``duraton`` must not silently become the default.
    """

    def __init__(self, source: str, table: Mapping[str, Any], prefix: str = "",
                 tables: list[_Fields] | None = None) -> None:
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

    def sub(self, key: str) -> _Fields:
        value = self.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, "a table", value)
        return _Fields(self.source, value, f"{self.prefix}{key}.", self.tables)

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


def _levels(fields: _Fields, what: str, *, optional: bool = False) -> Levels:
    levels = Levels(
        concurrency=fields.int_list("concurrency", maximum=MAX_CONCURRENCY),
        rate=fields.rate_list("rate"),
    )
    if not levels.concurrency and not levels.rate and not optional:
        raise UsageError(f"{fields.source}: table '{what}': expected at least one of "
                         "'concurrency' (closed loop) or 'rate' (open loop)")
    return levels


def _websocket(fields: _Fields, default: WebSocketLevels) -> WebSocketLevels:
    """``[websocket]`` (or the same keys in ``[quick]``, falling back to ``default``)."""
    sizes = fields.int_list("message_sizes", maximum=MAX_MESSAGE_SIZE_BYTES,
                            default=default.message_sizes)
    broadcast_size = fields.positive_int("broadcast_message_size",
                                         default.broadcast_message_size,
                                         maximum=MAX_MESSAGE_SIZE_BYTES)
    if broadcast_size < BROADCAST_HEADER_BYTES:
        raise fields.fail("broadcast_message_size",
                          f"at least {BROADCAST_HEADER_BYTES} bytes", broadcast_size)
    path = fields.string("broadcast_path", default.broadcast_path)
    if not path.startswith("/"):
        raise fields.fail("broadcast_path", "a path starting with '/'", path)
    return WebSocketLevels(
        message_sizes=sizes,
        text=fields.boolean("text", default.text),
        broadcast_path=path,
        broadcast_subscribers=fields.int_list("broadcast_subscribers", maximum=MAX_CONCURRENCY,
                                              default=default.broadcast_subscribers),
        broadcast_rate=fields.positive_float("broadcast_rate", default.broadcast_rate),
        broadcast_message_size=broadcast_size,
        idle_connections=fields.int_list("idle_connections", maximum=MAX_CONCURRENCY,
                                         default=default.idle_connections),
    )


def _slow_clients(fields: _Fields, path: str) -> SlowClientsLevels | None:
    """``[slow_clients]`` (None when the scenario has no such table)."""
    counts = fields.get("counts")
    if counts is None:  # other keys of the table are then unknown ones, refused at the end
        return None
    if (not isinstance(counts, list) or not counts or len(set(counts)) != len(counts)
            or any(isinstance(c, bool) or not isinstance(c, int) or not 0 <= c <= MAX_CONCURRENCY
                   for c in counts)):
        raise fields.fail("counts", f"a list of distinct integers 0..{MAX_CONCURRENCY}", counts)
    mode = fields.string("mode", "headers")
    if mode not in SLOW_MODES:
        raise fields.fail("mode", f"one of {', '.join(SLOW_MODES)}", mode)
    slow_path = fields.string("path", path)
    if not slow_path.startswith("/"):
        raise fields.fail("path", "a path starting with '/'", slow_path)
    return SlowClientsLevels(counts=tuple(counts), mode=mode,  # type: ignore[arg-type]
                             byte_interval_s=fields.duration("byte_interval", 1.0),
                             path=slow_path)


def _stream(fields: _Fields) -> StreamShape:
    """``[stream]``: ``events`` (1..10000) and ``interval`` ("100ms") of each stream."""
    interval_s = fields.duration("interval", 0.1)
    if interval_s > MAX_STREAM_INTERVAL_S:
        raise fields.fail("interval", f"at most {MAX_STREAM_INTERVAL_S:g}s", interval_s)
    return StreamShape(events=fields.positive_int("events", 20, maximum=MAX_STREAM_EVENTS),
                       interval_ms=interval_s * 1000)


def _upload_sizes(fields: _Fields, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
    """``[upload] sizes = ["64KiB", "1MiB", "16MiB"]`` (or ``[quick] upload_sizes``): distinct
    body sizes from 1 byte to the app contract's limit (64 MiB), each a string with a binary
    unit or a number of bytes."""
    value = fields.get(key, list(default) if default else None)
    expected = (f"a non-empty list of distinct sizes from 1 B to {format_size(MAX_UPLOAD_BYTES)} "
                f"(the app contract's limit on /upload), each {SIZE_EXAMPLE}")
    if not isinstance(value, list) or not value:
        raise fields.fail(key, expected, value)
    try:
        sizes = tuple(parse_size(v, what=key) for v in value)
    except UsageError:
        raise fields.fail(key, expected, value) from None
    if len(set(sizes)) != len(sizes) or any(not 1 <= s <= MAX_UPLOAD_BYTES for s in sizes):
        raise fields.fail(key, expected, value)
    return sizes


def _upload_request(request: _Fields, method: str, body: str, levels: tuple[Levels, Levels],
                    slo: Slo | None) -> str:
    """An upload scenario's method (POST unless given) after checking what it cannot have:
    a body of its own (the harness makes each size's), open-loop rates or an objective (the
    uploads run closed-loop only)."""
    if body:
        raise request.fail("body", "no body in an upload scenario (the harness sends a body "
                           "of each [upload] size)", body)
    if not request.table.get("method"):
        method = "POST"
    if method not in UPLOAD_METHODS:
        raise request.fail("method", f"one of {', '.join(UPLOAD_METHODS)} in an upload "
                           "scenario", method)
    if any(lv.rate for lv in levels):
        raise UsageError(f"{request.source}: an upload scenario runs closed-loop levels only: "
                         "expected [load] 'concurrency', not 'rate'")
    if slo is not None:
        raise UsageError(f"{request.source}: table 'slo': an upload scenario runs closed-loop "
                         "levels only: expected no objective (the capacity search is open-loop)")
    return method


def _task_shapes(top: _Fields, kind: str, levels: tuple[Levels, Levels], slo: Slo | None
                 ) -> tuple[BackgroundShape | None, DisconnectShape | None]:
    """``[background]`` and ``[disconnect]``, each only in a scenario of its kind, which runs
    closed-loop levels only and has no objective (its levels are not requests to search)."""
    for name in ("background", "disconnect"):
        if name != kind and top.has(name):
            raise UsageError(f"{top.source}: table '{name}': expected kind = \"{name}\" (got "
                             f"kind = \"{kind}\")")
    if kind not in ("background", "disconnect"):
        return None, None
    if any(lv.rate for lv in levels) or not all(lv.concurrency for lv in levels):
        raise UsageError(f"{top.source}: a {kind} scenario runs closed-loop levels only: "
                         "expected [load] 'concurrency', not 'rate'")
    if slo is not None:
        raise UsageError(f"{top.source}: table 'slo': a {kind} scenario has no capacity "
                         "search: expected no objective")
    fields = top.sub(kind)
    if kind == "background":
        return BackgroundShape(sigterm=fields.boolean("sigterm", True),
                               think_s=fields.duration("think", 0.0)), None
    interval_s = fields.duration("interval", 0.1)
    if interval_s > MAX_STREAM_INTERVAL_S:
        raise fields.fail("interval", f"at most {MAX_STREAM_INTERVAL_S:g}s", interval_s)
    events = fields.positive_int("events", DISCONNECT_EVENTS, maximum=MAX_STREAM_EVENTS)
    read = fields.positive_int("read", DISCONNECT_READ)
    if read >= events:
        raise fields.fail("read", f"fewer than events ({events}): the client leaves mid-stream",
                          read)
    return None, DisconnectShape(events=events, interval_ms=interval_s * 1000, read=read)


def _slo(fields: _Fields) -> tuple[Slo | None, SearchPolicy]:
    """``[slo]``: ``objective = "p99=100ms,errors=0.1%"`` and the search's bounds."""
    default = SearchPolicy()
    objective = fields.get("objective")
    slo = None
    if objective is not None:
        if not isinstance(objective, str):
            raise fields.fail("objective", "a string like 'p99=100ms'", objective)
        try:
            slo = parse_slo(objective, what=f"{fields.source}: field 'slo.objective'")
        except UsageError as exc:
            raise UsageError(str(exc)) from None
    resolution = fields.positive_float("resolution", default.resolution)
    if resolution >= 1:
        raise fields.fail("resolution", "a fraction below 1, like 0.05", resolution)
    search = SearchPolicy(
        start_rate=fields.positive_float("start_rate", default.start_rate),
        min_rate=fields.positive_float("min_rate", default.min_rate),
        max_rate=fields.positive_float("max_rate", default.max_rate),
        resolution=resolution,
        max_steps=fields.positive_int("max_steps", default.max_steps, maximum=100),
        warmup_s=fields.duration("warmup", 0.0) if fields.has("warmup") else None,
        duration_s=fields.duration("duration", 1.0) if fields.has("duration") else None,
    )
    return slo, search


def _timing(fields: _Fields, default: Timing | None) -> Timing:
    return Timing(
        warmup_s=fields.duration("warmup", default.warmup_s if default else "2s"),
        duration_s=fields.duration("duration", default.duration_s if default else "10s"),
        repeat=fields.positive_int("repeat", default.repeat if default else 1, maximum=100),
    )


def _path(request: _Fields) -> str:
    """``path`` with ``params`` as its query."""
    path = request.string("path")
    if not path.startswith("/"):
        raise request.fail("path", "a path starting with '/'", path)
    params = request.get("params", {})
    if not isinstance(params, dict) or any(
        isinstance(v, bool) or not isinstance(v, str | int | float) for v in params.values()
    ):
        raise request.fail("params", "a table of strings and numbers", params)
    return f"{path}?{urlencode(params)}" if params else path


def _mix(top: _Fields, method: str) -> tuple[RequestKind, ...]:
    """``[[mix]]``: each kind's ``name``, ``path`` (and ``params``) and ``weight``; only in a
    ``kind = "mixed"`` scenario, whose ``[request]`` then gives no path of its own."""
    value = top.get("mix", [])
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_MIX_KINDS \
            or not all(isinstance(v, dict) for v in value):
        raise top.fail("mix", f"an array of 2 to {MAX_MIX_KINDS} tables ([[mix]]), each with "
                       "name, path and weight", value)
    kinds = []
    for i, table in enumerate(value):
        fields = _Fields(top.source, table, f"mix[{i}].", top.tables)
        name = fields.string("name")
        if any(c in name for c in ",\r\n"):
            raise fields.fail("name", "a name without commas or line breaks", name)
        kinds.append(RequestKind(name=name, path=_path(fields), method=method,
                                 weight=fields.positive_float("weight", 1.0)))
    if len({kind.name for kind in kinds}) != len(kinds):
        raise top.fail("mix", "kinds with distinct names", [kind.name for kind in kinds])
    return tuple(kinds)


def _request(request: _Fields, *, mixed: bool = False,
             ) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """``[request]``: the path with its query, the method, the headers and the body (a mixed
    scenario's paths are its [[mix]] kinds')."""
    if mixed and request.has("path"):
        raise request.fail("path", "no path in a mixed scenario (each [[mix]] kind has its "
                           "own)", request.table["path"])
    path = "/" if mixed else _path(request)
    body = request.get("body", "")
    if not isinstance(body, str):
        raise request.fail("body", "a string (sent as UTF-8)", body)
    return path, request.string("method", "GET").upper(), _headers(request), body


def parse_scenario(text: str, source: str) -> Scenario:
    """Validate the TOML text of a scenario; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    top = _Fields(source, data)
    kind = top.string("kind")
    if kind not in KINDS:
        raise top.fail("kind", f"one of {', '.join(KINDS)}", kind)
    is_ws = kind == "websocket"

    request = top.sub("request")
    mixed = kind == "mixed"
    if not mixed and top.has("mix"):
        raise UsageError(f"{source}: [[mix]]: expected kind = \"mixed\" (got kind = "
                         f"\"{kind}\")")
    path, method, headers, body = _request(request, mixed=mixed)
    mix: tuple[RequestKind, ...] = ()
    if mixed:
        mix = _mix(top, method)
        path = mix[0].path

    load = top.sub("load")
    timing = _timing(top.sub("timing"), None)
    quick = top.sub("quick")
    levels = _levels(load, "load", optional=is_ws)
    quick_levels = _levels(quick, "quick", optional=is_ws) \
        if quick.has("concurrency") or quick.has("rate") else levels
    websocket = quick_websocket = None
    if is_ws:
        websocket = _websocket(top.sub("websocket"), WebSocketLevels())
        quick_websocket = _websocket(quick, websocket)
        if not (levels.concurrency or levels.rate or websocket.broadcast_subscribers
                or websocket.idle_connections):
            raise UsageError(f"{source}: expected at least one level: [load] 'concurrency' or "
                             "'rate' (echo), or [websocket] 'broadcast_subscribers' or "
                             "'idle_connections'")
    slo, search = _slo(top.sub("slo"))
    slow = _slow_clients(top.sub("slow_clients"), path)
    stream = _stream(top.sub("stream")) if kind == "stream" else None
    background, disconnect = _task_shapes(top, kind, (levels, quick_levels), slo)
    if slow is not None and (is_ws or not levels.concurrency):
        raise UsageError(f"{source}: table 'slow_clients': expected an HTTP scenario with "
                         "closed-loop levels ([load] 'concurrency') to run beside them")
    upload_sizes: tuple[int, ...] = ()
    quick_upload_sizes: tuple[int, ...] = ()
    if kind == "upload":
        method = _upload_request(request, method, body, (levels, quick_levels), slo)
        upload_sizes = _upload_sizes(top.sub("upload"), "sizes", ())
        quick_upload_sizes = _upload_sizes(quick, "upload_sizes", upload_sizes)
    elif top.has("upload"):
        raise UsageError(f"{source}: table 'upload': expected kind = \"upload\" (got kind = "
                         f"\"{kind}\")")
    upstream = top.sub("upstream")
    database = top.sub("database")
    scenario = Scenario(
        name=top.string("name"),
        description=top.string("description"),
        kind=kind,  # type: ignore[arg-type]  # checked against KINDS above
        path=path,
        method=method,
        app=top.string("app", "raw"),
        servers=top.string_list("servers", []),
        needs_upstream=upstream.boolean("enabled", kind == "io"),
        needs_database=database.boolean("enabled", kind == "db"),
        levels=levels,
        timing=timing,
        quick_levels=quick_levels,
        quick_timing=_timing(quick, Timing(warmup_s=0.5, duration_s=2.0, repeat=1)),
        timeout_s=load.duration("timeout", DEFAULT_TIMEOUT_S),
        max_connections=load.positive_int(
            "max_connections", DEFAULT_WS_CONNECTIONS if is_ws else DEFAULT_MAX_CONNECTIONS,
            maximum=MAX_CONCURRENCY),
        headers=headers,
        body=body.encode(),
        websocket=websocket,
        quick_websocket=quick_websocket,
        slow_clients=slow,
        stream=stream,
        background=background,
        disconnect=disconnect,
        upload_sizes=upload_sizes,
        quick_upload_sizes=quick_upload_sizes,
        mix=mix,
        quick_servers=quick.string_list("servers", []) if quick.has("servers") else (),
        quick_app=quick.string("app") if quick.has("app") else None,
        slo=slo,
        search=search,
        source=source,
        sha256=hashlib.sha256(text.encode()).hexdigest(),
        raw=data,
    )
    top.check_unknown()
    return scenario


def _headers(request: _Fields) -> tuple[tuple[str, str], ...]:
    """``[request] headers = { Name = "value" }``, checked as the generator checks --header."""
    value = request.get("headers", {})
    if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
        raise request.fail("headers", "a table of header names to string values", value)
    try:
        return tuple(parse_header(f"{name}: {text}") for name, text in value.items())
    except UsageError as exc:
        raise request.fail("headers", f"valid header names and values ({exc})", value) \
            from None


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

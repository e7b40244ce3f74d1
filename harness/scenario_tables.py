"""The tables of a scenario file, each parsed and checked on its own: the request, the load
levels, the timing, the objective, WebSocket's levels, and what a kind of scenario adds
(``[slow_clients]``, ``[stream]``, ``[upload]``, ``[background]``, ``[disconnect]``, ``[[mix]]``).
``harness.scenarios`` puts them together into a Scenario."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlencode

from harness.errors import UsageError
from harness.loadgen.slowclients import SLOW_MODES, SlowMode
from harness.loadgen.spec import (
    BROADCAST_HEADER_BYTES,
    DEFAULT_MESSAGE_SIZE_BYTES,
    MAX_MESSAGE_SIZE_BYTES,
    MAX_MIX_KINDS,
    RequestKind,
    parse_header,
)
from harness.slo import SearchPolicy, Slo, parse_slo
from harness.tomlfields import Fields
from harness.units import SIZE_EXAMPLE, format_size, parse_size
from harness.uploads import MAX_UPLOAD_BYTES

MAX_CONCURRENCY = 10_000  # the generator holds this many connections, not more
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


def parse_levels(fields: Fields, what: str, *, optional: bool = False) -> Levels:
    levels = Levels(
        concurrency=fields.int_list("concurrency", maximum=MAX_CONCURRENCY),
        rate=fields.rate_list("rate"),
    )
    if not levels.concurrency and not levels.rate and not optional:
        raise UsageError(f"{fields.source}: table '{what}': expected at least one of "
                         "'concurrency' (closed loop) or 'rate' (open loop)")
    return levels


def parse_websocket(fields: Fields, default: WebSocketLevels) -> WebSocketLevels:
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


def parse_slow_clients(fields: Fields, path: str) -> SlowClientsLevels | None:
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


def parse_stream(fields: Fields) -> StreamShape:
    """``[stream]``: ``events`` (1..10000) and ``interval`` ("100ms") of each stream."""
    interval_s = fields.duration("interval", 0.1)
    if interval_s > MAX_STREAM_INTERVAL_S:
        raise fields.fail("interval", f"at most {MAX_STREAM_INTERVAL_S:g}s", interval_s)
    return StreamShape(events=fields.positive_int("events", 20, maximum=MAX_STREAM_EVENTS),
                       interval_ms=interval_s * 1000)


def parse_upload_sizes(fields: Fields, key: str, default: tuple[int, ...]) -> tuple[int, ...]:
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


def parse_upload_request(request: Fields, method: str, body: str, levels: tuple[Levels, Levels],
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


def parse_task_shapes(top: Fields, kind: str, levels: tuple[Levels, Levels], slo: Slo | None
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


def parse_slo_table(fields: Fields) -> tuple[Slo | None, SearchPolicy]:
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


def parse_timing(fields: Fields, default: Timing | None) -> Timing:
    return Timing(
        warmup_s=fields.duration("warmup", default.warmup_s if default else "2s"),
        duration_s=fields.duration("duration", default.duration_s if default else "10s"),
        repeat=fields.positive_int("repeat", default.repeat if default else 1, maximum=100),
    )


def parse_path(request: Fields) -> str:
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


def parse_mix(top: Fields, method: str) -> tuple[RequestKind, ...]:
    """``[[mix]]``: each kind's ``name``, ``path`` (and ``params``) and ``weight``; only in a
    ``kind = "mixed"`` scenario, whose ``[request]`` then gives no path of its own."""
    value = top.get("mix", [])
    if not isinstance(value, list) or not 2 <= len(value) <= MAX_MIX_KINDS \
            or not all(isinstance(v, dict) for v in value):
        raise top.fail("mix", f"an array of 2 to {MAX_MIX_KINDS} tables ([[mix]]), each with "
                       "name, path and weight", value)
    kinds = []
    for i, table in enumerate(value):
        fields = Fields(top.source, table, f"mix[{i}].", top.tables)
        name = fields.string("name")
        if any(c in name for c in ",\r\n"):
            raise fields.fail("name", "a name without commas or line breaks", name)
        kinds.append(RequestKind(name=name, path=parse_path(fields), method=method,
                                 weight=fields.positive_float("weight", 1.0)))
    if len({kind.name for kind in kinds}) != len(kinds):
        raise top.fail("mix", "kinds with distinct names", [kind.name for kind in kinds])
    return tuple(kinds)


def parse_request(request: Fields, *, mixed: bool = False,
             ) -> tuple[str, str, tuple[tuple[str, str], ...], str]:
    """``[request]``: the path with its query, the method, the headers and the body (a mixed
    scenario's paths are its [[mix]] kinds')."""
    if mixed and request.has("path"):
        raise request.fail("path", "no path in a mixed scenario (each [[mix]] kind has its "
                           "own)", request.table["path"])
    path = "/" if mixed else parse_path(request)
    body = request.get("body", "")
    if not isinstance(body, str):
        raise request.fail("body", "a string (sent as UTF-8)", body)
    return path, request.string("method", "GET").upper(), parse_headers(request), body


def parse_headers(request: Fields) -> tuple[tuple[str, str], ...]:
    """``[request] headers = { Name = "value" }``, checked as the generator checks --header."""
    value = request.get("headers", {})
    if not isinstance(value, dict) or any(not isinstance(v, str) for v in value.values()):
        raise request.fail("headers", "a table of header names to string values", value)
    try:
        return tuple(parse_header(f"{name}: {text}") for name, text in value.items())
    except UsageError as exc:
        raise request.fail("headers", f"valid header names and values ({exc})", value) \
            from None

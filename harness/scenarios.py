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

from harness.errors import UsageError
from harness.loadgen.spec import RequestKind
from harness.scenario_tables import (
    DEFAULT_MAX_CONNECTIONS,
    DEFAULT_TIMEOUT_S,
    DEFAULT_WS_CONNECTIONS,
    MAX_CONCURRENCY,
    BackgroundShape,
    DisconnectShape,
    Levels,
    SlowClientsLevels,
    StreamShape,
    Timing,
    WebSocketLevels,
    parse_levels,
    parse_mix,
    parse_request,
    parse_slo_table,
    parse_slow_clients,
    parse_stream,
    parse_task_shapes,
    parse_timing,
    parse_upload_request,
    parse_upload_sizes,
    parse_websocket,
)
from harness.slo import SearchPolicy, Slo
from harness.tomlfields import Fields

SCENARIO_DIR = Path(__file__).resolve().parent.parent / "scenarios"
Kind = Literal["hello", "io", "cpu", "json", "db", "stream", "websocket", "upload",
               "background", "disconnect", "mixed"]


KINDS: tuple[str, ...] = get_args(Kind)


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


def parse_scenario(text: str, source: str) -> Scenario:
    """Validate the TOML text of a scenario; ``source`` names it in errors."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{source}: not valid TOML: {exc}") from None
    top = Fields(source, data)
    kind = top.string("kind")
    if kind not in KINDS:
        raise top.fail("kind", f"one of {', '.join(KINDS)}", kind)
    is_ws = kind == "websocket"

    request = top.sub("request")
    mixed = kind == "mixed"
    if not mixed and top.has("mix"):
        raise UsageError(f"{source}: [[mix]]: expected kind = \"mixed\" (got kind = "
                         f"\"{kind}\")")
    path, method, headers, body = parse_request(request, mixed=mixed)
    mix: tuple[RequestKind, ...] = ()
    if mixed:
        mix = parse_mix(top, method)
        path = mix[0].path

    load = top.sub("load")
    timing = parse_timing(top.sub("timing"), None)
    quick = top.sub("quick")
    levels = parse_levels(load, "load", optional=is_ws)
    quick_levels = parse_levels(quick, "quick", optional=is_ws) \
        if quick.has("concurrency") or quick.has("rate") else levels
    websocket = quick_websocket = None
    if is_ws:
        websocket = parse_websocket(top.sub("websocket"), WebSocketLevels())
        quick_websocket = parse_websocket(quick, websocket)
        if not (levels.concurrency or levels.rate or websocket.broadcast_subscribers
                or websocket.idle_connections):
            raise UsageError(f"{source}: expected at least one level: [load] 'concurrency' or "
                             "'rate' (echo), or [websocket] 'broadcast_subscribers' or "
                             "'idle_connections'")
    slo, search = parse_slo_table(top.sub("slo"))
    slow = parse_slow_clients(top.sub("slow_clients"), path)
    stream = parse_stream(top.sub("stream")) if kind == "stream" else None
    background, disconnect = parse_task_shapes(top, kind, (levels, quick_levels), slo)
    if slow is not None and (is_ws or not levels.concurrency):
        raise UsageError(f"{source}: table 'slow_clients': expected an HTTP scenario with "
                         "closed-loop levels ([load] 'concurrency') to run beside them")
    upload_sizes: tuple[int, ...] = ()
    quick_upload_sizes: tuple[int, ...] = ()
    if kind == "upload":
        method = parse_upload_request(request, method, body, (levels, quick_levels), slo)
        upload_sizes = parse_upload_sizes(top.sub("upload"), "sizes", ())
        quick_upload_sizes = parse_upload_sizes(quick, "upload_sizes", upload_sizes)
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
        quick_timing=parse_timing(quick, Timing(warmup_s=0.5, duration_s=2.0, repeat=1)),
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

"""Expand a request into trials (target x load level x repeat) and allocate the CPUs.

The server under test and the load generator get disjoint CPU sets, so neither steals the
other's time: on 2 cores the server gets CPU 1, the generator and the upstream delay service
CPU 0. The plan and an estimate of its duration are shown before anything starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from harness import catalogue
from harness.cpus import allocate_cpus
from harness.errors import UsageError
from harness.results import LoadModel
from harness.scenario_tables import (
    MAX_CONCURRENCY,
    Levels,
    SlowClientsLevels,
    Timing,
    WebSocketLevels,
)
from harness.scenarios import Scenario
from harness.services.database import check_url, max_connections
from harness.slo import OFF, SearchPolicy, Slo
from harness.units import format_size

# Estimated fixed costs, from watching runs on a 2-core machine: start + ready + verify + stop
# of one target, and the generator's own start and merge per trial.
TARGET_OVERHEAD_S = 4.0
TRIAL_OVERHEAD_S = 0.7
# A capacity search from half the closed-loop peak: a ramp step or two, then bisection to 5 %.
# In the time of 7 plain steps: io_bound's searches took 5.5 steps (33 searches, 8d9bbd0), and an
# overloaded step (1 in 7) takes 12 s, not 5, draining what it queued.
SEARCH_STEPS_ESTIMATE = 7
# A server started again during a capacity search (after a step that missed the objective) has
# its step's warm-up longer by this much: the levels warmed the first one (harness.runner).
SEARCH_REWARM_S = 1.0
# Searches restart the server about twice (io_bound, 8d9bbd0: 2.1 misses before the last step,
# 1-3; 2.9-3.0 before the ramp stopped overshooting to twice the closed-loop peak); each
# restart: start + ready + stop, no verify, and the longer warm-up.
SEARCH_RESTARTS_ESTIMATE = 2
SEARCH_RESTART_S = 0.5 + SEARCH_REWARM_S
# Before each background level the last one's tasks are let finish (0.3 s of quiet); a SIGTERM
# level then waits for the server to exit: 0.3 to 2.6 s, 1.0 s on average, over the 11 servers
# (background --quick, 2 CPUs); one that ignores SIGTERM takes the bound,
# harness.tasktrials.SIGTERM_EXIT_TIMEOUT_S.
TASK_SETTLE_ESTIMATE_S = 0.5
# The raw apps' import strings start so (harness.catalogue.apps): theirs log every stream's end.
RAW_APPS_PACKAGE = "apps.raw."
SIGTERM_EXIT_ESTIMATE_S = 1.5


@dataclass(frozen=True, kw_only=True)
class Level:
    """One load level: a closed-loop concurrency or an open-loop rate (HTTP requests or
    WebSocket echoes of ``message_size`` bytes); a WebSocket broadcast to ``concurrency``
    subscribers at ``rate`` messages/s; or ``concurrency`` idle WebSocket connections."""

    load_model: LoadModel
    concurrency: int | None = None
    rate: float | None = None
    message_size: int | None = None  # WebSocket only
    slow_clients: int | None = None  # "slow": held beside ``concurrency`` closed-loop clients
    upload_bytes: int | None = None  # an upload scenario's closed loop: each request's body

    @property
    def value(self) -> float:
        if self.load_model == "open":
            return float(self.rate or 0.0)
        if self.load_model == "slow":
            return float(self.slow_clients or 0)
        return float(self.concurrency or 0)

    def label(self) -> str:
        size = f" ({self.message_size} B)" if self.message_size is not None else ""
        if self.upload_bytes is not None:
            size = f" ({format_size(self.upload_bytes)} uploads)"
        if self.load_model == "slow":
            return f"{self.concurrency} conn + {self.slow_clients} slow"
        if self.load_model == "stream":
            return f"{self.concurrency} streams"
        if self.load_model == "background":
            return f"{self.concurrency} conn (background work)"
        if self.load_model == "sigterm":
            return f"{self.concurrency} conn + SIGTERM"
        if self.load_model == "disconnect":
            return f"{self.concurrency} leave a stream"
        if self.load_model == "closed":
            return f"{self.concurrency} conn{size}"
        if self.load_model == "open":
            return f"{self.rate:g} req/s{size}"
        if self.load_model == "broadcast":
            return f"broadcast {self.concurrency} subs @ {self.rate:g}/s{size}"
        return f"{self.concurrency} idle conn"


@dataclass(frozen=True, kw_only=True)
class PlannedTarget:
    """A server x app pair of the plan; unsupported pairs stay in the plan with the reason."""

    target: catalogue.Target
    supported: bool
    reason: str = ""
    # how the run names this target: the server, or server+family when the plan compares
    # several app families (trial ids, statuses and the console use it)
    key: str = ""

    @property
    def server(self) -> str:
        return self.target.server.name

    @property
    def name(self) -> str:
        return self.key or self.server


@dataclass(frozen=True, kw_only=True)
class DatabasePlan:
    """The database a plan's targets use: the user's own (``url``, seeded only when ``seed``)
    or, with no URL, a scratch cluster the harness starts on ``cpus`` allowing ``connections``
    (harness.services.database)."""

    url: str | None
    cpus: tuple[int, ...]
    seed: bool
    connections: int


@dataclass(frozen=True, kw_only=True)
class Plan:
    scenario: Scenario
    targets: tuple[PlannedTarget, ...]
    levels: tuple[Level, ...]
    timing: Timing
    server_cpus: tuple[int, ...]
    loadgen_cpus: tuple[int, ...]
    quick: bool
    # capacity at a latency objective: searched for each target after its levels
    slo: Slo | None = None
    search: SearchPolicy = field(default_factory=SearchPolicy)
    # capacity searches per target (None: one per repeat); rounds past timing.repeat start
    # each server for its search alone
    searches: int | None = None
    # pairs of capacity searches, best WSGI against best ASGI, after the plan (harness.runner)
    head_to_head: int = 0
    database: DatabasePlan | None = None

    @property
    def runnable(self) -> tuple[PlannedTarget, ...]:
        return tuple(t for t in self.targets if t.supported)

    @property
    def search_rounds(self) -> int:
        """How many rounds search each target's capacity (the first ones)."""
        if self.slo is None:
            return 0
        return self.searches if self.searches is not None else self.timing.repeat

    @property
    def rounds(self) -> int:
        """Rounds of every target, each on a freshly started server (harness.runner): the
        first timing.repeat run the levels, the first search_rounds the capacity search."""
        return max(self.timing.repeat, self.search_rounds)

    @property
    def trials_per_target(self) -> int:
        return len(self.levels) * self.timing.repeat

    @property
    def trial_count(self) -> int:
        return len(self.runnable) * self.trials_per_target

    @property
    def search_timing(self) -> Timing:
        """Each capacity-search step's warm-up and measured time."""
        return replace(self.timing,
                       warmup_s=self.search.warmup_s if self.search.warmup_s is not None
                       else self.timing.warmup_s,
                       duration_s=self.search.duration_s if self.search.duration_s is not None
                       else self.timing.duration_s)

    def estimate_s(self) -> float:
        per_trial = self.timing.warmup_s + self.timing.duration_s + TRIAL_OVERHEAD_S
        step = self.search_timing.warmup_s + self.search_timing.duration_s + TRIAL_OVERHEAD_S
        one_search = SEARCH_STEPS_ESTIMATE * step + SEARCH_RESTARTS_ESTIMATE * SEARCH_RESTART_S
        # every round starts every target again (harness.runner)
        plan = len(self.runnable) * (TARGET_OVERHEAD_S * self.rounds
                                     + self.trials_per_target * per_trial
                                     + one_search * self.search_rounds)
        # a task-log level first waits for the last one's tasks, a SIGTERM level for the exit
        plan += len(self.runnable) * self.timing.repeat * sum(
            TASK_SETTLE_ESTIMATE_S + (SIGTERM_EXIT_ESTIMATE_S if lv.load_model == "sigterm"
                                      else 0.0)
            for lv in self.levels if lv.load_model in ("background", "sigterm"))
        # two targets, each started again for each pair
        return plan + 2 * self.head_to_head * (TARGET_OVERHEAD_S + one_search)

    def summary(self) -> dict[str, Any]:
        return {
            "quick": self.quick,
            "levels": [{"load_model": lv.load_model, "concurrency": lv.concurrency,
                        "rate": lv.rate, "message_size": lv.message_size,
                        **({"slow_clients": lv.slow_clients}
                           if lv.slow_clients is not None else {}),
                        **({"upload_bytes": lv.upload_bytes}
                           if lv.upload_bytes is not None else {})}
                       for lv in self.levels],
            "warmup_s": self.timing.warmup_s,
            "duration_s": self.timing.duration_s,
            "repeat": self.timing.repeat,
            "trial_count": self.trial_count,
            "estimate_s": round(self.estimate_s(), 1),
            "slo": self.slo.to_dict() if self.slo is not None else None,
            "search": dataclasses.asdict(self.search) if self.slo is not None else None,
            "searches": self.search_rounds if self.slo is not None else None,
            "head_to_head": self.head_to_head,
        }


def _levels(levels: Levels, concurrency: Sequence[int] | None,
            rate: Sequence[float] | None,
            websocket: WebSocketLevels | None = None,
            slow: SlowClientsLevels | None = None, stream: bool = False,
            upload: Sequence[int] = ()) -> tuple[Level, ...]:
    # Levels given on the command line replace the scenario's; giving only one kind of level
    # means "only that kind" (for WebSocket: only echo levels of that kind).
    given = concurrency is not None or rate is not None
    if given:
        levels = Levels(concurrency=tuple(concurrency or ()), rate=tuple(rate or ()))
    if any(c > MAX_CONCURRENCY for c in levels.concurrency):
        raise UsageError(f"--concurrency: expected at most {MAX_CONCURRENCY} connections")
    if slow is not None:
        return tuple(Level(load_model="slow", concurrency=c, slow_clients=k)
                     for c in levels.concurrency for k in slow.counts)
    if stream:
        return tuple(Level(load_model="stream", concurrency=c) for c in levels.concurrency)
    if upload:
        if levels.rate:
            raise UsageError("--rate: an upload scenario runs closed-loop levels only: expected "
                             "--concurrency")
        return tuple(Level(load_model="closed", concurrency=c, upload_bytes=size)
                     for size in upload for c in levels.concurrency)
    if websocket is None:
        return tuple([Level(load_model="closed", concurrency=c) for c in levels.concurrency]
                     + [Level(load_model="open", rate=r) for r in levels.rate])
    out: list[Level] = []
    for size in websocket.message_sizes:
        out += [Level(load_model="closed", concurrency=c, message_size=size)
                for c in levels.concurrency]
        out += [Level(load_model="open", rate=r, message_size=size) for r in levels.rate]
    if not given:
        out += [Level(load_model="broadcast", concurrency=n, rate=websocket.broadcast_rate,
                      message_size=websocket.broadcast_message_size)
                for n in websocket.broadcast_subscribers]
        out += [Level(load_model="idle", concurrency=n) for n in websocket.idle_connections]
    return tuple(out)


def _task_levels(scenario: Scenario, levels: tuple[Level, ...], opts: PlanOptions
                 ) -> tuple[Level, ...]:
    """A background or disconnect scenario's levels (harness.tasktrials) from its closed-loop
    ones, and a background scenario's SIGTERM level at the last concurrency, last: it ends the
    server, and the next round starts a new one."""
    if not scenario.needs_task_log:
        return levels
    if opts.slo is not None and opts.slo is not OFF:
        raise UsageError(f"--slo: a {scenario.kind} scenario has no capacity search: expected "
                         "no objective")
    if any(lv.load_model != "closed" for lv in levels):
        raise UsageError(f"--rate: a {scenario.kind} scenario runs closed-loop levels only: "
                         "expected --concurrency")
    model: LoadModel = "background" if scenario.background is not None else "disconnect"
    out = [Level(load_model=model, concurrency=lv.concurrency) for lv in levels]
    if scenario.background is not None and scenario.background.sigterm and out:
        out.append(Level(load_model="sigterm", concurrency=out[-1].concurrency))
    return tuple(out)


def _families(app: str | catalogue.AppFamily) -> list[catalogue.AppFamily]:
    """``raw``, ``django,raw`` (compare families, each behind every server), or one family."""
    if isinstance(app, catalogue.AppFamily):
        return [app]
    names = [n.strip() for n in app.split(",") if n.strip()]
    if len(set(names)) != len(names) or not names:
        raise UsageError(f"--app: expected distinct family names like 'django,raw', got {app!r}")
    return [catalogue.get_app(name) for name in names]


@dataclass(frozen=True, kw_only=True)
class PlanOptions:
    """What is asked of a plan beyond its scenario (``harness run``'s flags): each None (or
    False) keeps the scenario's own choice."""

    servers: Sequence[str] | None = None
    app: str | catalogue.AppFamily | None = None  # ``raw``, ``django,raw``, or one family
    quick: bool = False
    concurrency: Sequence[int] | None = None
    rate: Sequence[float] | None = None
    duration_s: float | None = None
    warmup_s: float | None = None
    repeat: int | None = None
    server_cpus: Sequence[int] | None = None
    loadgen_cpus: Sequence[int] | None = None
    workers: int | None = None
    threads: int | None = None
    available_cpus: Sequence[int] | None = None  # the CPUs to allocate from (default: usable)
    slo: Slo | None = None  # OFF: no capacity search, even the scenario's
    searches: int | None = None
    head_to_head: int | None = None
    db_url: str | None = None  # the user's own database (default: start a scratch one)
    db_cpus: Sequence[int] | None = None  # the scratch database's CPUs (default: the generator's)
    db_seed: bool = False  # create and fill the tables in the user's own database


def build_plan(scenario: Scenario, options: PlanOptions | None = None) -> Plan:
    """Validate every choice and expand it; raises UsageError before anything starts."""
    opts = options if options is not None else PlanOptions()
    cpus = allocate_cpus(opts.available_cpus, server=opts.server_cpus, loadgen=opts.loadgen_cpus)
    timing = _timing(scenario, opts)
    for flag, value in (("--workers", opts.workers), ("--threads", opts.threads)):
        if value is not None and value <= 0:
            raise UsageError(f"{flag}: expected a positive integer, got {value}")
    levels = _levels(scenario.quick_levels if opts.quick else scenario.levels, opts.concurrency,
                     opts.rate, scenario.quick_websocket if opts.quick else scenario.websocket,
                     scenario.slow_clients, scenario.stream is not None,
                     scenario.quick_upload_sizes if opts.quick else scenario.upload_sizes)
    levels = _task_levels(scenario, levels, opts)
    if not levels and (opts.slo is None or opts.slo is OFF) and scenario.slo is None:
        raise UsageError("the plan has no load level: expected --concurrency or --rate")
    planned = _targets(scenario, opts, cpus=len(cpus.server))
    objective = _objective(scenario, opts)
    _check_search_rounds(opts, objective, planned)
    return Plan(scenario=scenario, targets=planned, levels=levels, timing=timing,
                server_cpus=cpus.server, loadgen_cpus=cpus.loadgen, quick=opts.quick,
                slo=objective, search=scenario.search, searches=opts.searches,
                head_to_head=opts.head_to_head or 0,
                database=_database(scenario, opts, planned, cpus.loadgen))


def _database(scenario: Scenario, opts: PlanOptions, planned: Sequence[PlannedTarget],
              loadgen_cpus: tuple[int, ...]) -> DatabasePlan | None:
    if not scenario.needs_database:
        for flag, value in (("--db-url", opts.db_url), ("--db-cpus", opts.db_cpus),
                            ("--db-seed", opts.db_seed or None)):
            if value is not None:
                raise UsageError(f"{flag}: scenario {scenario.name!r} uses no database: "
                                 "expected a database scenario (e.g. db_bound)")
        return None
    if opts.db_seed and opts.db_url is None:
        raise UsageError("--db-seed: expected --db-url (the harness's own database is always "
                         "seeded)")
    if opts.db_url is not None and opts.db_cpus is not None:
        raise UsageError("--db-cpus: the database at --db-url is not started by the harness")
    cpus = tuple(opts.db_cpus) if opts.db_cpus is not None else loadgen_cpus
    connections = max_connections(p.target.db_connections for p in planned if p.supported)
    return DatabasePlan(url=check_url(opts.db_url) if opts.db_url is not None else None,
                        cpus=cpus, seed=opts.db_seed, connections=connections)


def _timing(scenario: Scenario, opts: PlanOptions) -> Timing:
    timing = scenario.quick_timing if opts.quick else scenario.timing
    if opts.duration_s is not None:
        if opts.duration_s <= 0:
            raise UsageError("--duration: expected a duration above 0")
        timing = replace(timing, duration_s=opts.duration_s)
    if opts.warmup_s is not None:
        timing = replace(timing, warmup_s=opts.warmup_s)
    if opts.repeat is not None:
        if opts.repeat <= 0:
            raise UsageError(f"--repeat: expected a positive integer, got {opts.repeat}")
        timing = replace(timing, repeat=opts.repeat)
    return timing


def _targets(scenario: Scenario, opts: PlanOptions, *, cpus: int) -> tuple[PlannedTarget, ...]:
    """Every server x app family pair; ``cpus``: how many the server under test gets."""
    names = list(opts.servers) if opts.servers else list(
        scenario.quick_servers if opts.quick and scenario.quick_servers else scenario.servers)
    if len(set(names)) != len(names):
        raise UsageError(f"--servers: a server is named twice in {','.join(names)}")
    families = _families(opts.app if opts.app is not None
                         else scenario.quick_app if opts.quick and scenario.quick_app
                         else scenario.app)
    servers = [catalogue.get_server(name) for name in names]  # UsageError: the known names
    planned: list[PlannedTarget] = []
    for family in families:
        for server in servers:
            key = f"{server.name}+{family.name}" if len(families) > 1 else ""
            if server.gateway not in family.modules:
                # a pair that cannot work: a row of the plan, not an error
                target = catalogue.Target(server=server, family=family,
                                          preset=catalogue.preset_for(server, cpus))
                planned.append(PlannedTarget(
                    target=target, supported=False, key=key,
                    reason=f"app family {family.name!r} has no {server.gateway.upper()} app"))
                continue
            target = catalogue.make_target(server, app=family, cpus=cpus,
                                           workers=opts.workers, threads=opts.threads)
            ok, reason = catalogue.supports(server, websocket=scenario.kind == "websocket")
            if ok and scenario.kind == "websocket" and not family.websocket:
                ok, reason = False, (f"app family {family.name!r} has no WebSocket route on "
                                     f"{server.gateway.upper()}")
            if ok and scenario.needs_database and family.database is None:
                ok, reason = False, f"app family {family.name!r} has no database routes"
            if ok and scenario.kind == "upload" and "upload" not in family.long_lived:
                ok, reason = False, f"app family {family.name!r} has no /upload route"
            if ok and scenario.needs_task_log:
                ok, reason = _task_log_support(scenario, family)
            planned.append(PlannedTarget(target=target, supported=ok, reason=reason, key=key))
    return tuple(planned)


def _task_log_support(scenario: Scenario, family: catalogue.AppFamily) -> tuple[bool, str]:
    """Whether a family's apps write what a task-log scenario reads (apps/raw/tasklog.py):
    background tasks go through the contract's counters in every family that has the route;
    a stream's end is logged on both gateways by the raw apps only (the sync frameworks share
    the raw WSGI stream, common.sync_stream; an async framework's stream is its own code)."""
    if scenario.background is not None and "background" not in family.long_lived:
        return False, f"app family {family.name!r} has no /background route"
    if scenario.disconnect is not None and not all(
            module.startswith(RAW_APPS_PACKAGE) for module in family.modules.values()):
        return False, (f"app family {family.name!r} does not log its streams' ends: the raw "
                       "apps do (--app raw)")
    return True, ""


def _objective(scenario: Scenario, opts: PlanOptions) -> Slo | None:
    """The latency objective whose capacity is searched, if any."""
    # The scenario's objective runs with its own full plan; --quick, or levels given on the
    # command line, search only when --slo asks.
    own_plan = not opts.quick and opts.concurrency is None and opts.rate is None
    objective = opts.slo if opts.slo is not None else (scenario.slo if own_plan else None)
    if opts.slo is OFF:
        objective = None
    if objective is not None and scenario.kind == "websocket":
        raise UsageError("--slo: the capacity search runs HTTP requests; expected an HTTP "
                         "scenario, not a WebSocket one")
    if objective is not None and scenario.kind == "upload":
        raise UsageError("--slo: the capacity search runs open-loop requests without a body; "
                         "an upload scenario runs closed-loop levels only")
    return objective


def _check_search_rounds(opts: PlanOptions, objective: Slo | None,
                         planned: Sequence[PlannedTarget]) -> None:
    """--searches and --head-to-head need a capacity search (and head to head both gateways)."""
    searches, head_to_head = opts.searches, opts.head_to_head
    if searches is not None:
        if searches <= 0:
            raise UsageError(f"--searches: expected a positive integer, got {searches}")
        if objective is None:
            raise UsageError("--searches: the plan has no capacity search: expected --slo, or "
                             "a scenario with an [slo] table run with its own levels")
    if head_to_head is not None:
        if head_to_head <= 0:
            raise UsageError(f"--head-to-head: expected a positive number of pairs, got "
                             f"{head_to_head}")
        if objective is None:
            raise UsageError("--head-to-head: the plan has no capacity search: expected --slo, "
                             "or a scenario with an [slo] table run with its own levels")
        gateways = {p.target.server.gateway.lower() for p in planned if p.supported}
        if not {"wsgi", "asgi"} <= gateways:
            raise UsageError(f"--head-to-head: it compares the best WSGI server with the best "
                             f"ASGI one: expected servers of both gateways, got only "
                             f"{', '.join(sorted(gateways)).upper() or 'none'}")

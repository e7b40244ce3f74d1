"""The run folder: what a run writes, and how it is read back. Versioned.

Layout of one run folder (``results/<run-id>/`` by default)::

    run.json                       schema_version, command line, scenario + hash, environment,
                                   CPU sets, targets (server, preset, status, reason), status
    trials.csv                     one row per target x level x repeat (TRIAL_COLUMNS)
    histograms/<trial_id>.latency.hdr   HDR histogram of latency in microseconds, hdrh's encoding
    histograms/<trial_id>.service.hdr   open loop only: service time (from the actual send)
    histograms/<trial_id>.by-name.json  a locustfile's trials: per request name, its latency
                                   histogram (hdrh's encoding) and errors
    series/<trial_id>.csv          per second: second, requests (due in it: the latency
                                   sample), completed (successes answered in it: the
                                   throughput), errors, p50_ms, p99_ms, server_cpu_pct,
                                   server_rss_mb
    capacity.csv                   with a latency objective (--slo): one row per target and
                                   search, its capacity and the trials that prove it, and a
                                   head-to-head search's pair (CAPACITY_COLUMNS)

Every trial is appended (and flushed to disk) the moment it ends, so a crash or Ctrl-C loses
nothing measured before it. ``run.json`` is rewritten atomically at the start and at the end.
CPU percentages are percent of one CPU (100 = one core busy), as in top.

``run.json`` may carry ``notice``, a caution about the run that the report shows first in its
section (a run made up for tests says it is no measurement); ``harness run`` writes none.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any, Literal

from harness.units import format_size

# 2: trials.csv gains outcome (valid / overloaded / invalid), protocol, message_size,
# connections_at_end, memory_per_connection_kb, notes, phase, others_cpu_pct and steal_pct,
# and capacity.csv appears (capacity at a latency objective). A folder of version 1, or one
# written before a later column existed, is read in today's shape: harness.analysis.migrate
# holds every such fix, applied as the folder is loaded.
SCHEMA_VERSION = 2
READABLE_SCHEMA_VERSIONS = (1, 2)
RUN_FILE = "run.json"
TRIALS_FILE = "trials.csv"
CAPACITY_FILE = "capacity.csv"
# a request mix: one row per trial and kind of request (created with its first row)
KINDS_FILE = "kinds.csv"
KIND_COLUMNS = ("trial_id", "kind", "path", "share", "requests", "errors", "error_rate",
                "achieved_rps", "p50_ms", "p90_ms", "p99_ms", "p99_9_ms", "max_ms", "mean_ms",
                "service_p50_ms", "service_p99_ms")
HISTOGRAM_DIR = "histograms"
SERIES_DIR = "series"
# A trial is invalid when more than this fraction of its requests failed (DESIGN: 0.1 %).
ERROR_RATE_MAX = 0.001
SERIES_COLUMNS = ("second", "requests", "completed", "errors", "p50_ms", "p99_ms",
                  "server_cpu_pct", "server_rss_mb")


# closed / open loop (HTTP requests, or WebSocket echo round trips); a WebSocket broadcast
# (level: subscribers) or idle connections held (level: connections); requests that start
# background work, the same with a SIGTERM halfway, clients that leave a stream
# (harness.tasktrials)
LoadModel = Literal["closed", "open", "broadcast", "idle", "slow", "stream", "background",
                    "sigterm", "disconnect"]
Outcome = Literal["valid", "overloaded", "invalid"]


class TargetStatus(StrEnum):
    """A target's state in run.json (and the console, which shows ``label``)."""

    PENDING = "pending"
    UNSUPPORTED = "unsupported"  # the pair cannot work (a WSGI server, a WebSocket scenario)
    START_FAILED = "start_failed"
    VERIFY_FAILED = "verify_failed"
    RUNNING = "running"
    OK = "ok"
    FAILED = "failed"  # a trial could not be measured, the server still up
    DIED = "died"  # the server exited during the run

    @property
    def label(self) -> str:
        return self.value.replace("_", " ")


class TrialStatus(StrEnum):
    """``ok``: measured (valid or not); ``failed``: could not be measured; ``unsupported``:
    not attempted, because the driver cannot run that level honestly (the reason says why)."""

    OK = "ok"
    FAILED = "failed"
    UNSUPPORTED = "unsupported"


@dataclass(frozen=True, kw_only=True)
class TrialRecord:
    """One row of trials.csv: a target at one load level, one repeat.

    ``valid`` is False, with ``invalid_reason``, when errors exceed the threshold, the generator
    saturated, or the server died; such rows are kept and shown but never ranked.
    ``status`` is ``ok`` for a measured trial, ``failed`` when it could not be measured.
    """

    trial_id: str
    scenario: str
    server: str
    gateway: str
    app: str
    endpoint: str
    load_model: LoadModel  # "closed" (fixed concurrency) or "open" (constant arrival rate)
    concurrency: int | None
    rate: float | None
    repeat: int
    duration_s: float
    requests: int
    achieved_rps: float
    offered_rps: float | None
    errors: int
    error_rate: float
    errors_connect: int
    errors_io: int
    errors_timeout: int
    errors_status: int
    errors_body: int
    p50_ms: float | None
    p75_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    p99_9_ms: float | None
    p99_99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    service_p50_ms: float | None
    service_p99_ms: float | None
    behind: int
    out_of_range: int
    server_cpu_pct: float | None
    server_rss_mb: float | None
    server_pss_mb: float | None
    loadgen_cpu_pct: float | None
    saturated: bool
    valid: bool  # outcome == "valid": the rows that are ranked
    invalid_reason: str  # why not valid (overloaded or invalid), empty when valid
    status: TrialStatus
    workers: int | None
    threads: int | None
    server_cpus: str
    loadgen_cpus: str
    started_at: str
    # what the generator wants known that is not a reason to reject the trial (e.g. it fell
    # back to millisecond timers)
    notes: str = ""
    # "http", or "websocket": a request is then one message round trip (a broadcast: one
    # delivery); errors_status counts refused upgrades, errors_body wrong echoes, errors_io
    # connections the server closed, errors_timeout deliveries that never arrived
    protocol: str = "http"
    message_size: int | None = None  # WebSocket: bytes per message
    # connections still open when the load ended; a stream trial: streams open at once, at most
    connections_at_end: int | None = None
    # idle connections: the server's memory (PSS, else RSS) per connection held, in KiB
    memory_per_connection_kb: float | None = None
    # valid, overloaded (the server did not keep up: a result) or invalid (not vouched for);
    # schema version 1 had only ``valid`` (harness.analysis.migrate derives this from it)
    outcome: Outcome = "valid"
    # "sweep": a level of the plan; "search": a step of the capacity search at an objective
    phase: str = "sweep"
    # what else used the machine meanwhile, percent of one CPU: processes outside the harness,
    # and steal (harness.noise); a trial above the limits is flagged in notes and the report
    others_cpu_pct: float | None = None
    steal_pct: float | None = None
    # how many times slower than its recent pace the server's CPU ran (harness.cpuspeed; above
    # harness.noise.SLOW_CPU_FACTOR the trial is flagged busy); None when not probed
    cpu_slowdown: float | None = None
    # the server's connections on its port per worker process, mid-window, most first
    # ("16 0 0": one of three workers held all 16); empty when not counted (harness.sampling)
    connections_per_worker: str = ""
    # a slow-clients level ("slow"): the slow clients held beside the ``concurrency`` closed-loop
    # clients measured (harness.loadgen.slowclients); empty otherwise
    slow_clients: int | None = None
    # an upload scenario's closed loop: the body of every request, in bytes (its MB/s:
    # achieved_rps x upload_bytes); empty otherwise
    upload_bytes: int | None = None
    # background work (harness.tasktrials), from the app's task log: "background", the 2xx
    # answers (each a task promised) and the tasks started and finished in the measured window;
    # "sigterm", the same over the whole trial, counted after the server exited (lost:
    # accepted - finished); empty otherwise
    tasks_accepted: int | None = None
    tasks_started: int | None = None
    tasks_finished: int | None = None
    # "sigterm": seconds from the SIGTERM until every process of the server had exited; empty
    # when it had to be killed at the bound (the notes say so)
    exit_after_s: float | None = None
    # "disconnect": events the server made for a stream after its client left (median and
    # most), and streams it had not ended within the bound; the latency columns are the time
    # from the client's close to the server's end of the stream
    events_after_close_p50: float | None = None
    events_after_close_max: int | None = None
    streams_never_ended: int | None = None


@dataclass(frozen=True, kw_only=True)
class CapacityRecord:
    """One row of capacity.csv: a target's capacity at the run's latency objective, in one
    repeat (each repeat restarts the server and searches again)."""

    server: str
    repeat: int
    gateway: str
    app: str
    slo: str
    status: str  # found | at_least | below_min | undetermined (harness.slo.SearchStatus)
    capacity_rps: float | None
    proof_trial: str | None  # the trial at the capacity, which met the objective
    failed_rate: float | None  # the lowest rate that missed it
    failed_trial: str | None
    steps: int
    note: str
    # the head-to-head pair (run --head-to-head) this search belongs to; None for a search of
    # the plan's rounds
    pair: int | None = None


CAPACITY_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(CapacityRecord))


TRIAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord))


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """What a trial's numbers are worth (DESIGN: three outcomes).

    ``valid``: ranked. ``overloaded``: the server did not keep up (errors or timeouts above
    the limit, a schedule it fell behind, connections it dropped): a result about the server,
    shown and used to find its capacity, never ranked. ``invalid``: the harness cannot vouch
    for the number (its generator was the limit or starved, the server died, nothing was
    measured), kept and shown, never ranked.
    """

    outcome: Outcome
    reason: str

    @property
    def valid(self) -> bool:
        return self.outcome == "valid"


def judge(*, requests: int, errors: int, saturation_reasons: Sequence[str],
          died: str | None, failure: str | None = None,
          overload_reasons: Sequence[str] = (), connections_short: str | None = None,
          expect_requests: bool = True, sent_late: int | None = None,
          held_by: str | None = None) -> Verdict:
    """The one place that decides a trial's outcome.

    ``saturation_reasons``: why the generator may have been the limit; ``failure``: why the
    trial could not be measured at all; ``overload_reasons``: why the server fell behind an
    open-loop schedule; ``connections_short``: that the server did not hold every connection it
    was given (idle WebSocket connections, which send nothing: ``expect_requests`` False).
    ``held_by``: what else held the server meanwhile ("3 slow clients"): a server that then
    answered no measured request did not keep up, a result about it, not a trial that failed.

    ``sent_late``: in open loop, how many requests the generator itself sent late (None in
    closed loop). A generator that was late, whatever starved it, touched only those: when the
    errors exceed the limit even if every one of them had failed through it, the server failed
    the load and the trial is ``overloaded``, the generator's lateness said beside it. (io_bound,
    granian-asgi at 4,650 req/s: 576 timeouts, 186 requests sent late. Judged invalid, the step
    ended its capacity search undetermined, though the server had failed it either way.)
    """
    if failure:
        return Verdict(outcome="invalid", reason=failure)
    invalid: list[str] = []
    overloaded: list[str] = list(overload_reasons)
    if died:
        invalid.append(f"server died: {died}")
    total = requests + errors
    if connections_short:
        overloaded.append(connections_short)
    if total == 0 and expect_requests and held_by and not died:
        overloaded.append(f"answered no measured request while {held_by} were held")
    elif total == 0 and expect_requests:
        invalid.append("no successful request")
    elif total and errors / total > ERROR_RATE_MAX:
        overloaded.append(f"errors {errors / total:.2%} of requests "
                          f"(limit {ERROR_RATE_MAX:.1%})")
    if saturation_reasons:
        saturated = f"generator saturated: {'; '.join(saturation_reasons)}"
        beyond = errors - sent_late if sent_late is not None else 0
        if not invalid and total and beyond / total > ERROR_RATE_MAX:
            overloaded.append(f"{beyond / total:.2%} even had each of the {sent_late} "
                              f"requests the generator sent late failed through it, so the "
                              f"server failed the load whatever the generator did ({saturated})")
        else:
            invalid.append(saturated)
    outcome: Outcome = "invalid" if invalid else "overloaded" if overloaded else "valid"
    return Verdict(outcome=outcome, reason="; ".join(overloaded + invalid))


def _atomic_write_text(path: Path, text: str) -> None:
    # Write beside the target and rename, so a reader (or a crash) never sees half a file.
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_value(value: object) -> object:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.6g}" if abs(value) < 1e15 else repr(value)
    return value


class RunWriter:
    """Writes one run folder as the run goes. Create it only after all input is validated."""

    def __init__(self, run_dir: Path, meta: Mapping[str, Any]) -> None:
        self.run_dir = run_dir
        self._meta: dict[str, Any] = {"schema_version": SCHEMA_VERSION, **meta}
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / HISTOGRAM_DIR).mkdir(exist_ok=True)
        (run_dir / SERIES_DIR).mkdir(exist_ok=True)
        self._meta.setdefault("status", "running")
        self.write_meta()
        with open(run_dir / TRIALS_FILE, "w", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow(TRIAL_COLUMNS)

    @property
    def meta(self) -> dict[str, Any]:
        return self._meta

    def update_meta(self, **fields: Any) -> None:
        self._meta.update(fields)
        self.write_meta()

    def write_meta(self) -> None:
        _atomic_write_text(self.run_dir / RUN_FILE,
                           json.dumps(self._meta, indent=2, sort_keys=False, default=str) + "\n")

    def append_trial(
        self,
        record: TrialRecord,
        *,
        latency_hdr: bytes | str | None = None,
        service_hdr: bytes | str | None = None,
        series: Sequence[Mapping[str, object]] = (),
        by_name: Mapping[str, Mapping[str, object]] | None = None,
        kinds: Sequence[Mapping[str, object]] = (),
    ) -> None:
        """Write a trial's histograms and series, then its row (the row last: it is the index).

        ``by_name``: per request name (a locustfile's or a mix's), its encoded latency
        histogram and errors, written to ``histograms/<trial_id>.by-name.json``; ``kinds``: a
        mix's row per kind of request, appended to kinds.csv."""
        if by_name:
            _atomic_write_text(self.run_dir / HISTOGRAM_DIR / f"{record.trial_id}.by-name.json",
                               json.dumps(by_name, indent=1, sort_keys=True) + "\n")
        if kinds:
            path = self.run_dir / KINDS_FILE
            new = not path.exists()
            with open(path, "a", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                if new:
                    writer.writerow(KIND_COLUMNS)
                for kind in kinds:
                    writer.writerow([_csv_value(kind.get(c)) for c in KIND_COLUMNS])
        for suffix, encoded in (("latency", latency_hdr), ("service", service_hdr)):
            if encoded is not None:
                text = encoded.decode("ascii") if isinstance(encoded, bytes) else encoded
                _atomic_write_text(self.run_dir / HISTOGRAM_DIR / f"{record.trial_id}.{suffix}.hdr",
                                   text + "\n")
        if series:
            with open(self.run_dir / SERIES_DIR / f"{record.trial_id}.csv", "w", newline="",
                      encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(SERIES_COLUMNS)
                for point in series:
                    writer.writerow([_csv_value(point.get(c)) for c in SERIES_COLUMNS])
        row = dataclasses.asdict(record)
        with open(self.run_dir / TRIALS_FILE, "a", newline="", encoding="utf-8") as handle:
            csv.writer(handle).writerow([_csv_value(row[c]) for c in TRIAL_COLUMNS])
            handle.flush()
            os.fsync(handle.fileno())


    def append_capacity(self, record: CapacityRecord) -> None:
        """One target's capacity at the objective (the file is created on the first row)."""
        path = self.run_dir / CAPACITY_FILE
        new = not path.exists()
        row = dataclasses.asdict(record)
        with open(path, "a", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            if new:
                writer.writerow(CAPACITY_COLUMNS)
            writer.writerow([_csv_value(row[c]) for c in CAPACITY_COLUMNS])
            handle.flush()
            os.fsync(handle.fileno())


def read_capacity_rows(run_dir: Path) -> list[dict[str, str]]:
    """capacity.csv as string dicts; empty when the run searched no capacity."""
    path = run_dir / CAPACITY_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_meta(run_dir: Path) -> dict[str, Any]:
    """run.json as a dict; checks the schema version."""
    path = run_dir / RUN_FILE
    with open(path, encoding="utf-8") as handle:
        meta: dict[str, Any] = json.load(handle)
    version = meta.get("schema_version")
    if version not in READABLE_SCHEMA_VERSIONS:
        raise ValueError(f"{path}: schema_version {version!r}, this harness reads "
                         f"{', '.join(map(str, READABLE_SCHEMA_VERSIONS))}")
    return meta


def read_kind_rows(run_dir: Path) -> list[dict[str, str]]:
    """kinds.csv as string dicts; empty when the run sent no request mix."""
    path = run_dir / KINDS_FILE
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_trials_rows(run_dir: Path) -> list[dict[str, str]]:
    """trials.csv as a list of string dicts (typed loading lives in harness.analysis)."""
    with open(run_dir / TRIALS_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def histogram_path(run_dir: Path, trial_id: str, kind: str = "latency") -> Path:
    return run_dir / HISTOGRAM_DIR / f"{trial_id}.{kind}.hdr"


def series_path(run_dir: Path, trial_id: str) -> Path:
    return run_dir / SERIES_DIR / f"{trial_id}.csv"


TRIAL_TAGS = {"closed": "c", "open": "R", "broadcast": "b", "idle": "i", "slow": "s",
              "stream": "st", "background": "bg", "sigterm": "term", "disconnect": "dc"}


def trial_id(index: int, server: str, load_model: str, level: float, repeat: int,
             message_size: int | None = None, upload_bytes: int | None = None) -> str:
    """A stable, file-name-safe id: ``0007-uvicorn-c64-r1``, ``0012-uwsgi-R500-r2``, with a
    WebSocket message size ``0003-uvicorn-c64-m8192-r1``, or with an upload's body size
    ``0004-uvicorn-c4-u16MiB-r1``."""
    tag = f"{TRIAL_TAGS[load_model]}{level:g}"
    if message_size is not None:
        tag += f"-m{message_size}"
    if upload_bytes is not None:
        tag += f"-u{format_size(upload_bytes, sep='')}"
    return f"{index:04d}-{server}-{tag}-r{repeat}"



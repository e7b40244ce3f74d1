"""The run folder: what a run writes, and how it is read back. Versioned.

Layout of one run folder (``results/<run-id>/`` by default)::

    run.json                       schema_version, command line, scenario + hash, environment,
                                   CPU sets, targets (server, preset, status, reason), status
    trials.csv                     one row per target x level x repeat (TRIAL_COLUMNS)
    histograms/<trial_id>.latency.hdr   HDR histogram of latency in microseconds, hdrh's encoding
    histograms/<trial_id>.service.hdr   open loop only: service time (from the actual send)
    series/<trial_id>.csv          per second: second, requests (due in it: the latency
                                   sample), completed (successes answered in it: the
                                   throughput), errors, p50_ms, p99_ms, server_cpu_pct,
                                   server_rss_mb. Runs before "completed" existed leave it empty

Every trial is appended (and flushed to disk) the moment it ends, so a crash or Ctrl-C loses
nothing measured before it. ``run.json`` is rewritten atomically at the start and at the end.
CPU percentages are percent of one CPU (100 = one core busy), as in top.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
RUN_FILE = "run.json"
TRIALS_FILE = "trials.csv"
HISTOGRAM_DIR = "histograms"
SERIES_DIR = "series"
# A trial is invalid when more than this fraction of its requests failed (DESIGN: 0.1 %).
ERROR_RATE_MAX = 0.001
SERIES_COLUMNS = ("second", "requests", "completed", "errors", "p50_ms", "p99_ms",
                  "server_cpu_pct", "server_rss_mb")


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
    load_model: str  # "closed" (fixed concurrency) or "open" (constant arrival rate)
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
    valid: bool
    invalid_reason: str
    status: str
    workers: int | None
    threads: int | None
    server_cpus: str
    loadgen_cpus: str
    started_at: str


TRIAL_COLUMNS: tuple[str, ...] = tuple(f.name for f in dataclasses.fields(TrialRecord))


def judge(*, requests: int, errors: int, saturated: bool, saturation_reasons: list[str],
          died: str | None) -> tuple[bool, str]:
    """The honesty flags: (valid, reason). Invalid trials are kept but never ranked."""
    reasons: list[str] = []
    if died:
        reasons.append(f"server died: {died}")
    total = requests + errors
    if requests == 0:
        reasons.append("no successful request")
    elif errors / total > ERROR_RATE_MAX:
        reasons.append(f"errors {errors / total:.2%} of requests (limit {ERROR_RATE_MAX:.1%})")
    if saturated:
        detail = "; ".join(saturation_reasons) or "generator was the bottleneck"
        reasons.append(f"generator saturated: {detail}")
    return (not reasons, "; ".join(reasons))


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
    ) -> None:
        """Write a trial's histograms and series, then its row (the row last: it is the index)."""
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


def read_meta(run_dir: Path) -> dict[str, Any]:
    """run.json as a dict; checks the schema version."""
    path = run_dir / RUN_FILE
    with open(path, encoding="utf-8") as handle:
        meta: dict[str, Any] = json.load(handle)
    version = meta.get("schema_version")
    if version != SCHEMA_VERSION:
        raise ValueError(f"{path}: schema_version {version!r}, this harness reads {SCHEMA_VERSION}")
    return meta


def read_trials_rows(run_dir: Path) -> list[dict[str, str]]:
    """trials.csv as a list of string dicts (typed loading lives in harness.analysis)."""
    with open(run_dir / TRIALS_FILE, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def histogram_path(run_dir: Path, trial_id: str, kind: str = "latency") -> Path:
    return run_dir / HISTOGRAM_DIR / f"{trial_id}.{kind}.hdr"


def series_path(run_dir: Path, trial_id: str) -> Path:
    return run_dir / SERIES_DIR / f"{trial_id}.csv"


def trial_id(index: int, server: str, load_model: str, level: float, repeat: int) -> str:
    """A stable, file-name-safe id: ``0007-uvicorn-c64-r1`` or ``0012-uwsgi-R500-r2``."""
    tag = f"c{int(level)}" if load_model == "closed" else f"R{level:g}"
    return f"{index:04d}-{server}-{tag}-r{repeat}"


def list_run_dirs(paths: Iterable[Path]) -> list[Path]:
    """The run folders among ``paths`` (a folder holding run.json)."""
    return [p for p in paths if (p / RUN_FILE).is_file()]

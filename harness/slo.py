"""Capacity at a latency objective: "how much can it take while p99 stays under 100 ms?"

Found by measurement, not extrapolation: an open-loop rate search, an exponential ramp from a
starting rate, then bisection between the highest rate that met the objective and the lowest
that did not, until they are within ``resolution`` of each other. Every step is a real trial
(written to trials.csv like any other); the search is bounded in steps.

:class:`CapacitySearch` is the search as a pure state machine (``next_rate`` / ``record``), so
its scheduling is tested without a server; the runner measures each rate it asks for.

>>> slo = parse_slo("p99=100ms,errors=0.1%")
>>> slo.describe()
'p99 <= 100 ms, errors <= 0.1%'
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Literal

from harness.errors import UsageError
from harness.results import TrialRecord

# The percentiles a trial records (TrialRecord columns), by how an objective names them.
PERCENTILE_COLUMNS = {"p50": "p50_ms", "p75": "p75_ms", "p90": "p90_ms", "p99": "p99_ms",
                      "p99.9": "p99_9_ms", "p99_9": "p99_9_ms", "p99.99": "p99_99_ms",
                      "p99_99": "p99_99_ms"}
DEFAULT_ERROR_RATE = 0.001  # DESIGN: a trial with more than 0.1 % errors is not a pass
DEFAULT_START_RATE = 50.0  # req/s, when nothing hints at the server's capacity
DEFAULT_MIN_RATE = 1.0  # req/s: below this the search reports "below the minimum"
DEFAULT_MAX_RATE = 100_000.0  # req/s: one generator process's honest ceiling on 2 cores
DEFAULT_GROWTH = 2.0  # the ramp's factor per step
DEFAULT_RESOLUTION = 0.05  # stop when the bracket is within 5 % of its lower end
DEFAULT_MAX_STEPS = 12
# Where to start from a closed-loop peak: an open loop at the closed-loop peak queues without
# bound, so start below it.
START_FRACTION_OF_PEAK = 0.5
# The ramp's first step above the closed-loop peak goes at most this far above it (then the
# ramp grows by ``growth`` again). An open loop seldom sustains more than the closed loop's best
# (capacity / peak: at most 1.04 in 129 of the 132 reference searches; 1.11, 1.12, 1.21), and a
# step at twice the peak cost the reference io_bound runs 28-38 steps above 1.1x the peak,
# most of them overloaded and draining for up to the 10 s timeout: 235-318 s of a run.
PEAK_HEADROOM = 0.1

_TERM_RE = re.compile(r"^\s*(p\d+(?:[._]\d+)?|errors)\s*(?:<=|=)\s*(\S+?)\s*$")
_MS_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*(ms|s)$")
_PCT_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*%$")

SearchStatus = Literal["found", "at_least", "below_min", "undetermined"]


@dataclass(frozen=True, kw_only=True)
class Slo:
    """A latency objective: the ``percentile`` (a name like ``p99``) at most ``threshold_ms``,
    and at most ``max_error_rate`` of requests failed. Judged on open-loop latency, which is
    timed from the intended send."""

    percentile: str
    threshold_ms: float
    max_error_rate: float = DEFAULT_ERROR_RATE

    def describe(self) -> str:
        return (f"{self.percentile} <= {self.threshold_ms:g} ms, errors <= "
                f"{self.max_error_rate:.1%}".replace(".0%", "%"))

    @property
    def column(self) -> str:
        """The TrialRecord column of the objective's percentile."""
        return PERCENTILE_COLUMNS[self.percentile]

    def check(self, record: TrialRecord) -> str | None:
        """None when the trial met the objective, else why not."""
        return self.miss(getattr(record, self.column), record.error_rate)

    def miss(self, value_ms: float | None, error_rate: float) -> str | None:
        """None when a percentile of ``value_ms`` and ``error_rate`` meet the objective, else
        why not."""
        if value_ms is None or math.isnan(value_ms):
            return f"no {self.percentile} measured"
        if value_ms > self.threshold_ms:
            return f"{self.percentile} {value_ms:.1f} ms > {self.threshold_ms:g} ms"
        if error_rate > self.max_error_rate:
            return f"errors {error_rate:.2%} > {self.max_error_rate:.1%}"
        return None

    def overload(self, value_ms: float | None, error_rate: float) -> str | None:
        """Why an open-loop trial judged valid is overloaded at this objective, or None.

        A rate whose latency misses the objective is above the server's capacity at it, as
        the capacity search itself says of its steps: the queue grew past the objective
        (DESIGN: three outcomes). So a plan's own open-loop levels are judged like its search
        steps. gunicorn-gthread at 50 req/s (capacity 39.9 at p99 <= 200 ms) read "valid", p90
        244-403 ms, and its one repeat that kept up (p90 69 ms) made the tail comparison flip
        between two reference runs. A trial with nothing measured is left to the verdict."""
        if value_ms is None or math.isnan(value_ms):
            return None
        why = self.miss(value_ms, error_rate)
        return f"{why}, the objective" if why else None

    @classmethod
    def from_dict(cls, data: object) -> Slo | None:
        """The objective run.json's plan recorded (``to_dict``), or None when it has none."""
        if not isinstance(data, dict) or data.get("percentile") not in PERCENTILE_COLUMNS:
            return None
        try:
            return cls(percentile=str(data["percentile"]),
                       threshold_ms=float(data["threshold_ms"]),
                       max_error_rate=float(data.get("max_error_rate", DEFAULT_ERROR_RATE)))
        except (KeyError, TypeError, ValueError):
            return None

    def to_dict(self) -> dict[str, object]:
        return {"percentile": self.percentile, "threshold_ms": self.threshold_ms,
                "max_error_rate": self.max_error_rate, "text": self.describe()}


def parse_slo(text: str, *, what: str = "--slo") -> Slo:
    """``"p99=100ms"``, ``"p99.9=250ms,errors=0.5%"``, or ``"off"`` (:data:`OFF`: no search,
    whatever the scenario says); UsageError naming what is wrong."""
    if text.strip().lower() == "off":
        return OFF
    percentile: str | None = None
    threshold: float | None = None
    errors = DEFAULT_ERROR_RATE
    for term in filter(None, (t.strip() for t in text.split(","))):
        match = _TERM_RE.match(term)
        if match is None:
            raise UsageError(f"{what}: {term!r} is not 'pNN=DURATION' or 'errors=PCT'; expected "
                             "e.g. 'p99=100ms,errors=0.1%'")
        key, value = match.group(1), match.group(2)
        if key == "errors":
            pct = _PCT_RE.match(value)
            if pct is None or float(pct.group(1)) >= 100:
                raise UsageError(f"{what}: errors={value!r}: expected a percentage below "
                                 "100 like '0.1%'")
            errors = float(pct.group(1)) / 100.0
            continue
        if key not in PERCENTILE_COLUMNS:
            raise UsageError(f"{what}: {key!r}: expected one of "
                             f"{', '.join(sorted(set(PERCENTILE_COLUMNS)))}")
        ms = _MS_RE.match(value)
        if ms is None or float(ms.group(1)) <= 0:
            raise UsageError(f"{what}: {key}={value!r}: expected a positive duration like "
                             "'100ms' or '1s'")
        if percentile is not None:
            raise UsageError(f"{what}: one latency percentile, not two ({percentile}, {key})")
        percentile = key.replace("_", ".")
        threshold = float(ms.group(1)) * (1000.0 if ms.group(2) == "s" else 1.0)
    if percentile is None or threshold is None:
        raise UsageError(f"{what}: {text!r} names no latency percentile; expected e.g. "
                         "'p99=100ms'")
    return Slo(percentile=percentile, threshold_ms=threshold, max_error_rate=errors)


def open_loop_overload(slo: Slo, load_model: str, outcome: str, value_ms: float | None,
                       error_rate: float) -> str | None:
    """The open-loop objective, for a trial being measured (``judge_open_loop``) and for one
    read back from a run folder (harness.analysis.migrate.judge_objective): why a valid
    open-loop trial whose latency (``value_ms``, the objective's percentile) missed ``slo`` is
    overloaded (``Slo.overload``); None for any other trial (closed loop: its clients wait,
    nothing queues) or one with nothing measured (None or NaN)."""
    if load_model != "open" or outcome != "valid":
        return None
    return slo.overload(value_ms, error_rate)


def judge_open_loop(record: TrialRecord, slo: Slo | None) -> TrialRecord:
    """``record``, overloaded when it is a valid open-loop trial whose latency missed ``slo``
    (``open_loop_overload``); unchanged otherwise."""
    if slo is None:
        return record
    why = open_loop_overload(slo, record.load_model, record.outcome,
                             getattr(record, slo.column), record.error_rate)
    if why is None:
        return record
    return dataclasses.replace(record, outcome="overloaded", valid=False, invalid_reason=why)


# "--slo off": the run searches no capacity even when its scenario has an objective.
OFF = Slo(percentile="p99", threshold_ms=math.inf)


@dataclass(frozen=True, kw_only=True)
class SearchPolicy:
    """Bounds of one capacity search."""

    start_rate: float = DEFAULT_START_RATE
    min_rate: float = DEFAULT_MIN_RATE
    max_rate: float = DEFAULT_MAX_RATE
    growth: float = DEFAULT_GROWTH
    resolution: float = DEFAULT_RESOLUTION
    max_steps: int = DEFAULT_MAX_STEPS
    # each step's warm-up and measured time (None: the plan's)
    warmup_s: float | None = None
    duration_s: float | None = None


@dataclass(frozen=True, kw_only=True)
class Capacity:
    """The answer for one target: the highest rate that met the objective (``status`` found:
    the next rate up within ``resolution`` did not; at_least: the search stopped first), the
    trial that proves it and the first that failed above it."""

    status: SearchStatus
    capacity_rps: float | None
    proof_trial: str | None
    failed_trial: str | None
    failed_rate: float | None
    steps: int
    note: str


class CapacitySearch:
    """Ramp by ``growth`` from ``start``, then bisect; ``next_rate`` is None once done.

    ``peak_rps``, the server's best closed-loop throughput when known, sets the start when
    ``start_rate`` is not given (``start_rate_from``) and holds the ramp's first step above it
    to PEAK_HEADROOM above it: the ramp only takes another path, the bracket and its resolution
    are the same (a step that passes there ramps on by ``growth``)."""

    def __init__(self, policy: SearchPolicy, start_rate: float | None = None, *,
                 peak_rps: float | None = None) -> None:
        self.policy = policy
        self.peak_rps = peak_rps
        if start_rate is None and peak_rps is not None:
            start_rate = start_rate_from([peak_rps])
        start = start_rate if start_rate is not None else policy.start_rate
        self._next: float | None = min(max(start, policy.min_rate), policy.max_rate)
        self.lo: tuple[float, str] | None = None  # highest passing (rate, trial id)
        self.hi: tuple[float, str, str] | None = None  # lowest failing (rate, trial, why)
        self.steps = 0
        self._stopped: tuple[SearchStatus, str] | None = None

    def next_rate(self) -> float | None:
        return None if self._stopped is not None else self._next

    def record(self, rate: float, trial_id: str, failure: str | None, *,
               undetermined: str | None = None) -> None:
        """The trial at ``rate`` met the objective (``failure`` None), did not (the reason),
        or could not be judged (``undetermined``: the harness could not vouch for it)."""
        policy = self.policy
        self.steps += 1
        if undetermined is not None:
            which = f"trial {trial_id} at" if trial_id else "the step at"
            self._stop("undetermined", f"{which} {rate:g} req/s could not be judged: "
                       f"{undetermined}")
            return
        if failure is None:
            if self.lo is None or rate > self.lo[0]:
                self.lo = (rate, trial_id)
        elif self.hi is None or rate < self.hi[0]:
            self.hi = (rate, trial_id, failure)
        lo, hi = self.lo, self.hi
        if lo is not None and hi is not None:
            if (hi[0] - lo[0]) / lo[0] <= policy.resolution:
                self._stop("found", "")
                return
            self._next = (lo[0] + hi[0]) / 2.0
        elif lo is not None:  # passing so far: ramp up
            if lo[0] >= policy.max_rate:
                self._stop("at_least", f"met the objective at the search's maximum, "
                           f"{policy.max_rate:g} req/s")
                return
            self._next = min(self._ramp_from(lo[0]), policy.max_rate)
        else:  # failing so far: ramp down
            assert hi is not None
            if hi[0] <= policy.min_rate:
                self._stop("below_min", f"missed the objective even at {policy.min_rate:g} "
                           "req/s")
                return
            self._next = max(hi[0] / policy.growth, policy.min_rate)
        if self.steps >= policy.max_steps:
            self._stop("at_least" if self.lo is not None else "below_min",
                       f"stopped after {policy.max_steps} steps")

    def _ramp_from(self, rate: float) -> float:
        """The ramp's next rate after a pass at ``rate``."""
        grown = rate * self.policy.growth
        if self.peak_rps is None:
            return grown
        above_peak = self.peak_rps * (1.0 + PEAK_HEADROOM)
        return above_peak if rate < above_peak < grown else grown

    def _stop(self, status: SearchStatus, note: str) -> None:
        self._stopped = (status, note)

    @property
    def done(self) -> bool:
        return self._stopped is not None

    def result(self) -> Capacity:
        status, note = self._stopped or ("undetermined", "the search did not finish")
        lo, hi = self.lo, self.hi
        if status == "undetermined" and lo is not None:
            note += f"; it met the objective at {lo[0]:g} req/s before that"
        if not note and hi is not None:
            note = f"{hi[0]:g} req/s failed: {hi[2]}"
        return Capacity(
            status=status,
            capacity_rps=lo[0] if lo is not None else None,
            proof_trial=lo[1] if lo is not None else None,
            failed_trial=hi[1] if hi is not None else None,
            failed_rate=hi[0] if hi is not None else None,
            steps=self.steps,
            note=note,
        )


def start_rate_from(closed_peaks_rps: list[float]) -> float | None:
    """Where to start: half the best valid closed-loop throughput, rounded to 2 significant
    digits; None when there is none."""
    if not closed_peaks_rps:
        return None
    rate = START_FRACTION_OF_PEAK * max(closed_peaks_rps)
    if rate <= 0:
        return None
    digits = 1 - math.floor(math.log10(rate))
    return round(rate, digits)

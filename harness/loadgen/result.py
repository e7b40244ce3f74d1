"""The merged result of a load: histograms added across processes, counts summed, self-check."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from hdrh.histogram import HdrHistogram

from harness.loadgen.accounting import BEHIND_THRESHOLD_MS, WorkerReport
from harness.loadgen.histograms import new_histogram, percentiles_ms
from harness.loadgen.kinds import ERROR_KINDS
from harness.loadgen.websocket import CLIENT_SETTINGS

# The generator is the bottleneck when one of its processes uses more than this of its CPU.
SATURATED_CPU_PCT = 90.0
# ... or when more than this share of open-loop requests went out late (see BEHIND_THRESHOLD_MS).
SATURATED_BEHIND_FRACTION = 0.01
# A whole second of the measured window in which the server answered under this share of the
# trial's best second is a stall: granian-wsgi at 512 clients answered 4,311 and 4,489 requests
# in its first two seconds, then none for three, at 98-100 % CPU. A trial's mean hides that;
# the note says it (STALL_NOTE starts it: the report looks for it).
STALL_FRACTION = 0.2
# ... counted only when the best second answered at least this many: at a few requests a
# second, one slow request moves a second's count by a whole share.
STALL_MIN_BEST_PER_S = 50
STALL_NOTE = "the server stalled"
# Open loop: a server that does not keep up with the offered rate has a queue that grows for as
# long as the load lasts, and a trial a few seconds long can still meet a latency objective on
# the way. gunicorn-sync (3 workers of 50 ms: 58.7 req/s at most here) met p99 <= 200 ms at
# 61.0 req/s over 3 s, answering 58.7, its median latency 92, 135, 176 ms second by second;
# in the io_bound reference runs uwsgi passed 119 req/s with medians of 77, 101, 123 ms. Either
# sign is overload. Answering this share fewer than offered: 2 % adds 1.2 s of queue a minute,
# which no objective under a second outlives (steps that kept up were at most 1.8 % short,
# daphne at 2,344 req/s with flat 52 ms medians)...
KEEP_UP_SHORT_FRACTION = 0.02
# ... counted only past this many requests: at a few dozen a window, one more in flight at its
# end than at its start is a few per cent ...
KEEP_UP_SHORT_MIN = 3
# ... or a median latency that rose by more than this per second from the window's first whole
# second to its last: 10 ms a second is 0.6 s of queue a minute. It sees what a short count
# cannot at a few dozen requests a second (gunicorn-sync at 59.4 req/s, 2 requests short, its
# medians 68, 82, 93 ms).
KEEP_UP_RISE_MS_PER_S = 10.0


@dataclass(frozen=True, kw_only=True)
class SeriesPoint:
    """One second of the measurement.

    ``completed`` counts the successes answered in that second: the throughput, what the server
    delivered. ``requests``, ``errors`` and the percentiles are of the requests *due* in that
    second (open loop: by intended time), so a second's latency is that of the load offered in
    it. The two counts part when a server falls behind an open-loop schedule: ``requests`` stays
    at the offered rate while ``completed`` drops to what the server keeps up with.
    """

    second: int
    requests: int
    completed: int
    errors: int
    p50_ms: float | None
    p99_ms: float | None


@dataclass(kw_only=True)
class LoadResult:
    """What :func:`run_load` returns. Latency is in microseconds in the HDR histograms.

    ``latency`` is timed from the intended send time in open loop (corrected for coordinated
    omission) and from the actual send in closed loop; ``service_time`` (open loop only) is
    always from the actual send. ``behind`` counts measured open-loop requests sent more than
    BEHIND_THRESHOLD_MS after their due time, whatever the cause; ``behind_generator`` those of
    them that were the generator's fault: it was late to dispatch them, or every connection up
    to the cap was in use (``behind_at_cap``: the cap bounds what it can offer to a server that
    falls behind). Requests that only waited for a new connection to be accepted (a server too
    slow to accept) are behind but not the generator's fault. ``saturated`` counts only the
    generator's fault.
    """

    load_model: str  # "closed" | "open"
    url: str
    concurrency: int | None
    requests: int  # successes among the requests due (open) or sent (closed) in the window
    duration_s: float
    achieved_rps: float  # successes answered inside the window / its duration
    offered_rps: float | None
    errors: dict[str, int]
    latency: HdrHistogram
    service_time: HdrHistogram | None
    out_of_range: int
    behind: int
    behind_generator: int
    behind_at_cap: int
    scheduled: int  # open loop: requests due in the measured window; closed loop: 0
    saturated: bool
    saturation_reasons: list[str]  # why the generator may have been the limit (invalid)
    generator_cpu_pct: float
    generator_cpu_s: float
    generator_proc_cpu_pct: list[float]
    peak_connections: int
    procs: int
    series: list[SeriesPoint] = field(default_factory=list)
    late_max_ms: float = 0.0
    behind_threshold_ms: float = BEHIND_THRESHOLD_MS
    completed: int = 0
    resent: int = 0  # sent again after the server closed a reused connection (RFC 9112 9.3.1)
    window_start_ns: int = 0  # the measured window, on time.monotonic_ns()
    window_end_ns: int = 0
    # what a reader should know that is no reason to reject the numbers (a fallback timer)
    notes: list[str] = field(default_factory=list)
    # "http", or "websocket": a request is then one message round trip (errors: status = a
    # refused upgrade, body = a wrong echo, io = closed by the server), and ``client_settings``
    # say what the client offered (no extensions, no pings)
    protocol: str = "http"
    client_settings: list[str] = field(default_factory=list)
    open_at_end: int = 0  # connections still open when the load ended
    # why the server did not keep up with an open-loop schedule (it, not the generator, failed
    # the load: the trial is "overloaded", a result)
    overload_reasons: list[str] = field(default_factory=list)
    # drivers that know more (Locust): latency of successes per request name ("GET /hello"),
    # errors per name, and each generator process (role, host, pid, cpus, cpu_pct, counts)
    by_name: dict[str, HdrHistogram] = field(default_factory=dict)
    by_name_errors: dict[str, int] = field(default_factory=dict)
    generator_processes: list[dict[str, object]] = field(default_factory=list)
    # a request mix of the built-in generator: each kind's own result (requests, errors,
    # latency, series), by name; the fields above count every kind together
    kinds: dict[str, LoadResult] = field(default_factory=dict)

    @classmethod
    def unmeasured(cls, *, url: str, concurrency: int | None,
                   rate: float | None) -> LoadResult:
        """The result of a load that could not run: nothing counted, empty histograms."""
        return cls(load_model="open" if rate is not None else "closed", url=url,
                   concurrency=concurrency, requests=0, duration_s=0.0, achieved_rps=0.0,
                   offered_rps=rate, errors={"total": 0}, latency=new_histogram(),
                   service_time=None, out_of_range=0, behind=0, behind_generator=0,
                   behind_at_cap=0, scheduled=0, saturated=False, saturation_reasons=[],
                   generator_cpu_pct=0.0, generator_cpu_s=0.0, generator_proc_cpu_pct=[],
                   peak_connections=0, procs=0)

    @property
    def sent_late(self) -> int | None:
        """Open loop: requests the generator itself sent late (not for want of a connection
        at its cap: that is the server's doing); None in closed loop, which has no schedule."""
        if self.load_model != "open" or not self.scheduled:
            return None
        return self.behind_generator - self.behind_at_cap

    @staticmethod
    def percentiles_ms(hist: HdrHistogram | None) -> dict[str, float | None]:
        return percentiles_ms(hist)

    def to_json(self) -> dict[str, object]:
        return {
            "url": self.url,
            "load_model": self.load_model,
            "concurrency": self.concurrency,
            "requests": self.requests,
            "completed_in_window": self.completed,
            "resent": self.resent,
            "duration_s": round(self.duration_s, 6),
            "achieved_rps": round(self.achieved_rps, 3),
            "offered_rps": self.offered_rps,
            "errors": dict(self.errors),
            "latency_ms": percentiles_ms(self.latency),
            "service_time_ms": (percentiles_ms(self.service_time)
                                if self.service_time is not None else None),
            "out_of_range": self.out_of_range,
            "behind": self.behind,
            "behind_generator": self.behind_generator,
            "behind_at_cap": self.behind_at_cap,
            "behind_threshold_ms": self.behind_threshold_ms,
            "late_max_ms": round(self.late_max_ms, 3),
            "scheduled": self.scheduled,
            "saturated": self.saturated,
            "saturation_reasons": list(self.saturation_reasons),
            "overload_reasons": list(self.overload_reasons),
            "notes": list(self.notes),
            "protocol": self.protocol,
            "client_settings": list(self.client_settings),
            "generator_cpu_pct": round(self.generator_cpu_pct, 1),
            "generator_cpu_s": round(self.generator_cpu_s, 4),
            "generator_proc_cpu_pct": [round(p, 1) for p in self.generator_proc_cpu_pct],
            "peak_connections": self.peak_connections,
            "open_at_end": self.open_at_end,
            "procs": self.procs,
            "series": [
                {"second": p.second, "requests": p.requests, "completed": p.completed,
                 "errors": p.errors,
                 "p50_ms": p.p50_ms, "p99_ms": p.p99_ms}
                for p in self.series
            ],
            **({"kinds": {name: {"requests": kind.requests, "errors": dict(kind.errors),
                                 "achieved_rps": round(kind.achieved_rps, 3),
                                 "latency_ms": percentiles_ms(kind.latency)}
                          for name, kind in self.kinds.items()}} if self.kinds else {}),
        }


def merge_reports(reports: Sequence[WorkerReport], *, url: str, concurrency: int | None,
                  rate: float | None, duration_s: float, websocket: bool = False) -> LoadResult:
    """Add every process's histograms and counts; decide whether the generator saturated."""
    latency = new_histogram()
    service = new_histogram() if rate is not None else None
    errors = dict.fromkeys(ERROR_KINDS, 0)
    for report in reports:
        latency.decode_and_add(report.latency_hdr)
        if service is not None and report.service_hdr is not None:
            service.decode_and_add(report.service_hdr)
        for kind in ERROR_KINDS:
            errors[kind] += report.errors.get(kind, 0)
    errors["total"] = sum(errors[k] for k in ERROR_KINDS)
    requests = sum(r.requests for r in reports)
    completed = sum(r.completed for r in reports)
    behind = sum(r.behind for r in reports)
    behind_generator = sum(r.behind_generator for r in reports)
    behind_at_cap = sum(r.behind_at_cap for r in reports)
    scheduled = sum(r.scheduled for r in reports)
    proc_pct = [100.0 * r.cpu_s / r.window_s if r.window_s > 0 else 0.0 for r in reports]

    reasons: list[str] = []
    for report, pct in zip(reports, proc_pct, strict=True):
        if pct > SATURATED_CPU_PCT:
            reasons.append(f"generator process {report.proc} used {pct:.0f}% of its CPU "
                           f"(> {SATURATED_CPU_PCT:.0f}%): the generator, not the server, may "
                           f"be the limit; give it more --procs and --cpus")
    overload: list[str] = []
    if rate is not None and scheduled:
        late = behind_generator - behind_at_cap
        if late > SATURATED_BEHIND_FRACTION * scheduled:
            reasons.append(_late_reason(late, scheduled))
        if behind_at_cap > SATURATED_BEHIND_FRACTION * scheduled:
            overload.append(_at_cap_reason(behind_at_cap, scheduled, rate=rate,
                                           cap=sum(r.max_connections for r in reports),
                                           peak=sum(r.peak_connections for r in reports)))
    series = _merge_series(reports)
    if rate is not None and scheduled and not overload and not reasons:
        # a generator that was itself late left requests unsent: the shortfall is not the server's
        overload.extend(fell_behind(series, duration_s, scheduled=scheduled,
                                    completed=completed, errors=errors["total"], rate=rate))
    return LoadResult(
        load_model="open" if rate is not None else "closed",
        url=url,
        concurrency=concurrency,
        requests=requests,
        duration_s=duration_s,
        completed=completed,
        resent=sum(r.resent for r in reports),
        achieved_rps=completed / duration_s if duration_s > 0 else 0.0,
        window_start_ns=min((r.window_start_ns for r in reports), default=0),
        window_end_ns=max((r.window_end_ns for r in reports), default=0),
        offered_rps=rate,
        errors=errors,
        latency=latency,
        service_time=service,
        out_of_range=sum(r.out_of_range for r in reports),
        behind=behind,
        behind_generator=behind_generator,
        behind_at_cap=behind_at_cap,
        scheduled=scheduled,
        saturated=bool(reasons),
        saturation_reasons=reasons,
        overload_reasons=overload,
        generator_cpu_pct=sum(proc_pct),
        generator_cpu_s=sum(r.cpu_s for r in reports),
        generator_proc_cpu_pct=proc_pct,
        peak_connections=sum(r.peak_connections for r in reports),
        procs=len(reports),
        series=series,
        late_max_ms=max((r.late_max_ms for r in reports), default=0.0),
        notes=_notes(reports) + stall_notes(series, duration_s),
        protocol="websocket" if websocket else "http",
        open_at_end=sum(r.open_at_end for r in reports),
        client_settings=list(CLIENT_SETTINGS) if websocket else [],
        kinds={name: merge_reports([r.kinds[name] for r in reports if name in r.kinds],
                                   url=url, concurrency=concurrency, rate=rate,
                                   duration_s=duration_s)
               for name in (reports[0].kinds if reports else {})},
    )


def _notes(reports: Sequence[WorkerReport]) -> list[str]:
    """Every process's notes, once, and a word when one fell back to millisecond timers."""
    notes: list[str] = []
    coarse = [r.proc for r in reports if not r.precise_timer]
    if coarse:
        notes.append(f"generator process(es) {', '.join(map(str, coarse))} had no timerfd and "
                     "fell back to the event loop's millisecond timers: open-loop sends are "
                     "spaced to the millisecond, not the microsecond")
    for report in reports:
        notes.extend(n for n in report.notes if n not in notes)
    return notes


def stall_notes(series: Sequence[SeriesPoint], duration_s: float) -> list[str]:
    """A note when whole seconds of the measured window had next to no answers (a stall, see
    STALL_FRACTION); none otherwise. A last, partial second is not judged."""
    whole = _whole_seconds(series, duration_s)
    best = max((p.completed for p in whole), default=0)
    if best < STALL_MIN_BEST_PER_S:
        return []
    stalled = [p.second for p in whole if p.completed < STALL_FRACTION * best]
    if not stalled:
        return []
    return [f"{STALL_NOTE} in {len(stalled)} of its {len(whole)} measured seconds: it answered "
            f"under {STALL_FRACTION:.0%} of its best second's {best:,} in second(s) "
            f"{', '.join(map(str, stalled))} (counting from 0; per second in series/)"]


def _whole_seconds(series: Sequence[SeriesPoint], duration_s: float) -> Sequence[SeriesPoint]:
    """The seconds of ``series`` wholly inside a window of ``duration_s``: a last, partial
    second has too few answers to judge beside the others."""
    return series[:int(duration_s)]


def _share(n: int, scheduled: int) -> str:
    return f"{n} of {scheduled} requests ({100.0 * n / scheduled:.1f}%)"


def _late_reason(late: int, scheduled: int) -> str:
    """The generator itself fell behind its schedule: the trial cannot be vouched for."""
    return (f"open-loop schedule fell behind: {_share(late, scheduled)} went out more than "
            f"{BEHIND_THRESHOLD_MS:g} ms after their due time because the generator itself was "
            "late")


def fell_behind(series: Sequence[SeriesPoint], duration_s: float, *, scheduled: int,
                completed: int, errors: int, rate: float) -> list[str]:
    """Why an open-loop server did not keep up with ``rate`` (its queue grew: overload), or
    nothing. Short: the requests due in the window neither answered in it (``completed``)
    nor failed (``errors`` have their own limit); the median's rise is read over whole seconds
    only."""
    short = scheduled - completed - errors
    if short > max(KEEP_UP_SHORT_FRACTION * scheduled, KEEP_UP_SHORT_MIN):
        answered = completed / duration_s if duration_s > 0 else 0.0  # as achieved_rps
        return [f"fell behind: answered {answered:.4g} of {rate:.4g} req/s offered, "
                f"{_share(short, scheduled)} short, so its queue grew through the trial"]
    medians = [(p.second, p.p50_ms) for p in _whole_seconds(series, duration_s)
               if p.p50_ms is not None]
    if len(medians) >= 2:
        (first, low), (last, high) = medians[0], medians[-1]
        if (high - low) / (last - first) > KEEP_UP_RISE_MS_PER_S:
            return [f"fell behind: the median latency rose from {low:.0f} to {high:.0f} ms "
                    f"from second {first} to {last} of the trial (more than "
                    f"{KEEP_UP_RISE_MS_PER_S:g} ms a second), so its queue grew"]
    return []


def _at_cap_reason(at_cap: int, scheduled: int, *, rate: float, cap: int, peak: int) -> str:
    """Every connection the generator may hold was waiting on a server that fell behind the
    offered rate: the server failed the load (overload), the generator did not."""
    # the cap counts connections still being opened: against a full listen backlog most of
    # them may be, so the peak of open ones is said too
    return (f"connection cap reached: {_share(at_cap, scheduled)} waited more than "
            f"{BEHIND_THRESHOLD_MS:g} ms for a connection, with all {cap} the generator may "
            f"hold open or opening ({peak} open at most) busy on a server that fell behind "
            f"{rate:g} req/s (or the scenario's max_connections is too low)")


def _merge_series(reports: Sequence[WorkerReport]) -> list[SeriesPoint]:
    seconds = max((len(r.second_requests) for r in reports), default=0)
    points: list[SeriesPoint] = []
    for sec in range(seconds):
        hist = new_histogram()
        requests = completed = errors = 0
        for r in reports:
            if sec < len(r.second_requests):
                requests += r.second_requests[sec]
                completed += r.second_completed[sec]
                errors += r.second_errors[sec]
                encoded = r.second_latency_hdr[sec]
                if encoded is not None:
                    hist.decode_and_add(encoded)
        pct = percentiles_ms(hist)
        points.append(SeriesPoint(second=sec, requests=requests, completed=completed,
                                  errors=errors,
                                  p50_ms=pct["p50"], p99_ms=pct["p99"]))
    return points

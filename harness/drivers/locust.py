"""Locust as a driver: a scenario's closed-loop levels run as Locust users, measured the
harness's way.

Locust's own figures are not published: it rounds response times into buckets (sub-millisecond
loopback latencies collapse to 0 or 1 ms), drops the requests in flight when a test stops
(``--stop-timeout`` 0) and checks its CPU every 10 s. So the harness loads its own listener into
every Locust process (harness/drivers/locust_listener.py), which records each request's
``response_time`` at full precision into the same HDR histograms (microseconds), per-second
series and error kinds as the built-in generator, over a measured window after the warm-up; the
driver merges them (histograms added, never percentiles averaged), samples every Locust
process's CPU itself (4 Hz) and marks the trial saturated when one went above 90 % of a CPU.

``import locust`` monkey-patches the whole process (gevent), so Locust only ever runs here as
a subprocess (``python -m locust``): this module never imports it.

>>> driver = LocustDriver(workers=2)                      # doctest: +SKIP
>>> driver.measure(LoadSpec(url="http://127.0.0.1:8000/hello", concurrency=64))  # doctest: +SKIP

Levels it cannot run honestly are refused (:meth:`LocustDriver.supports`): an open-loop rate
(Locust has no intended send times, so no coordinated-omission correction) and WebSocket.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil
from hdrh.histogram import HdrHistogram

from harness.cpus import cpus_text
from harness.drivers.locust_book import ERROR_KINDS, LocustBook
from harness.errors import GeneratorError, UsageError
from harness.loadgen.accounting import WorkerReport
from harness.loadgen.histograms import HIGHEST_US, LOWEST_US, SIGNIFICANT_DIGITS, new_histogram
from harness.loadgen.launch import check_reachable
from harness.loadgen.result import SATURATED_CPU_PCT, LoadResult, merge_reports
from harness.loadgen.spec import LoadSpec
from harness.ports import free_port
from harness.sampling import TreeSampler, Usage

HERE = Path(__file__).resolve().parent
LISTENER = HERE / "locust_listener.py"
PLAIN_LOCUSTFILE = HERE / "locust_plain.py"
CONFIG_ENV = "HARNESS_LOCUST_CONFIG"
RESULT_ENV = "HARNESS_LOCUST_RESULT"
HDR = (LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

DEFAULT_MASTER_PORT = 5557  # Locust's own default, for workers on other machines
STARTUP_S = 30.0  # Locust's imports, workers connecting, users spawning
RESULT_MARGIN_S = 15.0  # beyond start-up + warm-up + duration + stop timeout
STOP_TIMEOUT_S = 3.0  # after TERM, before KILL (our own processes only)
POLL_S = 0.05
WORKER_RESTART_S = 1.0  # between a worker's exit and its restart
LOG_TAIL_CHARS = 2000
# Locust spawns this many users per second per user asked for: all of them within 0.1 s, so
# the warm-up starts with every client connected (spawning is never measured).
SPAWN_RATE_PER_USER = 10


def locust_version() -> str | None:
    try:
        return metadata.version("locust")
    except metadata.PackageNotFoundError:
        return None


class LocustDriver:
    """Runs a closed-loop level as Locust users (FastHttpUser, ``wait_time`` 0) or as the
    traffic mix of the user's own locustfile.

    - ``locustfile``: the user's locustfile (every server gets its traffic; the scenario gives
      the levels, durations and servers). None: the scenario's one request.
    - ``workers``: 0 runs one Locust process; N runs Locust's master and N worker processes,
      pinned round-robin to the generator CPUs. None: ``spec.procs`` workers when above 1.
    - ``stop_timeout_s``: Locust's ``--stop-timeout``: how long requests in flight at the end
      may take (those still unanswered then count as timeouts). None: the scenario's timeout.
    - ``remote_workers``: workers started by hand on other machines the master also waits
      for (``harness locust-worker --master-host H``); the master then listens on
      ``master_bind_host``:``master_port``.
    """

    name = "locust"

    def __init__(self, *, locustfile: str | Path | None = None, workers: int | None = None,
                 stop_timeout_s: float | None = None, remote_workers: int = 0,
                 master_bind_host: str = "127.0.0.1", master_port: int | None = None) -> None:
        if workers is not None and workers < 0:
            raise UsageError(f"--locust-workers must be >= 0, got {workers!r}")
        if remote_workers < 0:
            raise UsageError(f"remote workers must be >= 0, got {remote_workers!r}")
        if stop_timeout_s is not None and not stop_timeout_s >= 0:
            raise UsageError(f"--stop-timeout must be >= 0 seconds, got {stop_timeout_s!r}")
        self.locustfile = Path(locustfile).resolve() if locustfile is not None else None
        if self.locustfile is not None and not self.locustfile.is_file():
            raise UsageError(f"--locustfile {locustfile}: no such file; expected a Python "
                             "locustfile (see scenarios/locustfiles/shop.py)")
        self.workers = workers
        self.stop_timeout_s = stop_timeout_s
        self.remote_workers = remote_workers
        self.master_bind_host = master_bind_host
        self.master_port = master_port

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": locust_version(),
            "user": "locustfile" if self.locustfile else "FastHttpUser, wait_time constant(0)",
            "locustfile": str(self.locustfile) if self.locustfile else None,
            "workers": self.workers,
            "remote_workers": self.remote_workers,
            "stop_timeout_s": self.stop_timeout_s,
            "listener": str(LISTENER),
            "latency": "Locust's response_time at full precision, from the actual send "
                       "(closed loop: no coordinated-omission correction)",
        }

    def supports(self, spec: LoadSpec) -> str | None:
        """None when Locust can run ``spec`` honestly; otherwise why not."""
        if spec.rate is not None:
            return (f"an open-loop rate ({spec.rate:g} req/s) needs latency timed from each "
                    "request's intended send time; Locust users are a closed loop with no "
                    "schedule to correct for coordinated omission: use --driver builtin")
        if spec.websocket:
            return "WebSocket levels are not run by Locust here: use --driver builtin"
        return None

    def measure(self, spec: LoadSpec) -> LoadResult:
        reason = self.supports(spec)
        if reason is not None:
            level = f"--rate {spec.rate:g}" if spec.rate is not None else spec.url
            raise UsageError(f"the locust driver cannot run level {level}: {reason}")
        if locust_version() is None:
            raise UsageError("the locust driver needs Locust: pip install -e '.[locust]'")
        spec.validate()
        check_reachable(spec.target)
        workers = self.workers if self.workers is not None else (
            spec.procs if spec.procs > 1 else 0)
        with tempfile.TemporaryDirectory(prefix="harness-locust-") as tmp:
            run = _LocustRun(self, spec, workers, Path(tmp))
            return run.execute()


class _LocustRun:
    """One measurement: start Locust's processes, sample them, read back the listener's file."""

    def __init__(self, driver: LocustDriver, spec: LoadSpec, workers: int, tmp: Path) -> None:
        self.driver = driver
        self.spec = spec
        self.workers = workers
        self.tmp = tmp
        self.result_path = tmp / "result.json"
        # Locust takes whole seconds
        self.stop_timeout_s = math.ceil(driver.stop_timeout_s if driver.stop_timeout_s
                                        is not None else spec.timeout_s)
        self.procs: list[tuple[str, subprocess.Popen[bytes], Path]] = []  # role, popen, log
        self.samplers: dict[int, TreeSampler] = {}

    def config(self) -> dict[str, Any]:
        spec = self.spec
        target = spec.target
        headers = list(spec.headers)
        if not any(name.lower() == "accept-encoding" for name, _ in headers):
            # Locust asks for gzip by default; the built-in generator asks for nothing
            headers.append(("Accept-Encoding", "identity"))
        return {
            "method": spec.method, "path": target.path, "name": target.path.split("?")[0],
            "headers": headers, "body": spec.body.hex(),
            "expect_body": spec.expect_body.hex() if spec.expect_body is not None else None,
            "timeout_s": spec.timeout_s, "warmup_s": spec.warmup_s,
            "duration_s": spec.duration_s, "hdr": list(HDR),
        }

    def locust_cmd(self, *args: str) -> list[str]:
        locustfile = self.driver.locustfile or PLAIN_LOCUSTFILE
        return [sys.executable, "-m", "locust", "-f", f"{locustfile},{LISTENER}",
                "--loglevel", "WARNING", *args]

    def master_args(self, port: int) -> list[str]:
        users = self.spec.concurrency or 1
        target = self.spec.target
        args = ["--headless", "--host", f"http://{target.host_header}", "--users", str(users),
                "--spawn-rate", str(users * SPAWN_RATE_PER_USER),
                "--stop-timeout", str(self.stop_timeout_s), "--only-summary",
                "--exit-code-on-error", "0"]
        expect = self.workers + self.driver.remote_workers
        if expect:
            args += ["--master", "--expect-workers", str(expect),
                     "--expect-workers-max-wait", f"{STARTUP_S:g}",
                     "--master-bind-host", self.driver.master_bind_host,
                     "--master-bind-port", str(port)]
        return args

    def spawn(self, role: str, command: list[str], cpus: Sequence[int] | None,
              env: dict[str, str]) -> None:
        log = self.tmp / f"{role}-{len(self.procs)}.log"
        if cpus and shutil.which("taskset"):
            command = ["taskset", "-c", cpus_text(tuple(cpus)), *command]
        with open(log, "wb") as out:
            # a session of its own: Ctrl-C in the terminal reaches the harness, which stops it
            popen = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=out,
                                     stderr=subprocess.STDOUT, env=env, cwd=self.tmp,
                                     start_new_session=True)
        if cpus and not shutil.which("taskset"):
            with contextlib.suppress(psutil.Error):
                psutil.Process(popen.pid).cpu_affinity(list(cpus))
        self.procs.append((role, popen, log))
        sampler = TreeSampler(functools.partial(_alive, (popen.pid,)))
        sampler.start()
        self.samplers[popen.pid] = sampler

    def execute(self) -> LoadResult:
        spec = self.spec
        env = {**os.environ, CONFIG_ENV: json.dumps(self.config()),
               RESULT_ENV: str(self.result_path), "PYTHONUNBUFFERED": "1"}
        cpus = tuple(spec.cpus) if spec.cpus else ()
        expect = self.workers + self.driver.remote_workers
        port = self.driver.master_port or (DEFAULT_MASTER_PORT if self.driver.remote_workers
                                           else free_port())
        usage: dict[int, Usage] = {}
        try:
            self.spawn("local" if not expect else "master", self.locust_cmd(
                *self.master_args(port)), cpus, env)
            for k in range(self.workers):
                cpu = (cpus[k % len(cpus)],) if cpus else None
                self.spawn("worker", self.locust_cmd(
                    "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)),
                    cpu, env)
            master = self.procs[0][1]
            deadline = time.monotonic() + STARTUP_S + spec.warmup_s + spec.duration_s \
                + self.stop_timeout_s + RESULT_MARGIN_S
            self._wait(master, deadline)
        finally:
            self._stop_all()
            for pid, sampler in self.samplers.items():
                usage[pid] = sampler.stop() if sampler.running else Usage(
                    samples=sampler.samples)
        data = self._read_result(master)
        return self._result(data, usage)

    def _wait(self, master: subprocess.Popen[bytes], deadline: float) -> None:
        while master.poll() is None:
            if time.monotonic() > deadline:
                raise GeneratorError(f"Locust did not finish in time; its log ends: "
                                     f"{self._log_tail(0)}")
            for index, (role, popen, _) in enumerate(self.procs[1:], start=1):
                if popen.poll() is not None and not self.result_path.exists():
                    raise GeneratorError(f"Locust {role} (pid {popen.pid}) exited with code "
                                         f"{popen.returncode}; its log ends: "
                                         f"{self._log_tail(index)}")
            time.sleep(POLL_S)

    def _stop_all(self) -> None:
        """TERM, then KILL, every Locust process (workers outlive their master by Locust's
        stop timeout otherwise); every one reaped."""
        for _, popen, _ in self.procs:
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for _, popen, _ in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                popen.wait(max(0.0, deadline - time.monotonic()))
            if popen.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(popen.pid, signal.SIGKILL)
                popen.wait()

    def _log_tail(self, index: int) -> str:
        try:
            text = self.procs[index][2].read_text(errors="replace")
        except (OSError, IndexError):
            return "(no log)"
        return text[-LOG_TAIL_CHARS:].strip() or "(empty)"

    def _read_result(self, master: subprocess.Popen[bytes]) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.result_path.read_text())
        except (OSError, ValueError):
            raise GeneratorError(f"Locust exited with code {master.returncode} without the "
                                 f"listener's result; its log ends: {self._log_tail(0)}") from None
        if not data.get("processes"):
            raise GeneratorError(f"no Locust process reported any measurement; the log ends: "
                                 f"{self._log_tail(0)}")
        return data

    def _result(self, data: dict[str, Any], usage: dict[int, Usage]) -> LoadResult:
        result = build_result(self.spec, data, usage, stop_timeout_s=self.stop_timeout_s)
        reported = {row.pid for row in result_rows(result)}
        for role, popen, _ in self.procs:
            if popen.pid not in reported:
                result.notes.append(f"Locust {role} pid {popen.pid} sent no measurement")
        return result


@dataclass(kw_only=True)
class ProcessRow:
    """One Locust process of a trial: who, where, and how busy it was over the window."""

    role: str
    host: str
    pid: int
    cpus: list[int]
    cpu_pct: float | None = None
    cpu_s: float | None = None
    cpu_source: str | None = None  # "harness" (sampled at 4 Hz) or "self-reported"
    requests: int | None = None
    completed: int | None = None
    errors: int | None = None
    final: bool | None = None

    @classmethod
    def of(cls, proc: dict[str, Any], usage: dict[int, Usage], m0: int, m1: int,
           book: LocustBook | None) -> ProcessRow:
        row = cls(role=str(proc.get("role")), host=str(proc.get("host")),
                  pid=int(proc.get("pid", 0)), cpus=list(proc.get("cpus") or []))
        sampled = usage.get(row.pid)
        pct = sampled.cpu_pct(m0, m1) if sampled is not None else None
        if sampled is not None and pct is not None:
            row.cpu_pct, row.cpu_source = pct, "harness"
            row.cpu_s = sampled.cpu_at(m1) - sampled.cpu_at(m0)
        elif proc.get("window_s"):
            # a worker on another machine: its own account of its CPU time over the window
            row.cpu_s = float(proc["cpu_s"])
            row.cpu_pct = 100.0 * row.cpu_s / float(proc["window_s"])
            row.cpu_source = "self-reported"
        if book is not None:
            row.requests, row.completed = book.requests, book.completed
            row.errors, row.final = sum(book.errors.values()), bool(proc.get("final"))
        return row

    def to_dict(self) -> dict[str, object]:
        out = asdict(self)
        if self.cpu_pct is not None:
            out["cpu_pct"] = round(self.cpu_pct, 1)
        if self.cpu_s is not None:
            out["cpu_s"] = round(self.cpu_s, 4)
        return out

    def saturation_reason(self) -> str | None:
        if self.cpu_pct is None or self.cpu_pct <= SATURATED_CPU_PCT:
            return None
        return (f"Locust {self.role} process (pid {self.pid} on {self.host}) used "
                f"{self.cpu_pct:.0f}% of a CPU (> {SATURATED_CPU_PCT:.0f}%): Locust, not the "
                "server, was the limit; run more --locust-workers (one per generator CPU) or "
                "use --driver builtin")


def result_rows(result: LoadResult) -> list[ProcessRow]:
    return [ProcessRow(**row) for row in result.generator_processes]  # type: ignore[arg-type]


def build_result(spec: LoadSpec, data: dict[str, Any], usage: dict[int, Usage], *,
                 stop_timeout_s: float) -> LoadResult:
    """The LoadResult of the listener's file: every process's book merged as the built-in
    generator's reports are, then Locust's CPU (sampled by the harness) and its notes."""
    m0, m1 = int(data["m0_ns"]), int(data["m1_ns"])
    books = [LocustBook.from_dict(p["book"], hdr=HDR) for p in data["processes"]]
    reports = [to_worker_report(k, book, m0_ns=m0, m1_ns=m1) for k, book in enumerate(books)]
    result = merge_reports(reports, url=spec.url, concurrency=spec.concurrency, rate=None,
                           duration_s=spec.duration_s)
    result.by_name, result.by_name_errors = merge_by_name(books)

    rows = [ProcessRow.of(p, usage, m0, m1, book)
            for p, book in zip(data["processes"], books, strict=True)]
    master = data.get("master") or {}
    if master.get("role") == "master":
        rows.insert(0, ProcessRow.of(master, usage, m0, m1, None))
    reasons = [r for r in (row.saturation_reason() for row in rows) if r is not None]
    result.saturation_reasons = reasons
    result.saturated = bool(reasons)
    result.generator_proc_cpu_pct = [row.cpu_pct for row in rows if row.cpu_pct is not None]
    result.generator_cpu_pct = sum(result.generator_proc_cpu_pct)
    result.generator_cpu_s = sum(row.cpu_s for row in rows if row.cpu_s is not None)
    result.generator_processes = [row.to_dict() for row in rows]
    result.procs = len(books)
    result.peak_connections = spec.concurrency or 0
    result.window_start_ns, result.window_end_ns = m0, m1

    notes = list(result.notes)
    missing = [row for row in rows if row.final is False]
    if missing:
        notes.append(f"{len(missing)} Locust worker(s) never sent their last report (pid "
                     f"{', '.join(str(row.pid) for row in missing)}): their counts end at their "
                     "last periodic report")
    killed = sum(book.killed for book in books)
    if killed:
        notes.append(f"{killed} request(s) still unanswered {stop_timeout_s:g} s "
                     "(--stop-timeout) after the window were stopped by Locust: counted as "
                     "timeouts")
    if data.get("exceptions"):
        notes.append(f"{data['exceptions']} exception(s) raised in Locust tasks outside "
                     "requests (see the locustfile)")
    result.notes = notes
    result.client_settings = [f"locust {locust_version()}", f"{len(books)} load process(es)",
                              f"stop timeout {stop_timeout_s:g} s"]
    return result


def to_worker_report(proc: int, book: LocustBook, *, m0_ns: int, m1_ns: int) -> WorkerReport:
    """One Locust process's book in the built-in generator's report form, for merge_reports."""
    second_requests = [(h.get_total_count() if h is not None else 0) + lost
                       for h, lost in zip(book.sec_hist, book.sec_lost, strict=True)]
    errors = {kind: book.errors[kind] for kind in ERROR_KINDS}
    errors["total"] = sum(errors.values())
    latency = book.latency()
    return WorkerReport(
        proc=proc, requests=latency.get_total_count() + book.out_of_range, errors=errors,
        latency_hdr=latency.encode(), service_hdr=None, out_of_range=book.out_of_range,
        second_requests=second_requests, second_completed=list(book.sec_completed),
        second_errors=list(book.sec_errors),
        second_latency_hdr=[h.encode() if h is not None else None for h in book.sec_hist],
        behind=0, behind_generator=0, behind_at_cap=0, completed=book.completed, resent=0,
        window_start_ns=m0_ns, window_end_ns=m1_ns, scheduled=0, cpu_s=0.0,
        window_s=(m1_ns - m0_ns) / 1e9, peak_connections=0, max_connections=0,
        precise_timer=True)


def merge_by_name(books: Sequence[LocustBook]) -> tuple[dict[str, HdrHistogram], dict[str, int]]:
    """Per request name: latency histograms added across processes, error counts summed."""
    hists: dict[str, HdrHistogram] = {}
    errors: dict[str, int] = {}
    for book in books:
        for name, hist in book.by_name.items():
            hists.setdefault(name, new_histogram()).add(hist)
        for name, count in book.by_name_errors.items():
            errors[name] = errors.get(name, 0) + count
    return dict(sorted(hists.items())), dict(sorted(errors.items()))


def worker_command(master_host: str, *, master_port: int = DEFAULT_MASTER_PORT,
                   locustfile: str | Path | None = None) -> list[str]:
    """The command that runs one Locust worker for a harness master on another machine."""
    files = f"{Path(locustfile).resolve() if locustfile else PLAIN_LOCUSTFILE},{LISTENER}"
    return [sys.executable, "-m", "locust", "--worker", "--master-host", master_host,
            "--master-port", str(master_port), "-f", files]


def run_worker(master_host: str, *, master_port: int = DEFAULT_MASTER_PORT,
               locustfile: str | Path | None = None) -> int:
    """``harness locust-worker``: a Locust worker for a harness master on another machine,
    in the foreground until Ctrl-C. A Locust worker quits with its master, and the harness
    starts a master per trial, so the worker is started again each time it quits."""
    if locust_version() is None:
        raise UsageError("harness locust-worker needs Locust: pip install 'harness[locust]'")
    if locustfile is not None and not Path(locustfile).is_file():
        raise UsageError(f"--locustfile {locustfile}: no such file")
    command = worker_command(master_host, master_port=master_port, locustfile=locustfile)
    print(" ".join(command), flush=True)
    try:
        while True:
            code = subprocess.call(command)
            print(f"locust worker exited with code {code}; starting it again for the next "
                  "trial (Ctrl-C to stop)", flush=True)
            time.sleep(WORKER_RESTART_S)
    except KeyboardInterrupt:
        return 0


def _alive(pids: Sequence[int]) -> list[psutil.Process]:
    procs = []
    for pid in pids:
        with contextlib.suppress(psutil.Error):
            procs.append(psutil.Process(pid))
    return procs

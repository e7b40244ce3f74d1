"""Does the server CPU's pace (harness.cpuspeed) follow the server's throughput?

Two measurements, the figures harness.cpuspeed and the README quote:

``trace`` (default): one server (uvicorn) pinned to the server CPU, one closed-loop load of
--seconds at --concurrency on /io?ms=50, with the probe running on the server CPU; per second,
the requests answered and the probe's median, and the correlation between them (per second,
and over 5-second windows).

``runs DIR ...``: over the valid sweep trials of run folders whose server was at --cpu-min %
CPU or more, how far each trial's throughput is from its server's median repeat (log ratio)
against its ``cpu_slowdown``: the correlation, and the mean by slowdown band.

    .venv/bin/python benchmarks/cpu_pace.py [--seconds 60] [--concurrency 512]
    .venv/bin/python benchmarks/cpu_pace.py runs results/RUN_A results/RUN_B ...
"""

from __future__ import annotations

import argparse
import math
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.cpus import allocate_cpus
from harness.cpuspeed import CpuSpeed
from harness.loadgen import LoadSpec, run_load

SERVE_READY_TIMEOUT_S = 60.0
WINDOW_S = 5  # seconds per window for the smoothed correlation
BANDS = ((0.0, 0.9), (0.9, 1.1), (1.1, 1.3), (1.3, 1.5), (1.5, 1.7), (1.7, math.inf))
NS_PER_S = 1_000_000_000


def trace(seconds: int, concurrency: int) -> int:
    cpus = allocate_cpus(None)
    harness = [sys.executable, "-m", "harness.cli"]
    serve = subprocess.Popen([*harness, "serve", "uvicorn"], stdout=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        url = None
        deadline = time.monotonic() + SERVE_READY_TIMEOUT_S
        for line in serve.stdout:
            found = re.search(r"listening on (http://\S+)", line)
            if found:
                url = found.group(1)
                break
            if time.monotonic() > deadline:
                break
        if url is None:
            print("the server did not start", file=sys.stderr)
            return 1
        with CpuSpeed(cpus.server[:1]) as speed:
            result = run_load(LoadSpec(url=f"{url}/io?ms=50", concurrency=concurrency,
                                       duration_s=float(seconds), warmup_s=1.0,
                                       cpus=tuple(cpus.loadgen)))
            completed, probe = [], []
            for point in result.series:
                at = result.window_start_ns + point.second * NS_PER_S
                readings = speed.readings(at, at + NS_PER_S - 1)
                if readings:
                    completed.append(float(point.completed))
                    probe.append(statistics.median(readings) / 1e6)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
    print(f"uvicorn, {concurrency} clients, {seconds} s: {result.achieved_rps:,.0f} req/s")
    print("answered per second:", " ".join(f"{c:.0f}" for c in completed))
    print("probe ms per second:", " ".join(f"{p:.1f}" for p in probe))
    per_second = float(np.corrcoef(completed, probe)[0, 1])
    n = len(completed) // WINDOW_S * WINDOW_S
    sums = np.add.reduceat(np.asarray(completed[:n]), range(0, n, WINDOW_S))
    means = [float(np.mean(probe[i:i + WINDOW_S])) for i in range(0, n, WINDOW_S)]
    print(f"correlation, per second: {per_second:+.2f}; over {WINDOW_S} s windows: "
          f"{float(np.corrcoef(sums, means)[0, 1]):+.2f}")
    return 0


def runs(folders: Sequence[str], cpu_min: float) -> int:
    frames = []
    for folder in folders:
        trials = pd.read_csv(Path(folder) / "trials.csv")
        if "cpu_slowdown" not in trials:
            print(f"{folder}: no cpu_slowdown column (made before the probe): skipped")
            continue
        trials["run"] = folder
        frames.append(trials)
    if not frames:
        return 1
    t = pd.concat(frames)
    t = t[(t["phase"] == "sweep") & (t["outcome"] == "valid") & (t["load_model"] == "closed")
          & (t["server_cpu_pct"] >= cpu_min) & t["cpu_slowdown"].notna()].copy()
    t["rel"] = np.log(t["achieved_rps"]) - t.groupby(["run", "server", "concurrency"])[
        "achieved_rps"].transform(lambda x: float(np.log(x).median()))
    r = float(np.corrcoef(t["rel"], np.log(t["cpu_slowdown"]))[0, 1])
    print(f"{len(t)} trials at >= {cpu_min:g} % server CPU; correlation of log throughput "
          f"against its server's median repeat with log cpu_slowdown: {r:+.2f} (r^2 {r * r:.2f})")
    for low, high in BANDS:
        band = t[(t["cpu_slowdown"] >= low) & (t["cpu_slowdown"] < high)]
        if len(band):
            print(f"  slowdown {low:g}-{high:g}x: {len(band):3d} trials, throughput "
                  f"{math.expm1(band['rel'].mean()):+.1%} mean, "
                  f"{math.expm1(band['rel'].median()):+.1%} median against their server's "
                  f"median repeat")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("mode", nargs="?", default="trace", choices=("trace", "runs"))
    parser.add_argument("folders", nargs="*", help="run folders (runs)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--cpu-min", type=float, default=50.0,
                        help="runs: only trials at this server CPU %% or more")
    args = parser.parse_args(argv)
    if args.mode == "runs":
        return runs(args.folders, args.cpu_min)
    return trace(args.seconds, args.concurrency)


if __name__ == "__main__":
    sys.exit(main())

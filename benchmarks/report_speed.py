"""How long write_report takes for a run of 100+ trials (target: under REPORT_BUDGET_S).

Builds a synthetic run folder (real RunWriter output, real HDR histograms) in a temporary
folder, then times write_report on it, best of a few rounds.

    .venv/bin/python benchmarks/report_speed.py [--servers 6] [--repeats 3] [--rounds 3]
        [--slo p99=200ms | --slo off]  (with an objective: capacity searches and capacity.csv)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from harness.analysis import load_run, write_report
from harness.slo import parse_slo

# The synthetic run folders are test code (tests.support), outside the installed harness package.
# Run as `.venv/bin/python benchmarks/report_speed.py`, Python puts benchmarks/ on sys.path, not
# the repository's root where the tests package is: put the root there.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.support.synthetic import (
    DEFAULT_SERVERS,
    FakeServer,
    SyntheticSpec,
    write_synthetic_run,
)

REPORT_BUDGET_S = 10.0
EXTRA_SERVERS = (
    FakeServer(name="uwsgi", gateway="wsgi", capacity_rps=60.0, cpu_per_request_ms=1.1,
               rss_mb=44.0, workers=3),
    FakeServer(name="granian-asgi", gateway="asgi", capacity_rps=2600.0, cpu_per_request_ms=0.3,
               rss_mb=28.0),
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--servers", type=int, default=6, help="servers (up to 6)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--slo", default="p99=200ms",
                        help="latency objective of the capacity searches, or 'off'")
    args = parser.parse_args(argv)
    slo = None if args.slo == "off" else parse_slo(args.slo)
    servers = (DEFAULT_SERVERS + EXTRA_SERVERS)[: args.servers]
    spec = SyntheticSpec(servers=servers, concurrency=(1, 16, 64, 256), rates=(50.0, 200.0, 800.0),
                         repeats=args.repeats, noisy=("hypercorn",), run_id="report-speed",
                         slo=slo, busy=(("uvicorn", 64),))
    with tempfile.TemporaryDirectory(prefix="report-speed-") as tmp:
        run_dir = write_synthetic_run(Path(tmp) / "report-speed", spec)
        trials = len(load_run(run_dir))
        timings = []
        for _ in range(args.rounds):
            start = time.perf_counter()
            write_report([run_dir])
            timings.append(time.perf_counter() - start)
        size_kb = (run_dir / "report.html").stat().st_size / 1024
    best, worst = min(timings), max(timings)
    verdict = "OK" if worst < REPORT_BUDGET_S else "TOO SLOW"
    print(f"{trials} trials, {len(servers)} servers: write_report best {best:.2f} s, "
          f"worst {worst:.2f} s over {args.rounds} rounds (budget {REPORT_BUDGET_S:.0f} s): "
          f"{verdict}; report.html {size_kb:.0f} KiB")
    return 0 if worst < REPORT_BUDGET_S else 1


if __name__ == "__main__":
    sys.exit(main())

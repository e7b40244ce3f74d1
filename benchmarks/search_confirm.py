"""What measuring the search's last miss again does to capacity figures, side by side.

Runs ``harness run`` on io_bound's close contenders (``--searches N`` each) in alternating rounds,
one with the search's second look at its last miss (``[slo] confirm = true``, the default) and
one without, then prints, per server and variant: the capacities, the spread of their logarithm
(what the t-test behind "tied with the best" sees), the searches that ended below 80 % of the
server's median over both variants (a search a transient ended early), and seconds per search.

    .venv/bin/python benchmarks/search_confirm.py [--rounds 2] [--searches 3]
        [--servers uvicorn,uvicorn-h11,gunicorn-uvicorn,granian-asgi] [--out DIR]

Each round of 4 servers and 3 searches takes about 10 minutes: run it on a quiet machine.
"""

from __future__ import annotations

import argparse
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from harness.scenarios import SCENARIO_DIR

# A search that ended below this share of the server's median ended early.
EARLY_END_FRACTION = 0.8
DEFAULT_SERVERS = "uvicorn,uvicorn-h11,gunicorn-uvicorn,granian-asgi"
# io_bound's own file with only its top level, so each search ramps from a real closed-loop peak
LEVELS = ("concurrency = [1, 16, 64, 256, 512]", "concurrency = [512]")
RATES = ("rate = [50]\n", "")


def variant_scenario(folder: Path, confirm: bool) -> Path:
    text = (SCENARIO_DIR / "io_bound.toml").read_text()
    for old, new in (LEVELS, RATES):
        if old not in text:
            sys.exit(f"io_bound.toml changed: {old!r} is not in it; update this script")
        text = text.replace(old, new)
    text = text.replace("[slo]\n", f"[slo]\nconfirm = {'true' if confirm else 'false'}\n")
    path = folder / f"io_bound_confirm_{'on' if confirm else 'off'}.toml"
    path.write_text(text)
    return path


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=2, help="rounds of both variants")
    parser.add_argument("--searches", type=int, default=3, help="searches per server a run")
    parser.add_argument("--servers", default=DEFAULT_SERVERS)
    parser.add_argument("--out", type=Path, default=None, help="where the run folders go")
    args = parser.parse_args(argv)
    out = args.out or Path(tempfile.mkdtemp(prefix="search_confirm-"))
    out.mkdir(parents=True, exist_ok=True)
    rows: list[pd.DataFrame] = []
    seconds: dict[str, list[float]] = {"on": [], "off": []}
    for round_no in range(args.rounds):
        order = (True, False) if round_no % 2 == 0 else (False, True)
        for confirm in order:
            name = "on" if confirm else "off"
            run_dir = out / f"r{round_no + 1}-{name}"
            command = [str(Path(sys.executable).with_name("harness")), "run", "--scenario",
                       str(variant_scenario(out, confirm)), "--servers", args.servers,
                       "--repeat", "1", "--searches", str(args.searches), "--no-report",
                       "--out", str(run_dir)]
            print("$", " ".join(command), flush=True)
            started = time.monotonic()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            elapsed = time.monotonic() - started
            capacity = pd.read_csv(run_dir / "capacity.csv")
            seconds[name].append(elapsed / len(capacity))
            rows.append(capacity.assign(variant=name, round=round_no + 1))
    table = pd.concat(rows)
    found = table[table["status"] == "found"]
    median = {str(k): float(v) for k, v in found.groupby("server")["capacity_rps"].median().items()}
    print(f"\nrun folders: {out}")
    print(f"{'server':18} {'confirm':7} {'n':>2} {'mean':>7} {'sd log':>6} {'early':>5} "
          f"{'steps':>5}  capacities")
    for (server, variant), group in found.groupby(["server", "variant"]):
        figures = list(group["capacity_rps"])
        logs = [math.log(v) for v in figures]
        sd = statistics.stdev(logs) if len(logs) > 1 else float("nan")
        early = sum(v < EARLY_END_FRACTION * median[str(server)] for v in figures)
        print(f"{server:18} {variant:7} {len(figures):2d} {statistics.fmean(figures):7.0f} "
              f"{sd:6.3f} {early:5d} {group['steps'].mean():5.1f}  "
              + " ".join(f"{v:.0f}" for v in figures))
    for variant, values in seconds.items():
        print(f"confirm {variant}: {statistics.fmean(values):.1f} s of run per search "
              f"(runs: {', '.join(f'{v:.1f}' for v in values)})")
    not_found = table[table["status"] != "found"]
    if len(not_found):
        print(f"{len(not_found)} searches did not end 'found':",
              ", ".join(f"{r.server} {r.variant} {r.status}" for r in not_found.itertuples()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

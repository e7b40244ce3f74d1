"""How often two runs name the same servers with the best, by the rule for "tied" (a model).

From several run folders of one plan, takes each server's repeats at one closed-loop level (or
its capacity searches), estimates its mean and its spread over starts (the log figures), and
checks that the runs differ by no more than that spread predicts (a server-by-run variance
near 0). Then it draws pairs of simulated runs from that model and counts how often both name
the same leading group (harness.analysis.guidance.leading_block), by the rule's margin: 1.0
is a test against any gap, the default SAME_THROUGHPUT_RATIO_MAX against a 5 % one.

    .venv/bin/python benchmarks/tie_agreement.py RUN_DIR RUN_DIR ... [--concurrency 512 |
        --capacity] [--repeats 3 6] [--pairs 2000]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from harness.analysis.stats import SAME_THROUGHPUT_RATIO_MAX, leading_block

MARGINS = (1.0, SAME_THROUGHPUT_RATIO_MAX)


def server_logs(run_dir: Path, concurrency: int | None) -> dict[str, np.ndarray]:
    """Each server's log figures in one run: valid repeats at ``concurrency``, or the plan's
    capacity searches that found one (None)."""
    if concurrency is None:
        table = pd.read_csv(run_dir / "capacity.csv")
        if "pair" in table:
            table = table[table["pair"].isna()]
        table = table[table["status"] == "found"]
        column = "capacity_rps"
    else:
        table = pd.read_csv(run_dir / "trials.csv")
        table = table[(table["load_model"] == "closed") & (table["concurrency"] == concurrency)
                      & (table["outcome"] == "valid")]
        column = "achieved_rps"
    return {str(s): np.log(g[column].to_numpy(dtype=np.float64))
            for s, g in table.groupby("server") if len(g) >= 2}


def model(runs: list[dict[str, np.ndarray]]) -> tuple[dict[str, tuple[float, float]], float]:
    """Per server (in every run): mean and pooled spread of the log figures; and the
    server-by-run variance left once the runs' common shift and the repeats' spread are
    taken out (method of moments on the table of run means)."""
    servers = sorted(set.intersection(*(set(r) for r in runs)))
    means = np.array([[r[s].mean() for r in runs] for s in servers])
    sampling = np.array([[r[s].var(ddof=1) / len(r[s]) for r in runs] for s in servers])
    resid = (means - means.mean(axis=1, keepdims=True) - means.mean(axis=0, keepdims=True)
             + means.mean())
    tau2 = float((resid ** 2).sum() / ((len(servers) - 1) * (len(runs) - 1))
                 - sampling.mean())
    params = {}
    for s, run_means in zip(servers, means, strict=True):
        deviations = np.concatenate([r[s] - r[s].mean() for r in runs])
        dof = sum(len(r[s]) - 1 for r in runs)
        params[s] = (float(run_means.mean()), float(np.sqrt((deviations ** 2).sum() / dof)))
    return params, tau2


def agreement(params: dict[str, tuple[float, float]], repeats: int, margin: float, pairs: int,
              seed: int = 1) -> float:
    rng = np.random.default_rng(seed)

    def group() -> frozenset[str]:
        figures = {s: np.exp(rng.normal(mu, sd, repeats)) for s, (mu, sd) in params.items()}
        order = sorted(figures, key=lambda s: -float(figures[s].mean()))
        return frozenset(leading_block(order, lambda s: list(figures[s]), margin=margin))

    return sum(group() == group() for _ in range(pairs)) / pairs


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("runs", nargs="+", type=Path, help="run folders of one plan (2 or more)")
    parser.add_argument("--concurrency", type=int, default=512)
    parser.add_argument("--capacity", action="store_true", help="capacity searches instead")
    parser.add_argument("--repeats", type=int, nargs="+", default=[3, 6])
    parser.add_argument("--pairs", type=int, default=2000, help="simulated pairs of runs")
    args = parser.parse_args(argv)
    if len(args.runs) < 2:
        parser.error("give two or more run folders")
    runs = [server_logs(r, None if args.capacity else args.concurrency) for r in args.runs]
    params, tau2 = model(runs)
    what = "capacity" if args.capacity else f"{args.concurrency} clients"
    print(f"{what}: {len(params)} servers in all {len(runs)} runs; server-by-run variance of "
          f"the log figure {tau2:+.5f} (0: the runs differ as their repeats predict)")
    for s, (mu, sd) in sorted(params.items(), key=lambda kv: -kv[1][0]):
        print(f"  {s:18} {np.exp(mu):9.0f}  sd of log {sd:.3f}")
    for margin in MARGINS:
        rule = "any gap" if margin == 1.0 else f"a gap beyond {margin - 1:.0%}"
        shares = ", ".join(f"{agreement(params, n, margin, args.pairs):.2f} with {n} repeats"
                           for n in args.repeats)
        print(f"named with the best unless shown behind by {rule}: the same group {shares}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

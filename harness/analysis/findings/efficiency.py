"""CPU efficiency: requests per CPU-second at each server's peak throughput, the most and the
least efficient.
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.findings.common import (
    Context,
    ends_winners,
    indistinct,
    leaders,
    members_text,
    peaks,
    trial_figures,
    trial_ids_of,
)
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    fmt_pct,
    fmt_rps,
    level_phrase,
    names_text,
    row_label,
)


def _efficiency(run: RunData, ranked: pd.DataFrame) -> list[Finding]:
    with_cpu = ranked[ranked["server_cpu_pct"].notna() & (ranked["server_cpu_pct"] > 0)]
    tops = peaks(with_cpu) if not with_cpu.empty else with_cpu
    if len(tops) < 2:
        return []

    def per_cpu_s(row: pd.Series) -> list[float]:
        rps, cpu = trial_figures(run, row, "achieved_rps"), trial_figures(run, row,
                                                                             "server_cpu_pct")
        return [r / (c / 100.0) for r, c in zip(rps, cpu, strict=False) if c > 0]

    his = leaders(tops, "rps_per_cpu_s", per_cpu_s)
    los = leaders(tops, "rps_per_cpu_s", per_cpu_s, lowest=True)
    hi = max(his, key=lambda r: float(r["rps_per_cpu_s"]))
    lo = min(los, key=lambda r: float(r["rps_per_cpu_s"]))

    def part(row: pd.Series) -> str:
        return (f"{row_label(row)} {fmt_rps(row['rps_per_cpu_s'])} requests per CPU-second "
                f"({fmt_rps(row['achieved_rps'])} req/s at {fmt_pct(row['server_cpu_pct'])} CPU, "
                f"{level_phrase(row['load_model'], row['level'])})")

    every = indistinct(his, los, tops)
    if every is not None:
        text = (f"CPU efficiency at each server's peak throughput: the most and the least "
                f"efficient cannot be told apart: {members_text(every, part)}.")
    else:
        text = (f"CPU efficiency at each server's peak throughput: {members_text(his, part)}; "
                f"least efficient: {members_text(los, part)}.")
    names = [names_text(sorted(str(r["server"]) for r in g), HEADLINE_NAMES_MAX)
             for g in (his, los)]
    headline = (f"CPU efficiency: the most, {names[0]} ({fmt_rps(hi['rps_per_cpu_s'])} "
                f"requests per CPU-second); the least, {names[1]} "
                f"({fmt_rps(lo['rps_per_cpu_s'])})." if every is None else
                "CPU efficiency: the most and the least efficient cannot be told apart "
                f"({fmt_rps(lo['rps_per_cpu_s'])}–{fmt_rps(hi['rps_per_cpu_s'])} requests per "
                "CPU-second).")
    return [Finding(topic="efficiency", text=text, run_id=run.run_id, headline=headline,
                    others=() if every is not None else
                    tuple(sorted(str(r["server"]) for r in los)),
                    figures=(float(hi["rps_per_cpu_s"]), float(lo["rps_per_cpu_s"])),
                    unit="requests per CPU-second",
                    trial_ids=trial_ids_of(*his, *los), winners=ends_winners(his, every),
                         values={"ranked": float(every is None),
                                 "rps_per_cpu_s_best": hi["rps_per_cpu_s"],
                                 "rps_best": hi["achieved_rps"], "cpu_best": hi["server_cpu_pct"],
                                 "rps_per_cpu_s_worst": lo["rps_per_cpu_s"],
                                 "rps_worst": lo["achieved_rps"],
                                 "cpu_worst": lo["server_cpu_pct"]})]


def find(ctx: Context) -> list[Finding]:
    return _efficiency(ctx.run, ctx.ranked)

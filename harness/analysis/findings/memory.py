"""Memory: each server's peak PSS (else RSS), the least and the most."""

from __future__ import annotations

import pandas as pd

from harness.analysis.findings.common import (
    Context,
    ends_winners,
    indistinct,
    leaders,
    members_text,
)
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import MIN_REPEATS_FOR_STATS
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    fmt_mb,
    fmt_ratio,
    names_text,
    row_label,
)


def _memory(run: RunData, ranked: pd.DataFrame) -> list[Finding]:
    trials = run.trials
    valid_ids = {t for ids in ranked["trial_ids"] for t in ids}
    rows = trials[trials["trial_id"].isin(valid_ids)]
    # PSS splits the pages forked workers share between them; RSS counts them once per worker
    # and so overstates pre-fork servers. PSS when every row has it, else RSS.
    column, label = ("server_pss_mb", "PSS") if rows["server_pss_mb"].notna().all() \
        else ("server_rss_mb", "RSS")
    rows = rows[rows[column].notna()]
    if rows["server"].nunique() < 2:
        return []
    # The peak of each server: the row where its memory was highest; its repeats' figures:
    # each repeat's peak (a repeat restarts the server).
    peak_idx = rows.groupby("server", observed=True)[column].idxmax()
    peaks = rows.loc[peak_idx.tolist()].sort_values([column, "trial_id"])

    def per_repeat(row: pd.Series) -> list[float]:
        mine = rows[rows["server"] == row["server"]]
        return [float(v) for v in mine.groupby("repeat")[column].max()]

    repeated = rows["repeat"].nunique() >= MIN_REPEATS_FOR_STATS
    lows = leaders(peaks, column, per_repeat, lowest=True)
    highs = leaders(peaks, column, per_repeat)
    low = min(lows, key=lambda r: float(r[column]))
    high = max(highs, key=lambda r: float(r[column]))
    ratio = high[column] / low[column]

    def members(group: list[pd.Series]) -> str:
        return members_text(group, lambda r: f"{row_label(r)} {fmt_mb(r[column])} MB "
                                             f"({r['workers']} worker(s))", repeated)

    every = indistinct(lows, highs, peaks)
    if every is not None:
        text = (f"Memory ({label} at its peak): the least and the most cannot be told apart: "
                f"{members(every)}.")
    else:
        text = (f"Memory ({label} at its peak): the least: {members(lows)}; the most: "
                f"{members(highs)}, {fmt_ratio(ratio)} the least.")
    names = [names_text(sorted(str(r["server"]) for r in g), HEADLINE_NAMES_MAX)
             for g in (lows, highs)]
    headline = (f"Memory ({label}): the least, {names[0]} ({fmt_mb(low[column])} MB); the "
                f"most, {names[1]} ({fmt_mb(high[column])} MB)." if every is None else
                f"Memory ({label}): the least and the most cannot be told apart "
                f"({fmt_mb(low[column])}–{fmt_mb(high[column])} MB).")
    return [Finding(topic="memory", text=text, run_id=run.run_id, headline=headline,
                    others=() if every is not None else
                    tuple(sorted(str(r["server"]) for r in highs)),
                    figures=(float(low[column]), float(high[column])), unit="MB",
                    ratio=float(ratio),
                         trial_ids=tuple(dict.fromkeys(str(r["trial_id"]) for r in lows + highs)),
                         winners=ends_winners(lows, every),
                         values={"ranked": float(every is None),
                                 "pss": float(column == "server_pss_mb"), "low_mb": low[column],
                                 "high_mb": high[column], "ratio": ratio})]


def find(ctx: Context) -> list[Finding]:
    return _memory(ctx.run, ctx.ranked)

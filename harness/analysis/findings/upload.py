"""Uploads (``kind = "upload"``: closed-loop levels whose requests carry a body of
``upload_bytes``): MB/s per server per body size, and each server's peak memory at the largest
size against its own at the smallest.

MB/s is requests/s x body size (every answer's length and SHA-256 was checked, so each counted
request delivered its whole body), in MB of 2^20 bytes, as the memory columns. A server's
figure at a size is its best valid level (the concurrency where it moved the most bytes).

Memory is the peak over the trial's measured window (harness.sampling; verify's own uploads,
before the trials, are outside it), PSS when every row has it, else RSS, and counts every
measured trial, valid or not: what the server held under the load it got is a fact about it,
whoever limited that load. The baseline is the same server at the run's smallest size, where
bodies are too small to matter: the growth over it, in bodies of the largest size, says how
many whole bodies the server held at once (a server that buffers each body before the app
reads it holds about one per client in flight; one that streams it to the app holds a chunk).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis.findings.common import Context, leaders, tie_phrase, trial_ids_of
from harness.analysis.findings.record import STATED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import MIN_REPEATS_FOR_STATS
from harness.analysis.wording import HEADLINE_NAMES_MAX, fmt_mb, fmt_ratio, fmt_rps, names_text
from harness.units import format_size

UPLOAD_KIND = "upload"
# MB as the memory columns count it (harness.sampling.MB), so MB/s and MB read alike.
BYTES_PER_MB = 1024 * 1024


def is_upload(meta: Mapping[str, Any]) -> bool:
    """Whether a run's scenario is an upload one (run.json scenario.kind)."""
    return str((meta.get("scenario") or {}).get("kind") or "") == UPLOAD_KIND


def mb_per_s(rps: float, upload_bytes: float) -> float:
    """Requests/s carrying ``upload_bytes`` each, in MB/s."""
    return rps * upload_bytes / BYTES_PER_MB


def upload_rows(summary: pd.DataFrame) -> pd.DataFrame:
    """The summary's upload levels, with ``mb_s`` (their MB/s)."""
    if summary.empty or "upload_bytes" not in summary.columns:
        return summary.iloc[0:0].assign(mb_s=pd.Series(dtype="float64"))
    rows = summary[summary["upload_bytes"].notna()]
    return rows.assign(mb_s=rows["achieved_rps"].astype("float64")
                       * rows["upload_bytes"].astype("float64") / BYTES_PER_MB)


def memory_column(rows: pd.DataFrame) -> tuple[str, str]:
    """PSS when every measured row has it (it splits the pages forked workers share), else
    RSS: (column, label)."""
    measured = rows[rows["server_rss_mb"].notna()]
    return (("server_pss_mb", "PSS") if not measured.empty
            and measured["server_pss_mb"].notna().all() else ("server_rss_mb", "RSS"))


def _best_per_server(rows: pd.DataFrame) -> pd.DataFrame:
    """Each server's valid level with the most MB/s (ties: the fewer clients)."""
    valid = rows[rows["valid"] & (rows["achieved_rps"] > 0)]
    if valid.empty:
        return valid
    ordered = valid.sort_values(["server", "mb_s", "level"], ascending=[True, False, True])
    return ordered.groupby("server", sort=False).head(1)


def _mb_figures(run: RunData, row: pd.Series) -> list[float]:
    trials = run.trials.set_index("trial_id")
    mine = trials.loc[[t for t in row["trial_ids"] if t in trials.index]]
    mine = mine[mine["status"] == "ok"]
    return [mb_per_s(float(r), float(row["upload_bytes"])) for r in mine["achieved_rps"]]


def _first_reason(reason: str) -> str:
    """The first of a trial's reasons, up to a "; " outside parentheses (a reason's own
    parenthesis may hold one)."""
    depth = 0
    for at, char in enumerate(reason):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if char == ";" and depth == 0:
            return reason[:at]
    return reason


def _throughput(ctx: Context, rows: pd.DataFrame, size: int) -> Finding | None:
    """MB/s per server at one body size: the most first."""
    best = _best_per_server(rows)
    lost = sorted(set(rows["server"].astype(str)) - set(best["server"].astype(str)))
    if best.empty and not lost:
        return None
    size_text = format_size(size)
    ordered = best.sort_values(["mb_s", "server"], ascending=[False, True])
    top = leaders(ordered, "mb_s", lambda r: _mb_figures(ctx.run, r)) if not best.empty else []
    top_names = [str(r["server"]) for r in top]
    others = [str(s) for s in ordered["server"] if str(s) not in top_names]
    parts = [f"{r['server']} {fmt_rps(r['mb_s'])} MB/s ({fmt_rps(r['achieved_rps'])} req/s, "
             f"{r['level']:g} clients)" for _, r in ordered.iterrows()]
    reasons = {str(r["server"]): _first_reason(str(r["invalid_reason"]))
               for _, r in rows.iterrows() if str(r["server"]) in lost}
    text = (f"{size_text} uploads, each server at its best level: "
            + ("; ".join(parts) if parts else "no valid level")
            + (f" ({tie_phrase(top)} among the first {len(top)})" if len(top) > 1 else "")
            + ("; not valid: " + ", ".join(f"{s} ({reasons[s]})" for s in lost)
               if lost else "") + ".")
    if top:
        first = ordered.iloc[0]
        headline = (f"{size_text} uploads: the most MB/s on "
                    f"{names_text(top_names, HEADLINE_NAMES_MAX)} "
                    f"({fmt_rps(first['mb_s'])} MB/s)")
        if others:
            last = ordered.iloc[-1]
            headline += f"; the least on {last['server']} ({fmt_rps(last['mb_s'])} MB/s)"
        headline += "."
    else:
        headline = f"{size_text} uploads: no server was measured validly."
    values: dict[str, float] = {}
    for _, r in ordered.iterrows():
        values[f"mb_s_{r['server']}"] = float(r["mb_s"])
        values[f"rps_{r['server']}"] = float(r["achieved_rps"])
        values[f"clients_{r['server']}"] = float(r["level"])
    return Finding(topic="upload", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=tuple(top_names), others=tuple(others + lost),
                   unit="MB/s", question={"upload": float(size), "size": size_text,
                                          "not_valid": lost},
                   trial_ids=trial_ids_of(*(r for _, r in rows.iterrows())), values=values)


def _peaks(rows: pd.DataFrame, column: str) -> dict[str, pd.Series]:
    """Each server's measured level with the most memory in ``rows``."""
    measured = rows[(rows["measured_repeats"] > 0) & rows[column].notna()]
    out: dict[str, pd.Series] = {}
    for _, row in measured.sort_values([column, "level"], ascending=[False, True]).iterrows():
        out.setdefault(str(row["server"]), row)
    return out


def _memory(ctx: Context, rows: pd.DataFrame, sizes: list[int]) -> Finding | None:
    """Peak memory per server at the largest size, against its own at the smallest."""
    column, label = memory_column(rows)
    largest, smallest = sizes[-1], sizes[0]
    peaks = _peaks(rows[rows["upload_bytes"] == largest], column)
    if not peaks:
        return None
    bases = _peaks(rows[rows["upload_bytes"] == smallest], column) if smallest < largest \
        else {}
    big, small = format_size(largest), format_size(smallest)
    order = sorted(peaks, key=lambda s: (float(peaks[s][column]), s))
    values: dict[str, float] = {"pss": float(column == "server_pss_mb"),
                                "upload": float(largest)}
    parts = []
    for server in order:
        peak = float(peaks[server][column])
        values[f"peak_{server}"] = peak
        part = f"{server} {fmt_mb(peak)} MB"
        base = bases.get(server)
        if base is not None and float(base[column]) > 0:
            base_mb = float(base[column])
            # memory given back below the baseline is no body held
            bodies = max(0.0, (peak - base_mb) * BYTES_PER_MB / largest)
            values[f"base_{server}"] = base_mb
            values[f"ratio_{server}"] = peak / base_mb
            values[f"bodies_{server}"] = bodies
            part += (f" ({fmt_ratio(peak / base_mb)} its {fmt_mb(base_mb)} MB at {small}: "
                     f"{'+' if peak >= base_mb else '−'}{fmt_mb(abs(peak - base_mb))} MB, "
                     f"{bodies:.1f} bodies of {big})")
        if not bool(peaks[server]["valid"]):
            part += f" [trial {peaks[server]['outcome']}]"
        parts.append(part)
    repeated = bool((rows["repeats"] >= MIN_REPEATS_FOR_STATS).all())
    text = (f"Peak memory ({label}, over each trial's measured window) with {big} uploads, at "
            f"each server's highest level"
            + (f", against its own at {small}" if bases else "") + ": "
            + "; ".join(parts) + "."
            + ("" if repeated else " Measured once: a few MB apart is noise."))
    low, high = order[0], order[-1]
    headline = f"{big} uploads, peak memory ({label}): the least on {low} " \
               f"({fmt_mb(values[f'peak_{low}'])} MB)"
    if high != low:
        headline += f", the most on {high} ({fmt_mb(values[f'peak_{high}'])} MB"
        if f"ratio_{high}" in values:
            headline += f", {fmt_ratio(values[f'ratio_{high}'])} its own at {small}"
        headline += ")"
    headline += "."
    ratio = (values[f"peak_{high}"] / values[f"peak_{low}"]
             if values[f"peak_{low}"] > 0 else math.nan)
    return Finding(topic="upload_memory", run_id=ctx.run.run_id, text=text, headline=headline,
                   verdict=STATED, winners=(low,), others=tuple(order[1:]), unit="MB",
                   figures=(values[f"peak_{low}"], values[f"peak_{high}"]),
                   ratio=None if math.isnan(ratio) else ratio,
                   question={"upload": float(largest), "size": big, "baseline": small
                             if bases else None, "memory": label},
                   trial_ids=trial_ids_of(*peaks.values(), *bases.values()), values=values)


def find(ctx: Context) -> list[Finding]:
    rows = upload_rows(ctx.summary)
    if rows.empty:
        return []
    sizes = sorted({int(s) for s in rows["upload_bytes"]})
    found = [_throughput(ctx, rows[rows["upload_bytes"] == size], size) for size in sizes]
    found.append(_memory(ctx, rows, sizes))
    return [f for f in found if f is not None]

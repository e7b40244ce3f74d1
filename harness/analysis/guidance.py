"""Guidance: sentences computed from the trials, each carrying the trial ids it came from.

Every item's numbers are recomputed from rows of trials.csv (and, for pooled percentiles, the
histograms those rows name): throughput is the mean ``achieved_rps`` of the referenced repeats,
CPU the mean ``server_cpu_pct``, memory the peak ``server_pss_mb`` (else ``server_rss_mb``),
p50/p99 the percentile of the referenced histograms added together. Invalid levels (any repeat
invalid or not measured) are never ranked; they appear only as caveats, with their reasons.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from scipy import stats

from harness.analysis.frames import RunData
from harness.cpus import parse_cpus
from harness.errors import UsageError

# A level whose repeats' throughput varies more than this (coefficient of variation) is noisy.
NOISY_CV_MAX = 0.10
# Without repeats, a difference this small between two servers may be run-to-run noise. Measured
# on the shared 2-core VM of the reference run: five runs of the default io_bound plan gave
# uvicorn 5,384 to 7,281 req/s at 512 clients (a server near 100 % of its CPU moves with what
# the neighbours take); most servers moved about 10 %, a few single levels more (granian-wsgi,
# hello, 256 clients: 58k and 40k req/s in two runs).
SINGLE_RUN_NOISE_FRACTION = 0.25
# The pair most teams weigh: gunicorn's sync workers against uvicorn's event loop.
CLASSIC_PAIR = ("gunicorn-sync", "uvicorn")
# Below this ratio two throughputs are reported as "about the same".
SAME_THROUGHPUT_RATIO_MAX = 1.05
CONFIDENCE_LEVEL = 0.95
MIN_REPEATS_FOR_STATS = 3

KIND_LABELS = {
    "io": "I/O-bound",
    "cpu": "CPU-bound",
    "hello": "Plaintext hello",
    "json": "JSON",
    "websocket": "WebSocket echo",
    "ws": "WebSocket echo",
}


@dataclass(frozen=True, kw_only=True)
class GuidanceItem:
    """One sentence of guidance and where its numbers come from.

    ``trial_ids`` are the rows of trials.csv the numbers were computed from (empty when the
    sentence is about run.json, such as a server that was not supported); ``values`` holds the
    unrounded numbers that appear in ``text``.
    """

    topic: str
    text: str
    run_id: str
    trial_ids: tuple[str, ...] = ()
    values: Mapping[str, float] = field(default_factory=dict)
    caveat: bool = False


# -- number formatting (the report and the tests share these) ---------------------------------

def fmt_rps(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_ms(value: float) -> str:
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}" if value >= 10 else f"{value:.2f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.1f}×"


def fmt_pct(value: float) -> str:
    return f"{value:.0f} %"


def fmt_mb(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.1f}"


def level_phrase(load_model: str, level: float) -> str:
    if load_model == "closed":
        return f"{level:g} concurrent clients"
    if load_model == "broadcast":
        return f"{level:g} subscribers (broadcast)"
    if load_model == "idle":
        return f"{level:g} idle connections"
    return f"{level:g} req/s offered (open loop)"


def kind_label(meta: Mapping[str, Any]) -> str:
    scenario = meta.get("scenario") or {}
    kind = str(scenario.get("kind") or "")
    return KIND_LABELS.get(kind, str(scenario.get("name") or kind or "Scenario"))


def cpu_phrase(cpus_text: str) -> str:
    try:
        count = len(parse_cpus(cpus_text)) if cpus_text else 0
    except UsageError:
        return f"CPUs {cpus_text}"
    if count == 0:
        return "same CPU set"
    return "same single CPU" if count == 1 else f"same {count} CPUs"


def _row_label(row: pd.Series) -> str:
    return f"{row['server']} ({str(row['gateway']).upper()})"


def _ids(*rows: pd.Series) -> tuple[str, ...]:
    ids: list[str] = []
    for row in rows:
        ids.extend(str(t) for t in row["trial_ids"])
    return tuple(dict.fromkeys(ids))


def _best(rows: pd.DataFrame, column: str = "achieved_rps", *, lowest: bool = False) -> pd.Series:
    # Ties go to the first server by name, so the same data always gives the same sentence.
    ordered = rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")
    return ordered.iloc[0]


def _ranked(summary: pd.DataFrame) -> pd.DataFrame:
    return summary[summary["valid"] & (summary["achieved_rps"] > 0)]


def servers_per_level(rows: pd.DataFrame) -> dict[float, int]:
    counts = rows.groupby("level")["server"].nunique()
    return {float(level): int(n) for level, n in zip(counts.index.tolist(), counts.tolist(),
                                                      strict=True)}


def pick_level(rows: pd.DataFrame) -> tuple[str, float] | None:
    """The level with the most servers in ``rows`` (ties: the highest load), closed loop first."""
    for load_model in ("closed", "open"):
        counts = servers_per_level(rows[rows["load_model"] == load_model])
        if counts:
            return load_model, max(counts, key=lambda lv: (counts[lv], lv))
    return None


def _best_throughput(run: RunData, ranked: pd.DataFrame, kind: str) -> list[GuidanceItem]:
    if ranked.empty:
        return []
    closed = ranked[ranked["load_model"] == "closed"]
    row = _best(closed if not closed.empty else ranked)
    text = (f"{kind}: the highest valid throughput was {_row_label(row)}, "
            f"{fmt_rps(row['achieved_rps'])} req/s at "
            f"{level_phrase(row['load_model'], row['level'])}, p99 {fmt_ms(row['p99_ms'])} ms")
    values: dict[str, float] = {"rps": row["achieved_rps"], "p99_ms": row["p99_ms"]}
    if not math.isnan(row["server_cpu_pct"]):
        text += f", server CPU {fmt_pct(row['server_cpu_pct'])} of one core"
        values["cpu_pct"] = row["server_cpu_pct"]
    return [GuidanceItem(topic="best", text=text + ".", run_id=run.run_id, trial_ids=_ids(row),
                         values=values)]


def _mann_whitney(run: RunData, a: pd.Series, b: pd.Series) -> str:
    trials = run.trials.set_index("trial_id")
    rps_a = trials.loc[list(a["trial_ids"]), "achieved_rps"].astype("float64").tolist()
    rps_b = trials.loc[list(b["trial_ids"]), "achieved_rps"].astype("float64").tolist()
    if min(len(rps_a), len(rps_b)) < MIN_REPEATS_FOR_STATS:
        return ""
    result = stats.mannwhitneyu(rps_a, rps_b, alternative="two-sided")
    return (f" (Mann-Whitney U on {len(rps_a)} vs {len(rps_b)} repeats: "
            f"p = {float(result.pvalue):.3f})")


def _versus(run: RunData, kind: str, what: str, topic: str, level: float, a: pd.Series,
            b: pd.Series) -> GuidanceItem:
    """One closed-loop comparison of two servers at one level, with its numbers."""
    win, lose = (a, b) if a["achieved_rps"] >= b["achieved_rps"] else (b, a)
    ratio = win["achieved_rps"] / lose["achieved_rps"]
    cpus = (cpu_phrase(str(win["server_cpus"])) if win["server_cpus"] == lose["server_cpus"]
            else f"CPUs {win['server_cpus']} vs {lose['server_cpus']}")
    values = {"level": level, "rps_winner": win["achieved_rps"],
              "rps_loser": lose["achieved_rps"], "ratio": ratio,
              "p99_winner_ms": win["p99_ms"], "p99_loser_ms": lose["p99_ms"]}
    head = f"{kind}, {level_phrase('closed', level)}, {what}: "
    if ratio < SAME_THROUGHPUT_RATIO_MAX:
        text = (f"{head}{_row_label(win)} and {_row_label(lose)} served about the same "
                f"throughput ({fmt_rps(win['achieved_rps'])} vs "
                f"{fmt_rps(lose['achieved_rps'])} req/s, {fmt_ratio(ratio)})")
    else:
        text = (f"{head}{_row_label(win)} served {fmt_ratio(ratio)} the throughput of "
                f"{_row_label(lose)} ({fmt_rps(win['achieved_rps'])} vs "
                f"{fmt_rps(lose['achieved_rps'])} req/s)")
    text += (f" at a p99 of {fmt_ms(win['p99_ms'])} ms vs {fmt_ms(lose['p99_ms'])} ms, "
             f"on the {cpus}{_mann_whitney(run, win, lose)}.")
    return GuidanceItem(topic=topic, text=text, run_id=run.run_id, trial_ids=_ids(win, lose),
                        values=values)


def _wsgi_vs_asgi(run: RunData, ranked: pd.DataFrame, kind: str) -> list[GuidanceItem]:
    # Closed loop only: in open loop every server that keeps up serves the offered rate, so
    # throughput says nothing there (the tail item compares open-loop latency instead).
    part = ranked[ranked["load_model"] == "closed"]
    gateways = part["gateway"].str.lower()
    common = sorted(set(part[gateways == "wsgi"]["level"]) & set(part[gateways == "asgi"]["level"]))
    if not common:
        return []
    level = common[-1]  # the most demanding level both gateways held without failing
    at = part[part["level"] == level]
    at_gw = gateways[at.index]
    wsgi, asgi = _best(at[at_gw == "wsgi"]), _best(at[at_gw == "asgi"])
    items = [_versus(run, kind, "best WSGI vs best ASGI", "wsgi_vs_asgi", level, wsgi, asgi)]
    # The choice most teams face: the default sync WSGI deployment or the default ASGI one.
    sync_name, async_name = CLASSIC_PAIR
    if {wsgi["server"], asgi["server"]} != set(CLASSIC_PAIR):
        sync_rows = part[part["server"] == sync_name]
        async_rows = part[part["server"] == async_name]
        both = sorted(set(sync_rows["level"]) & set(async_rows["level"]))
        if both:
            level = both[-1]
            items.append(_versus(
                run, kind, "classic sync WSGI vs an event loop", "classic", level,
                sync_rows[sync_rows["level"] == level].iloc[0],
                async_rows[async_rows["level"] == level].iloc[0]))
    return items


def _tail(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    # Open loop first: its latency is timed from the intended send, so a stall cannot hide.
    for load_model in ("open", "closed"):
        part = ranked[(ranked["load_model"] == load_model) & ranked["p99_ms"].notna()]
        if part["server"].nunique() < 2:
            continue
        counts = servers_per_level(part)
        level = max((lv for lv, n in counts.items() if n >= 2), key=lambda lv: (counts[lv], lv),
                    default=None)
        if level is None:
            continue
        at = part[part["level"] == level]
        low, high = _best(at, "p99_ms", lowest=True), _best(at, "p99_ms")
        ratio = high["p99_ms"] / low["p99_ms"] if low["p99_ms"] > 0 else math.nan
        spread = (f"about the same (within {SAME_THROUGHPUT_RATIO_MAX - 1:.0%})"
                  if ratio < SAME_THROUGHPUT_RATIO_MAX else f"{fmt_ratio(ratio)} higher")
        where = (f"{level:g} req/s offered (open loop, latency timed from the intended send)"
                 if load_model == "open" else level_phrase(load_model, float(level)))
        text = (f"Tail latency at {where}: "
                f"{_row_label(low)} had the lowest p99, {fmt_ms(low['p99_ms'])} ms "
                f"(p50 {fmt_ms(low['p50_ms'])} ms); {_row_label(high)} the highest, "
                f"{fmt_ms(high['p99_ms'])} ms (p50 {fmt_ms(high['p50_ms'])} ms), {spread}.")
        return [GuidanceItem(topic="tail", text=text, run_id=run.run_id,
                             trial_ids=_ids(low, high),
                             values={"level": float(level), "p99_low_ms": low["p99_ms"],
                                     "p50_low_ms": low["p50_ms"], "p99_high_ms": high["p99_ms"],
                                     "p50_high_ms": high["p50_ms"], "ratio": ratio})]
    return []


def _open_capacity(run: RunData, ranked: pd.DataFrame, summary: pd.DataFrame
                   ) -> list[GuidanceItem]:
    """Open loop: the highest offered rate each gateway's servers held with a valid trial."""
    part = ranked[ranked["load_model"] == "open"]
    tried = summary[summary["load_model"] == "open"]
    if part.empty or tried["level"].nunique() < 2:
        return []
    phrases: list[str] = []
    rows: list[pd.Series] = []
    values: dict[str, float] = {}
    for gateway in ("wsgi", "asgi"):
        mine = part[part["gateway"].str.lower() == gateway]
        if mine.empty:
            continue
        top = mine[mine["level"] == mine["level"].max()]
        row = _best(top, "p99_ms", lowest=True)
        rows.append(row)
        values[f"rate_{gateway}"] = float(row["level"])
        values[f"p99_{gateway}_ms"] = float(row["p99_ms"])
        phrases.append(f"{gateway.upper()} up to {row['level']:g} req/s ({row['server']}, "
                       f"p99 {fmt_ms(row['p99_ms'])} ms)")
    if not rows:
        return []
    text = (f"Open loop, offered rates up to {tried['level'].max():g} req/s: the highest rate "
            f"served with a valid trial was " + "; ".join(phrases) + ".")
    return [GuidanceItem(topic="open_capacity", text=text, run_id=run.run_id,
                         trial_ids=_ids(*rows), values=values)]


def _peaks(ranked: pd.DataFrame) -> pd.DataFrame:
    """Each server's highest-throughput valid level (closed loop when it has one)."""
    rows = []
    for _server, part in ranked.groupby("server"):
        closed = part[part["load_model"] == "closed"]
        rows.append(_best(closed if not closed.empty else part))
    return pd.DataFrame(rows)


def _efficiency(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    with_cpu = ranked[ranked["server_cpu_pct"].notna() & (ranked["server_cpu_pct"] > 0)]
    peaks = _peaks(with_cpu) if not with_cpu.empty else with_cpu
    if len(peaks) < 2:
        return []
    hi, lo = _best(peaks, "rps_per_cpu_s"), _best(peaks, "rps_per_cpu_s", lowest=True)

    def part(row: pd.Series) -> str:
        return (f"{_row_label(row)} {fmt_rps(row['rps_per_cpu_s'])} requests per CPU-second "
                f"({fmt_rps(row['achieved_rps'])} req/s at {fmt_pct(row['server_cpu_pct'])} CPU, "
                f"{level_phrase(row['load_model'], row['level'])})")

    text = (f"CPU efficiency at each server's peak throughput: {part(hi)}; least efficient: "
            f"{part(lo)}.")
    return [GuidanceItem(topic="efficiency", text=text, run_id=run.run_id, trial_ids=_ids(hi, lo),
                         values={"rps_per_cpu_s_best": hi["rps_per_cpu_s"],
                                 "rps_best": hi["achieved_rps"], "cpu_best": hi["server_cpu_pct"],
                                 "rps_per_cpu_s_worst": lo["rps_per_cpu_s"],
                                 "rps_worst": lo["achieved_rps"],
                                 "cpu_worst": lo["server_cpu_pct"]})]


def _memory(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
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
    # The peak of each server: the row where its memory was highest.
    peak_idx = rows.groupby("server", observed=True)[column].idxmax()
    peaks = rows.loc[peak_idx.tolist()].sort_values([column, "trial_id"])
    low, high = peaks.iloc[0], peaks.iloc[-1]
    ratio = high[column] / low[column]
    text = (f"Memory: {_row_label(low)} peaked at {fmt_mb(low[column])} MB {label} "
            f"({low['workers']} worker(s)), the least; {_row_label(high)} at "
            f"{fmt_mb(high[column])} MB ({high['workers']} worker(s)), "
            f"{fmt_ratio(ratio)} more.")
    return [GuidanceItem(topic="memory", text=text, run_id=run.run_id,
                         trial_ids=(str(low["trial_id"]), str(high["trial_id"])),
                         values={"pss": float(column == "server_pss_mb"), "low_mb": low[column],
                                 "high_mb": high[column], "ratio": ratio})]


def _invalid(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    items = []
    for _, row in summary[~summary["valid"]].iterrows():
        text = (f"Not ranked: {_row_label(row)} at {level_phrase(row['load_model'], row['level'])}"
                f": {row['invalid_reason'] or 'invalid'}.")
        items.append(GuidanceItem(topic="invalid", text=text, run_id=run.run_id,
                                  trial_ids=_ids(row), caveat=True))
    return items


def _noise(run: RunData, ranked: pd.DataFrame) -> list[GuidanceItem]:
    repeated = ranked[ranked["repeats"] >= 2]
    if repeated.empty:
        if not ranked.empty:
            return [GuidanceItem(
                topic="single_repeat", caveat=True, run_id=run.run_id,
                text=("Each level was measured once, so the spread is unknown. On a shared "
                      "machine a server's throughput can move by "
                      f"{SINGLE_RUN_NOISE_FRACTION:.0%} or more between runs: treat smaller "
                      "differences as noise, and measure the spread with --repeat 3 before "
                      "relying on a close ranking."))]
        return []
    items: list[GuidanceItem] = []
    trials = run.trials.set_index("trial_id")
    for _, row in repeated[repeated["rps_cv"] > NOISY_CV_MAX].iterrows():
        text = (f"Noisy: {_row_label(row)} at {level_phrase(row['load_model'], row['level'])}: "
                f"throughput varied by {fmt_pct(100 * row['rps_cv'])} (coefficient of variation) "
                f"across {row['repeats']} repeats, above the {NOISY_CV_MAX:.0%} threshold")
        values = {"cv_pct": 100 * row["rps_cv"], "rps": row["achieved_rps"]}
        if row["repeats"] >= MIN_REPEATS_FOR_STATS:
            rps = trials.loc[list(row["trial_ids"]), "achieved_rps"].astype("float64")
            low, high = stats.t.interval(CONFIDENCE_LEVEL, len(rps) - 1, loc=rps.mean(),
                                         scale=stats.sem(rps))
            text += (f"; {CONFIDENCE_LEVEL:.0%} confidence interval of the mean "
                     f"{fmt_rps(float(low))}–{fmt_rps(float(high))} req/s")
            values.update(ci_low=float(low), ci_high=float(high))
        items.append(GuidanceItem(topic="noisy", text=text + ".", run_id=run.run_id,
                                  trial_ids=_ids(row), values=values, caveat=True))
    if not items:
        worst = _best(repeated, "rps_cv")
        items.append(GuidanceItem(
            topic="stable", run_id=run.run_id, trial_ids=_ids(worst),
            values={"cv_pct": 100 * worst["rps_cv"]},
            text=(f"Repeats agreed: every ranked level's throughput varied by at most "
                  f"{fmt_pct(100 * worst['rps_cv'])} (coefficient of variation, worst: "
                  f"{_row_label(worst)} at {level_phrase(worst['load_model'], worst['level'])}), "
                  f"under the {NOISY_CV_MAX:.0%} threshold.")))
    return items


def _targets(run: RunData) -> list[GuidanceItem]:
    items = []
    for target in run.meta.get("targets") or []:
        status = str(target.get("status") or "")
        if status in ("ok", "", "pending"):
            continue
        reason = str(target.get("reason") or "no reason recorded")
        items.append(GuidanceItem(
            topic="target", caveat=True, run_id=run.run_id,
            text=f"{target.get('server')} was not measured ({status}): {reason} [run.json]."))
    run_status = run.meta.get("status")
    if run_status not in (None, "complete"):
        items.append(GuidanceItem(
            topic="run_status", caveat=True, run_id=run.run_id,
            text=f"The run's status is '{run_status}': what came after it stopped is missing."))
    return items


def compute_guidance(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    """Findings first (best throughput, WSGI vs ASGI, tail, CPU efficiency, memory), then the
    caveats (invalid levels, noise, targets not measured)."""
    # imported here: the WebSocket module builds on this one's helpers
    from harness.analysis.websocket import is_websocket, websocket_guidance

    if is_websocket(run.meta):
        return websocket_guidance(run, summary)
    kind = kind_label(run.meta)
    ranked = _ranked(summary)
    items: list[GuidanceItem] = []
    items += _best_throughput(run, ranked, kind)
    items += _wsgi_vs_asgi(run, ranked, kind)
    items += _open_capacity(run, ranked, summary)
    items += _tail(run, ranked)
    items += _efficiency(run, ranked)
    items += _memory(run, ranked)
    items += _noise(run, ranked)
    items += _invalid(run, summary)
    items += _targets(run)
    if ranked.empty:
        items.insert(0, GuidanceItem(
            topic="none_valid", caveat=True, run_id=run.run_id,
            text="No valid trial in this run: nothing is ranked (see the caveats below)."))
    return items


# The helpers other guidance modules (harness.analysis.websocket) build on.
row_label = _row_label
trial_ids_of = _ids
noise_items = _noise
target_items = _targets


def guidance_table(items: Sequence[GuidanceItem]) -> pd.DataFrame:
    """The items as a frame (topic, text, trial_ids, caveat), handy in a notebook."""
    return pd.DataFrame([{"run_id": i.run_id, "topic": i.topic, "text": i.text,
                          "trial_ids": list(i.trial_ids), "caveat": i.caveat} for i in items])

"""How a run was measured: overloaded and invalid levels, connections unevenly spread over
workers, noisy or agreeing repeats, a busy machine, targets not measured.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
from scipy import stats

from harness.analysis.findings.common import Context, best_row, trial_ids_of
from harness.analysis.findings.record import Finding
from harness.analysis.rundata import RunData, busy_trials
from harness.analysis.stats import (
    CONFIDENCE_LEVEL,
    MIN_REPEATS_FOR_STATS,
    SINGLE_RUN_NOISE_FRACTION,
)
from harness.analysis.wording import (
    FIGURE_RE,
    HEADLINE_NAMES_MAX,
    fmt_pct,
    fmt_rps,
    level_phrase,
    names_text,
    row_label,
)
from harness.loadgen.result import STALL_NOTE
from harness.noise import BUSY_OTHERS_PCT, BUSY_STEAL_PCT, SLOW_CPU_FACTOR

# A level whose repeats' throughput varies more than this (coefficient of variation) is noisy.
NOISY_CV_MAX = 0.10


# Busy trials named one by one in the caveat; the rest are counted.
MAX_BUSY_LISTED = 8


# A multi-worker server's connections are unevenly spread when its busiest worker held at least
# this multiple of an even share (harness.sampling's census), with at least UNEVEN_MIN_PER_WORKER
# connections per worker to spread: a worker serves only the connections it accepted.
UNEVEN_SHARE_MIN = 2.0


UNEVEN_MIN_PER_WORKER = 2


def _overloaded(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Levels a server did not keep up with: a result about the server (one item per server)."""
    part = summary[summary["outcome"] == "overloaded"]
    items = []
    for _server, rows in part.groupby("server", sort=True):
        first = rows.iloc[0]
        levels = "; ".join(f"{level_phrase(r['load_model'], r['level'])} "
                           f"({overload_reasons(run, r)})" for _, r in rows.iterrows())
        text = (f"Overloaded: {row_label(first)} did not keep up at {levels}. A result about "
                f"the server, shown but not ranked.")
        repeats = overloaded_repeats(run, rows)
        headline = (f"Overloaded: {row_label(first)} did not keep up at "
                    + "; ".join(level_phrase(r["load_model"], r["level"])
                                for _, r in rows.iterrows())
                    + (f" ({repeats[0]} of {repeats[1]} repeats)." if repeats[1] > 1 else "."))
        items.append(Finding(topic="overloaded", text=text, run_id=run.run_id,
                             headline=headline, others=(str(first["server"]),),
                             question={"levels": [f"{r['load_model']} {r['level']:g}"
                                                  for _, r in rows.iterrows()]},
                             trial_ids=trial_ids_of(*(r for _, r in rows.iterrows())),
                                  values={"levels": float(len(rows))}))
    return items


def overloaded_repeats(run: RunData, rows: pd.DataFrame) -> tuple[int, int]:
    """(repeats overloaded, repeats measured) over a server's overloaded summary rows."""
    ids = [t for tids in rows["trial_ids"] for t in tids]
    trials = run.trials[run.trials["trial_id"].isin(ids)]
    over = int((trials["outcome"].astype("string") == "overloaded").sum())
    return over, len(trials)


def overload_reasons(run: RunData, row: pd.Series) -> str:
    """Why a summary row's repeats were overloaded: each kind of reason once (kinds differ in
    words, not figures), in how many of the repeats, with the figures of the first.

    "repeat 1: p99 253 ms > 200 ms; repeat 2: p99 405 ms > 200 ms" and, in a second run, three
    such repeats say one thing: the server missed the objective at that rate."""
    trials = run.trials.set_index("trial_id")
    mine = trials.loc[[t for t in row["trial_ids"] if t in trials.index]]
    over = mine[mine["outcome"].astype("string") == "overloaded"]
    kinds: dict[str, list[tuple[int, str]]] = {}
    for repeat, why in zip(over["repeat"], over["invalid_reason"].astype(str), strict=True):
        kinds.setdefault(FIGURE_RE.sub("#", why), []).append((int(repeat), why))
    if not kinds:
        return str(row["invalid_reason"]) or "overloaded"
    if len(mine) < 2:
        return "; ".join(whys[0][1] for whys in kinds.values())
    return "; ".join(f"in {len(whys)} of {len(mine)} repeats; repeat {whys[0][0]}: {whys[0][1]}"
                     for whys in kinds.values())


def _invalid(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    items = []
    for _, row in summary[summary["outcome"] == "invalid"].iterrows():
        text = (f"Not ranked: {row_label(row)} at {level_phrase(row['load_model'], row['level'])}"
                f": invalid, the harness cannot vouch for it: "
                f"{row['invalid_reason'] or 'no reason recorded'}.")
        items.append(Finding(topic="invalid", text=text, run_id=run.run_id,
                             headline=(f"Not ranked: {row_label(row)} at "
                                       f"{level_phrase(row['load_model'], row['level'])} "
                                       "(invalid: the harness cannot vouch for it)."),
                                  trial_ids=trial_ids_of(row), caveat=True))
    return items


def _busy(run: RunData) -> list[Finding]:
    """Trials taken while the machine was busy (harness.noise): other processes, steal, or
    the server's CPU running slower than its recent pace."""
    busy = busy_trials(run.trials)
    if busy.empty:
        return []
    listed = []
    for _, row in busy.head(MAX_BUSY_LISTED).iterrows():
        others, steal, slow = row["others_cpu_pct"], row["steal_pct"], row["cpu_slowdown"]
        numbers = ", ".join(part for part in (
            f"others {others:.0f} %" if pd.notna(others) else "",
            f"steal {steal:.0f} %" if pd.notna(steal) else "",
            f"CPU {slow:.1f}x slower" if pd.notna(slow) and slow > SLOW_CPU_FACTOR else "")
            if part)
        listed.append(f"{row['trial_id']}" + (f" ({numbers})" if numbers else ""))
    more = len(busy) - len(listed)
    # the CPU's pace only where it was probed (runs before harness.cpuspeed were not)
    slow = (f", or the server's CPU ran more than {SLOW_CPU_FACTOR:g}x slower than its recent "
            f"pace (a host that slows a guest's CPU shows no steal)"
            if run.trials["cpu_slowdown"].notna().any() else "")
    text = (f"Busy machine during {len(busy)} of {len(run.trials)} trials: processes outside "
            f"the harness used more than {BUSY_OTHERS_PCT:.0f} % of a CPU"
            + (", steal was above" if slow else ", or steal was above")
            + f" {BUSY_STEAL_PCT:.0f} %{slow}: " + "; ".join(listed)
            + (f"; and {more} more" if more > 0 else "")
            + ". Their throughput may be low and their latency high: measure them again on a "
              "quiet machine before relying on them.")
    return [Finding(topic="busy", text=text, run_id=run.run_id, caveat=True,
                    headline=(f"Busy machine during {len(busy)} of {len(run.trials)} trials: "
                              "flagged; measure them again before relying on them."),
                         trial_ids=tuple(str(t) for t in busy["trial_id"]),
                         values={"trials": float(len(busy)),
                                 "max_others_pct": float(busy["others_cpu_pct"].max())})]


def worker_counts(text: object) -> list[int]:
    """``"16 0 0"`` (trials.csv's connections_per_worker) -> [16, 0, 0]; [] when not counted."""
    if not isinstance(text, str):
        return []
    return [int(part) for part in text.split() if part.isdigit()]


def uneven(counts: Sequence[int]) -> bool:
    """Whether one worker held far more than its share of the connections (UNEVEN_SHARE_MIN)."""
    workers, total = len(counts), sum(counts)
    return (workers >= 2 and total >= UNEVEN_MIN_PER_WORKER * workers
            and max(counts) >= UNEVEN_SHARE_MIN * total / workers)


def _uneven(run: RunData) -> list[Finding]:
    """Levels where one worker of a multi-worker server held most of the connections."""
    trials = run.trials
    if trials.empty or "connections_per_worker" not in trials.columns:
        return []
    measured = trials[(trials["status"].astype("string") == "ok")
                      & (trials["phase"].astype("string") == "sweep")]
    parts: list[str] = []
    ids: list[str] = []
    worst_share = 0.0
    for _server, rows in measured.groupby("server", sort=True, observed=True):
        levels: list[str] = []
        for (load_model, _level), at in rows.groupby(["load_model", "level"], sort=True,
                                                     observed=True):
            counted = [(str(r["trial_id"]), worker_counts(r["connections_per_worker"]))
                       for _, r in at.iterrows()]
            counted = [(t, c) for t, c in counted if c]
            skewed = [(t, c) for t, c in counted if uneven(c)]
            if not skewed:
                continue
            _, counts = max(skewed, key=lambda tc: max(tc[1]) / sum(tc[1]))
            worst_share = max(worst_share, max(counts) / sum(counts))
            ids += [t for t, _ in skewed]
            levels.append(f"at {level_phrase(str(load_model), float(at['level'].iloc[0]))} "
                          f"{' '.join(map(str, counts))} ({len(skewed)} of {len(counted)} "
                          f"{'repeat' if len(counted) == 1 else 'repeats'})")
        if levels:
            first = rows.iloc[0]
            parts.append(f"{row_label(first)}: " + "; ".join(levels))
    if not parts:
        return []
    text = ("Connections unevenly spread over a server's workers (counted mid-trial, per "
            "worker, busiest first): " + ". ".join(parts) + ". Each worker serves only the "
            "connections it accepted, so the others idle meanwhile: sync or threaded workers, "
            "which serve a few requests at a time each, then fall short of their worker limit "
            "at that level (an event loop's worker can carry them all); a client with more "
            "connections spreads them.")
    servers = [part.split(":")[0] for part in parts]
    return [Finding(topic="uneven", text=text, run_id=run.run_id, caveat=True,
                    headline=("Connections unevenly spread over the workers of "
                              f"{names_text(servers, HEADLINE_NAMES_MAX)}: one worker held "
                              "most of them."),
                         trial_ids=tuple(dict.fromkeys(ids)),
                         values={"worst_share": worst_share})]


def noise_items(run: RunData, ranked: pd.DataFrame) -> list[Finding]:
    repeated = ranked[ranked["repeats"] >= 2]
    if repeated.empty:
        if not ranked.empty:
            return [Finding(
                topic="single_repeat", caveat=True, run_id=run.run_id,
                text=("Each level was measured once, so the spread is unknown. On a shared "
                      "machine a server's throughput can move by "
                      f"{SINGLE_RUN_NOISE_FRACTION:.0%} or more between runs: treat smaller "
                      "differences as noise, and measure the spread with --repeat 3 before "
                      "relying on a close ranking."))]
        return []
    items: list[Finding] = []
    trials = run.trials.set_index("trial_id")
    for _, row in repeated[repeated["rps_cv"] > NOISY_CV_MAX].iterrows():
        text = (f"Noisy: {row_label(row)} at {level_phrase(row['load_model'], row['level'])}: "
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
        notes = trials.loc[list(row["trial_ids"]), "notes"].astype("string").fillna("")
        stalled = int(notes.str.contains(STALL_NOTE, regex=False).sum())
        if stalled:
            # the spread is then the server's stalls, not a slow machine: say so
            text += (f"; {stalled} of the {row['repeats']} repeats stalled (whole seconds "
                     "with next to no answers: their notes say which)")
            values["stalled"] = stalled
        items.append(Finding(topic="noisy", text=text + ".", run_id=run.run_id,
                             headline=(f"Noisy: {row_label(row)} at "
                                       f"{level_phrase(row['load_model'], row['level'])}, "
                                       f"{fmt_pct(100 * row['rps_cv'])} across "
                                       f"{row['repeats']} repeats."),
                                  trial_ids=trial_ids_of(row), values=values, caveat=True))
    if not items:
        worst = best_row(repeated, "rps_cv")
        items.append(Finding(
            topic="stable", run_id=run.run_id, trial_ids=trial_ids_of(worst),
            values={"cv_pct": 100 * worst["rps_cv"]},
            text=(f"Repeats agreed: every ranked level's throughput varied by at most "
                  f"{fmt_pct(100 * worst['rps_cv'])} (coefficient of variation, worst: "
                  f"{row_label(worst)} at {level_phrase(worst['load_model'], worst['level'])}), "
                  f"under the {NOISY_CV_MAX:.0%} threshold.")))
    return items


def target_items(run: RunData) -> list[Finding]:
    items = []
    for target in run.meta.get("targets") or []:
        status = str(target.get("status") or "")
        if status in ("ok", "", "pending"):
            continue
        reason = str(target.get("reason") or "no reason recorded")
        items.append(Finding(
            topic="target", caveat=True, run_id=run.run_id,
            text=f"{target.get('server')} was not measured ({status}): {reason} [run.json]."))
    run_status = run.meta.get("status")
    if run_status not in (None, "complete"):
        items.append(Finding(
            topic="run_status", caveat=True, run_id=run.run_id,
            text=f"The run's status is '{run_status}': what came after it stopped is missing."))
    return items


def find(ctx: Context) -> list[Finding]:
    return (_overloaded(ctx.run, ctx.summary) + _uneven(ctx.run) + noise_items(ctx.run, ctx.ranked)
            + _busy(ctx.run) + _invalid(ctx.run, ctx.summary) + target_items(ctx.run))

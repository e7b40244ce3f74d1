"""Throughput: the highest valid throughput, best WSGI vs best ASGI and the classic pair at the
most demanding level both gateways held, the open-loop rates each gateway held, and the levels
where the load's own ceiling (Little's law) set the throughput.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import pandas as pd

from harness.analysis.findings.common import (
    CEILING_FRACTION,
    CLASSIC_PAIR,
    Context,
    ServiceFloor,
    at_ceiling,
    best_row,
    ceiling_phrase,
    group_label,
    leaders,
    peaks,
    rps_values,
    tie_phrase,
    trial_ids_of,
)
from harness.analysis.findings.record import NO_DIFFERENCE, NOT_RANKED, RANKED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import (
    CONFIDENCE_LEVEL,
    SAME_THROUGHPUT_RATIO_MAX,
    SINGLE_RUN_NOISE_FRACTION,
    Significance,
    compare_repeats,
    mean_ci,
    ratio_ci,
)
from harness.analysis.wording import (
    HEADLINE_NAMES_MAX,
    comparison_headline,
    cpu_phrase,
    fmt_ms,
    fmt_pct,
    fmt_ratio,
    fmt_rps,
    level_phrase,
    names_text,
    row_label,
)


def _best_throughput(run: RunData, ranked: pd.DataFrame, kind: str,
                     floor: ServiceFloor | None) -> list[Finding]:
    if ranked.empty:
        return []
    closed = ranked[ranked["load_model"] == "closed"]
    group = leaders(peaks(closed if not closed.empty else ranked), "achieved_rps",
                    lambda r: rps_values(run, r))
    row = max(group, key=lambda r: float(r["achieved_rps"]))
    values: dict[str, float] = {"rps": row["achieved_rps"], "p99_ms": row["p99_ms"],
                                "servers": float(len(group))}
    if len(group) > 1:
        members = "; ".join(
            f"{row_label(r)} {fmt_rps(r['achieved_rps'])} req/s at "
            f"{level_phrase(r['load_model'], r['level'])}, p99 {fmt_ms(r['p99_ms'])} ms"
            for r in group)
        text = (f"{kind}: the highest valid throughput, {len(group)} servers that cannot be "
                f"told apart ({tie_phrase(group)}): {members}")
        capped = [r for r in group if floor is not None and at_ceiling(r, floor)]
        if capped and floor is not None:
            text += (f"; {group_label(capped)} sat at the load's own ceiling (Little's law, "
                     f"{ceiling_phrase(capped[0]['level'], floor)}): a higher concurrency may "
                     f"give more")
        return [Finding(topic="best", text=text + ".", run_id=run.run_id,
                        trial_ids=trial_ids_of(*group), values=values,
                        winners=tuple(sorted(str(r["server"]) for r in group)),
                        question={"kind": kind},
                        headline=(f"{kind}: the highest throughput, {len(group)} servers tied: "
                                  + names_text(sorted(str(r["server"]) for r in group),
                                               HEADLINE_NAMES_MAX)
                                  + f", up to {fmt_rps(row['achieved_rps'])} req/s."))]
    text = (f"{kind}: the highest valid throughput was {row_label(row)}, "
            f"{fmt_rps(row['achieved_rps'])} req/s at "
            f"{level_phrase(row['load_model'], row['level'])}")
    spread = mean_ci(rps_values(run, row))
    if spread is not None:
        text += f" ({spread.text()})"
        values.update(ci_low=spread.low, ci_high=spread.high)
    text += f", p99 {fmt_ms(row['p99_ms'])} ms"
    if not math.isnan(row["server_cpu_pct"]):
        text += f", server CPU {fmt_pct(row['server_cpu_pct'])} of one core"
        values["cpu_pct"] = row["server_cpu_pct"]
    if floor is not None and at_ceiling(row, floor):
        text += (f"; that is the load's own ceiling (Little's law: "
                 f"{ceiling_phrase(row['level'], floor)}): a higher concurrency may give more")
        values["ceiling_rps"] = floor.ceiling_rps(row["level"])
    return [Finding(topic="best", text=text + ".", run_id=run.run_id,
                    trial_ids=trial_ids_of(row), values=values, winners=(str(row["server"]),),
                    question={"kind": kind},
                    headline=(f"{kind}: the highest throughput was {row_label(row)}, "
                              f"{fmt_rps(row['achieved_rps'])} req/s at "
                              f"{level_phrase(row['load_model'], row['level'])}."))]


def _versus(run: RunData, kind: str, what: str, topic: str, level: float, a: pd.Series,
            b: pd.Series, floor: ServiceFloor | None = None,
            groups: Sequence[Sequence[pd.Series]] = ()) -> Finding:
    """One closed-loop comparison of two servers at one level, with its numbers.

    A winner is named only when the difference holds: significant over repeats, above the
    single-run noise without them, and not two servers both at the load's own ceiling.
    ``groups``: the servers tied with ``a`` and with ``b`` (``leaders``): named beside it, and
    they are the winners (``Finding.winners``) when its side wins. The figures and the
    test are ``a``'s and ``b``'s own."""
    win, lose = (a, b) if a["achieved_rps"] >= b["achieved_rps"] else (b, a)
    tied_with = {str(r["server"]): g for g in groups if len(g) > 1 for r in g}

    def label(row: pd.Series) -> str:
        group = tied_with.get(str(row["server"]))
        if group is None:
            return row_label(row)
        others = group_label([r for r in group if str(r["server"]) != str(row["server"])])
        return f"{row_label(row)} (tied with {others}: {tie_phrase(group)})"

    ratio = win["achieved_rps"] / lose["achieved_rps"]
    cpus = (cpu_phrase(str(win["server_cpus"])) if win["server_cpus"] == lose["server_cpus"]
            else f"CPUs {win['server_cpus']} vs {lose['server_cpus']}")
    values: dict[str, float] = {
        "level": level, "rps_winner": win["achieved_rps"], "rps_loser": lose["achieved_rps"],
        "ratio": ratio, "p99_winner_ms": win["p99_ms"], "p99_loser_ms": lose["p99_ms"]}
    head = f"{kind}, {level_phrase('closed', level)}, {what}: "
    rps_win, rps_lose = rps_values(run, win), rps_values(run, lose)
    test = compare_repeats(rps_win, rps_lose)
    numbers = f"({fmt_rps(win['achieved_rps'])} vs {fmt_rps(lose['achieved_rps'])} req/s)"
    latency = f"p99 of {fmt_ms(win['p99_ms'])} ms vs {fmt_ms(lose['p99_ms'])} ms"
    both_at_ceiling = at_ceiling(win, floor) and at_ceiling(lose, floor)
    if both_at_ceiling and floor is not None:
        values.update(ranked=0.0, ceiling_rps=floor.ceiling_rps(level))
        text = (f"{head}{label(win)} and {label(lose)} both sat at the load's own "
                f"ceiling {numbers}: Little's law, {ceiling_phrase(level, floor)} "
                f"(D: {floor.source}); the load, not the server, set their throughput, so they "
                f"are not ranked here: a higher concurrency is needed to separate them")
    elif test is not None and not test.significant:
        values.update(ranked=0.0, p_value=test.p_value)
        text = (f"{head}no significant difference between {label(win)} and "
                f"{label(lose)} {numbers}, {fmt_ratio(ratio)}, at a {latency}")
    elif test is None and ratio < 1.0 + SINGLE_RUN_NOISE_FRACTION:
        values.update(ranked=0.0)
        same = "about the same throughput" if ratio < SAME_THROUGHPUT_RATIO_MAX else \
            f"throughputs {fmt_ratio(ratio)} apart"
        text = (f"{head}{label(win)} and {label(lose)} served {same} {numbers} at a "
                f"{latency}: measured once, a difference under "
                f"{SINGLE_RUN_NOISE_FRACTION:.0%} is within run-to-run noise, not a ranking")
    else:
        values.update(ranked=1.0)
        text = (f"{head}{label(win)} served {fmt_ratio(ratio)} the throughput of "
                f"{label(lose)} {numbers} at a {latency}, on the {cpus}")
        if floor is not None and at_ceiling(win, floor):
            values["ceiling_rps"] = floor.ceiling_rps(level)
            text += (f"; {label(win)} sat at the load's own ceiling (Little's law, "
                     f"{ceiling_phrase(level, floor)}), so the ratio is a lower bound")
    if values["ranked"] == 0.0:
        text += f", on the {cpus}"
    spreads = [mean_ci(rps_win), mean_ci(rps_lose)]
    if spreads[0] is not None and spreads[1] is not None:
        cis = [f"{row['server']} {fmt_rps(ci.low)}–{fmt_rps(ci.high)}"
               for row, ci in ((win, spreads[0]), (lose, spreads[1]))]
        if cis:
            text += (f"; {CONFIDENCE_LEVEL:.0%} CIs of the mean: " + ", ".join(cis)
                     + " req/s").replace("95%", "95 %")
        values.update(ci_low_winner=spreads[0].low, ci_high_winner=spreads[0].high,
                      ci_low_loser=spreads[1].low, ci_high_loser=spreads[1].high)
    if test is not None:
        text += f"; {test.text()}"
        values["p_value"] = test.p_value
    sides = tuple(tuple(sorted(str(r["server"]) for r in tied_with.get(str(row["server"]), [row])))
                  for row in (win, lose))
    return _versus_record(run, topic, kind, what, level, (win, lose), sides, text + ".", values,
                          test, both_at_ceiling, (rps_win, rps_lose))


def _versus_record(run: RunData, topic: str, kind: str, what: str, level: float,
                   pair: tuple[pd.Series, pd.Series], sides: Sequence[Sequence[str]], text: str,
                   values: dict[str, float], test: Significance | None, both_at_ceiling: bool,
                   figures: tuple[list[float], list[float]]) -> Finding:
    """The record of a comparison ``_versus`` has worded: ``pair`` the winner and the loser,
    ``sides`` the servers tied with each, ``figures`` their repeats' throughputs."""
    win, lose = pair
    ranked = values["ranked"] == 1.0
    verdict = RANKED if ranked else NOT_RANKED if both_at_ceiling else NO_DIFFERENCE
    why = ("both sat at the load's own ceiling (Little's law)" if both_at_ceiling
           else "measured once, within run-to-run noise" if test is None and not ranked else "")
    where = level_phrase("closed", level)
    gateways = (str(win["gateway"]), str(lose["gateway"]))
    p_value = test.p_value if test is not None else None
    ratio = values["ratio"]
    return Finding(
        topic=topic, text=text, run_id=run.run_id, trial_ids=trial_ids_of(win, lose),
        values=values, winners=tuple(sides[0]) if ranked else (), others=tuple(sides[1]),
        verdict=verdict, why=why, ratio=ratio, ratio_ci=ratio_ci(*figures),
        figures=(float(win["achieved_rps"]), float(lose["achieved_rps"])), unit="req/s",
        test=test.text() if test is not None else "", p_value=p_value,
        question={"kind": kind, "what": what, "where": where, "load_model": "closed",
                  "level": level, "winner_side": list(sides[0]), "other_side": list(sides[1]),
                  "winner": str(win["server"]), "other": str(lose["server"]),
                  "winner_gateway": gateways[0], "other_gateway": gateways[1]},
        headline=comparison_headline(where=where.capitalize(), what=what, verdict=verdict,
                                     sides=sides, gateways=gateways, ratio=ratio,
                                     p_value=p_value, why=why,
                                     compared=(str(win["server"]), str(lose["server"]))))


def _wsgi_vs_asgi(run: RunData, ranked: pd.DataFrame, kind: str,
                  floor: ServiceFloor | None) -> list[Finding]:
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
    groups = [leaders(at[at_gw == gw], "achieved_rps", lambda r: rps_values(run, r))
              for gw in ("wsgi", "asgi")]
    # Each gateway's best against the other's, the servers tied with it named beside it: the
    # weakest of a group, or the groups pooled, made the verdict move from run to run
    # (docs/method.md).
    wsgi, asgi = (max(g, key=lambda r: float(r["achieved_rps"])) for g in groups)
    items = [_versus(run, kind, "best WSGI vs best ASGI", "wsgi_vs_asgi", level, wsgi, asgi,
                     floor, groups)]
    # The choice most teams face: the default sync WSGI deployment or the default ASGI one.
    sync_name, async_name = CLASSIC_PAIR
    # (unless the comparison above was that pair alone: a tied group names more servers)
    if {str(r["server"]) for g in groups for r in g} != set(CLASSIC_PAIR):
        sync_rows = part[part["server"] == sync_name]
        async_rows = part[part["server"] == async_name]
        both = sorted(set(sync_rows["level"]) & set(async_rows["level"]))
        if both:
            level = both[-1]
            items.append(_versus(
                run, kind, "classic sync WSGI vs an event loop", "classic", level,
                sync_rows[sync_rows["level"] == level].iloc[0],
                async_rows[async_rows["level"] == level].iloc[0], floor))
    return items


def _ceiling(run: RunData, ranked: pd.DataFrame, floor: ServiceFloor | None
             ) -> list[Finding]:
    """Closed-loop levels where two or more servers sat at the load's own ceiling."""
    if floor is None:
        return []
    closed = ranked[ranked["load_model"] == "closed"]
    items = []
    for level in sorted(float(v) for v in closed["level"].unique()):
        at = closed[closed["level"] == level]
        capped = [row for _, row in at.sort_values(["achieved_rps", "server"],
                                                    ascending=[False, True]).iterrows()
                  if at_ceiling(row, floor)]
        if len(capped) < 2:
            continue
        names = ", ".join(f"{row_label(r)} {fmt_rps(r['achieved_rps'])}" for r in capped)
        text = (f"Little's law: at {level_phrase('closed', level)} no server can pass "
                f"{ceiling_phrase(level, floor)} (D: {floor.source}); {names} req/s reached "
                f"at least {100 * CEILING_FRACTION:.0f} % of it, so the load, not the server, "
                f"set their throughput: they are not ranked at this level, a higher "
                f"concurrency is needed to separate them.")
        items.append(Finding(
            topic="ceiling", caveat=True, run_id=run.run_id, text=text,
            headline=(f"Little's law: at {level_phrase('closed', level)}, {len(capped)} servers "
                      f"sat at the load's own ceiling ({fmt_rps(floor.ceiling_rps(level))} "
                      "req/s): not ranked there."),
            trial_ids=tuple(dict.fromkeys(trial_ids_of(*capped) + floor.trial_ids)),
            values={"level": level, "ceiling_rps": floor.ceiling_rps(level),
                    "floor_s": floor.seconds, "servers": float(len(capped))}))
    return items


def _open_capacity(run: RunData, ranked: pd.DataFrame, summary: pd.DataFrame
                   ) -> list[Finding]:
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
        row = best_row(top, "p99_ms", lowest=True)
        rows.append(row)
        values[f"rate_{gateway}"] = float(row["level"])
        values[f"p99_{gateway}_ms"] = float(row["p99_ms"])
        phrases.append(f"{gateway.upper()} up to {row['level']:g} req/s ({row['server']}, "
                       f"p99 {fmt_ms(row['p99_ms'])} ms)")
    if not rows:
        return []
    text = (f"Open loop, offered rates up to {tried['level'].max():g} req/s: the highest rate "
            f"served with a valid trial was " + "; ".join(phrases) + ".")
    return [Finding(topic="open_capacity", text=text, run_id=run.run_id,
                    trial_ids=trial_ids_of(*rows), values=values,
                    others=tuple(str(r["server"]) for r in rows),
                    headline=("Open loop, the highest rate held: " + "; ".join(phrases) + "."))]


def find(ctx: Context) -> list[Finding]:
    return (_best_throughput(ctx.run, ctx.ranked, ctx.kind, ctx.floor)
            + _wsgi_vs_asgi(ctx.run, ctx.ranked, ctx.kind, ctx.floor)
            + _open_capacity(ctx.run, ctx.ranked, ctx.summary)
            + _ceiling(ctx.run, ctx.ranked, ctx.floor))

"""WebSocket findings: servers that cannot hold a WebSocket, echo messages/s and latency per
message size, broadcast delivery, memory per idle connection; then the caveats.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.analysis.findings.caveats import noise_items, target_items
from harness.analysis.findings.common import (
    Context,
    leaders,
    rps_values,
    servers_per_level,
    trial_ids_of,
)
from harness.analysis.findings.record import NO_DIFFERENCE, RANKED, STATED, Finding
from harness.analysis.rundata import RunData
from harness.analysis.stats import compare_repeats, ratio_ci
from harness.analysis.websocket import (
    connections,
    fmt_count,
    fmt_fraction,
    fmt_kib,
    fmt_size,
    level_phrase,
    unsupported_sentence,
    unsupported_targets,
)
from harness.analysis.wording import (
    comparison_headline,
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    row_label,
    side_text,
)

# Below this ratio two message rates are reported as "about the same".
SAME_RATE_RATIO_MAX = 1.05


def _ranked(summary: pd.DataFrame, model: str) -> pd.DataFrame:
    part = summary[(summary["load_model"] == model) & summary["valid"]]
    return part[part["achieved_rps"] > 0] if model != "idle" else part


def _sizes(part: pd.DataFrame) -> list[Any]:
    return sorted(set(part["message_size"].dropna().astype(int)))


def _at_size(part: pd.DataFrame, size: Any) -> pd.DataFrame:
    rows: pd.DataFrame = part[part["message_size"].astype("Int64") == size]
    return rows


def _level_with_most_servers(part: pd.DataFrame) -> float | None:
    counts = servers_per_level(part)
    if not counts:
        return None
    return max(counts, key=lambda lv: (counts[lv], lv))


def _sorted(rows: pd.DataFrame, column: str, *, lowest: bool) -> pd.DataFrame:
    # ties go to the first server by name: the same data always gives the same sentence
    return rows.sort_values([column, "server"], ascending=[lowest, True], kind="stable")


def _echo_closed(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Per message size: the best and the slowest server at the most shared connection count."""
    ranked = _ranked(summary, "closed")
    items = []
    for size in _sizes(ranked):
        part = _at_size(ranked, size)
        level = _level_with_most_servers(part)
        if level is None:
            continue
        at = _sorted(part[part["level"] == level], "achieved_rps", lowest=False)
        best, worst = at.iloc[0], at.iloc[-1]
        head = f"WebSocket echo, {fmt_size(size)}, {connections(level)}: "
        values: dict[str, float] = {"level": level, "message_size": float(size),
                                    "rps_best": best["achieved_rps"],
                                    "p99_best_ms": best["p99_ms"]}
        if len(at) == 1:
            text = (f"{head}{row_label(best)} carried {fmt_rps(best['achieved_rps'])} msgs/s "
                    f"(round trips), p99 {fmt_ms(best['p99_ms'])} ms.")
            rows: tuple[pd.Series, ...] = (best,)
        else:
            ratio = best["achieved_rps"] / worst["achieved_rps"]
            values.update(rps_worst=worst["achieved_rps"], p99_worst_ms=worst["p99_ms"],
                          ratio=ratio)
            compared = (f"about the same as {worst['server']}'s" if ratio < SAME_RATE_RATIO_MAX
                        else f"{fmt_ratio(ratio)} {worst['server']}'s")
            text = (f"{head}{row_label(best)} carried {fmt_rps(best['achieved_rps'])} msgs/s "
                    f"(round trips), {compared} ({fmt_rps(worst['achieved_rps'])} msgs/s); p99 "
                    f"{fmt_ms(best['p99_ms'])} ms vs {fmt_ms(worst['p99_ms'])} ms"
                    + (f", {len(at)} servers compared." if len(at) > 2 else "."))
            rows = (best, worst)
        items.append(_echo_record(run, at, head, text, rows, values))
    return items


def _echo_record(run: RunData, at: pd.DataFrame, head: str, text: str,
                 rows: tuple[pd.Series, ...], values: dict[str, float]) -> Finding:
    """The servers that carried the most (a tied group, over repeats) against the next best."""
    group = leaders(at, "achieved_rps", lambda r: rps_values(run, r))
    names = tuple(sorted(str(r["server"]) for r in group))
    rest = at[~at["server"].isin(names)]  # ``at``: most msgs/s first
    best = max(group, key=lambda r: float(r["achieved_rps"]))
    question = {"where": head.rstrip(": "), "level": values["level"],
                "message_size": values["message_size"], "winner_side": list(names),
                "winner_gateway": str(best["gateway"])}
    if rest.empty:
        return Finding(topic="ws_echo_closed", text=text, run_id=run.run_id,
                       verdict=NO_DIFFERENCE if len(group) > 1 else STATED,
                       headline=f"{head}{side_text(names, '')} carried "
                                f"{fmt_rps(best['achieved_rps'])} msgs/s"
                                + (", none told apart." if len(group) > 1 else "."),
                       winners=() if len(group) > 1 else names, others=names, unit="msgs/s",
                       question=question, trial_ids=trial_ids_of(*rows), values=values)
    runner_up = rest.iloc[0]
    test = compare_repeats(rps_values(run, best), rps_values(run, runner_up))
    ranked = test is None or test.significant
    ratio = float(best["achieved_rps"]) / float(runner_up["achieved_rps"])
    headline = comparison_headline(
        where=head.rstrip(": "), what="", verdict=RANKED if ranked else NO_DIFFERENCE,
        sides=(names, [str(runner_up["server"])]), gateways=("", ""), ratio=ratio,
        p_value=test.p_value if test is not None else None, verb="carried",
        compared=(str(best["server"]), str(runner_up["server"])))
    return Finding(topic="ws_echo_closed", text=text, run_id=run.run_id, headline=headline,
                   verdict=RANKED if ranked else NO_DIFFERENCE,
                   winners=names if ranked else (), others=tuple(str(s) for s in rest["server"]),
                   ratio=ratio, figures=(float(best["achieved_rps"]),
                                         float(runner_up["achieved_rps"])),
                   ratio_ci=ratio_ci(rps_values(run, best), rps_values(run, runner_up)),
                   unit="msgs/s", test=test.text() if test is not None else "",
                   p_value=test.p_value if test is not None else None,
                   question={**question, "other": str(runner_up["server"])},
                   trial_ids=trial_ids_of(*rows), values=values)


def _echo_open(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Per message size: tail latency (from the intended send) at the highest rate most servers
    held, and the highest rate each server held with a valid trial."""
    ranked = _ranked(summary, "open")
    tried = summary[summary["load_model"] == "open"]
    items = []
    for size in _sizes(ranked):
        part = _at_size(ranked, size)
        part = part[part["p99_ms"].notna()]
        level = _level_with_most_servers(part)
        if level is None:
            continue
        at = _sorted(part[part["level"] == level], "p99_ms", lowest=True)
        low, high = at.iloc[0], at.iloc[-1]
        head = (f"WebSocket echo, {fmt_size(size)}, {fmt_count(level)} msgs/s offered (open "
                "loop, latency from the intended send): ")

        def detail(row: pd.Series) -> str:
            service = row["service_p99_ms"]
            extra = (f", p99 from the actual send {fmt_ms(service)} ms"
                     if pd.notna(service) else "")
            return f"{fmt_ms(row['p99_ms'])} ms (p50 {fmt_ms(row['p50_ms'])} ms{extra})"

        values: dict[str, float] = {"level": level, "message_size": float(size),
                                    "p99_low_ms": low["p99_ms"], "p50_low_ms": low["p50_ms"]}
        if len(at) == 1:
            text = f"{head}{row_label(low)} p99 {detail(low)}"
            rows: list[pd.Series] = [low]
        else:
            text = (f"{head}{row_label(low)} had the lowest p99, {detail(low)}; "
                    f"{row_label(high)} the highest, {detail(high)}")
            values.update(p99_high_ms=high["p99_ms"], p50_high_ms=high["p50_ms"])
            rows = [low, high]
        rates = _at_size(tried, size)["level"]
        if rates.nunique() > 1:
            held = []
            for server, mine in part.groupby("server"):
                top = mine[mine["level"] == mine["level"].max()].iloc[0]
                held.append((float(top["level"]), str(server), top))
            held.sort(key=lambda h: (-h[0], h[1]))
            text += (f". Highest offered rate held with a valid trial (of up to "
                     f"{fmt_count(rates.max())} msgs/s): "
                     + ", ".join(f"{server} {fmt_count(rate)}" for rate, server, _ in held))
            rows += [h[2] for h in held]
            values.update({f"held_{server}": rate for rate, server, _ in held})
        headline = (f"WebSocket echo, {fmt_size(size)}, {fmt_count(level)} msgs/s offered: the "
                    f"lowest p99, {low['server']} ({fmt_ms(low['p99_ms'])} ms)"
                    + (f"; the highest, {high['server']} ({fmt_ms(high['p99_ms'])} ms)."
                       if len(at) > 1 else "."))
        items.append(Finding(topic="ws_echo_open", text=text + ".", run_id=run.run_id,
                             headline=headline, winners=(str(low["server"]),),
                             others=(str(high["server"]),) if len(at) > 1 else (),
                             unit="ms", question={"level": level, "message_size": float(size)},
                             trial_ids=trial_ids_of(*rows), values=values))
    return items


def _rate_of(run: RunData, row: pd.Series) -> float | None:
    trials = run.trials.set_index("trial_id")
    rates = trials.loc[list(row["trial_ids"]), "rate"].astype("float64").dropna()
    return float(rates.iloc[0]) if len(rates) else None


def _broadcast(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Per subscriber count: each valid server's delivery latency and the fraction delivered."""
    ranked = summary[(summary["load_model"] == "broadcast") & summary["valid"]
                     & summary["p99_ms"].notna()]
    items = []
    for level in sorted(set(ranked["level"])):
        at = _sorted(ranked[ranked["level"] == level], "p99_ms", lowest=True)
        rate = _rate_of(run, at.iloc[0])
        size = fmt_size(at.iloc[0]["message_size"])
        head = (f"Broadcast to {fmt_count(level)} subscribers"
                + (f", {fmt_count(rate)} msgs/s of {size}" if rate else "")
                + " (latency from the intended send): p99 delivery ")
        parts: list[str] = []
        values: dict[str, float] = {"level": level}
        for _, row in at.iterrows():
            text = (f"{row['server']} {fmt_ms(row['p99_ms'])} ms (p50 {fmt_ms(row['p50_ms'])} "
                    f"ms, {fmt_fraction(row['delivered_fraction'])} of the expected deliveries "
                    "arrived" if not parts else
                    f"{row['server']} {fmt_ms(row['p99_ms'])} ms (p50 {fmt_ms(row['p50_ms'])} "
                    f"ms, {fmt_fraction(row['delivered_fraction'])}")
            reached = row["subscribers_reached"]
            if pd.notna(reached) and int(reached) < level:
                text += (f"; only {int(reached):,} subscribers shared the publisher's worker "
                         "process")
            parts.append(text + ")")
            values[f"p99_{row['server']}_ms"] = row["p99_ms"]
            values[f"p50_{row['server']}_ms"] = row["p50_ms"]
            values[f"delivered_{row['server']}"] = row["delivered_fraction"]
        order = tuple(str(s) for s in at["server"])
        headline = (f"Broadcast to {fmt_count(level)} subscribers: the lowest p99 delivery, "
                    f"{order[0]} ({fmt_ms(at.iloc[0]['p99_ms'])} ms)"
                    + (f"; the highest, {order[-1]} ({fmt_ms(at.iloc[-1]['p99_ms'])} ms)."
                       if len(order) > 1 else "."))
        items.append(Finding(topic="ws_broadcast", text=head + "; ".join(parts) + ".",
                             headline=headline, winners=order[:1], others=order[1:],
                             question={"level": level},
                             run_id=run.run_id, trial_ids=trial_ids_of(*(
                                      r for _, r in at.iterrows())), values=values))
    return items


def _idle(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Per connection count: memory per idle connection of each server (valid, or overloaded:
    a server that dropped connections is a result about it, said as such)."""
    part = summary[(summary["load_model"] == "idle")
                   & summary["outcome"].isin(["valid", "overloaded"])
                   & summary["memory_per_connection_kb"].notna()]
    items = []
    for level in sorted(set(part["level"])):
        at = _sorted(part[part["level"] == level], "memory_per_connection_kb", lowest=True)
        phrases: list[str] = []
        values: dict[str, float] = {"level": level}
        for _, row in at.iterrows():
            kib = row["memory_per_connection_kb"]
            held = row["connections_at_end"]
            held_text = ("held all" if pd.notna(held) and int(held) >= level
                         else f"held only {int(held):,} of {fmt_count(level)}" if pd.notna(held)
                         else "connections held unknown")
            unit = " KiB per connection" if not phrases else " KiB"
            verb = " used " if not phrases else " "
            phrases.append(f"{row['server']}{verb}{fmt_kib(kib)}{unit} ({held_text})")
            values[f"kib_{row['server']}"] = kib
        memory = "PSS" if at["server_pss_mb"].notna().all() else "RSS"
        text = (f"Idle: at {connections(level)}, " + "; ".join(phrases)
                + f". Memory per connection: the growth of the server's {memory} while it "
                "held them.")
        order = tuple(str(s) for s in at["server"])
        first_kib = float(at.iloc[0]["memory_per_connection_kb"])
        last_kib = float(at.iloc[-1]["memory_per_connection_kb"])
        headline = (f"Idle, {connections(level)}: the least memory per connection, {order[0]} "
                    f"({fmt_kib(first_kib)} KiB)" + (
                        f"; the most, {order[-1]} ({fmt_kib(last_kib)} KiB)."
                        if len(order) > 1 else "."))
        items.append(Finding(topic="ws_idle", text=text, run_id=run.run_id,
                             headline=headline, winners=order[:1], others=order[1:],
                             question={"level": level}, unit="KiB per connection",
                                  trial_ids=trial_ids_of(*(r for _, r in at.iterrows())),
                                  values=values))
    return items


def _not_ranked(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    items = []
    for _, row in summary[~summary["valid"]].iterrows():
        what = "Overloaded" if row["outcome"] == "overloaded" else "Not ranked"
        text = (f"{what}: {row_label(row)}, {level_phrase(row)}: "
                f"{row['invalid_reason'] or 'invalid'}.")
        why = "the server did not keep up" if what == "Overloaded" else \
            "invalid: the harness cannot vouch for it"
        items.append(Finding(topic="invalid", text=text, run_id=run.run_id,
                             headline=f"{what}: {row_label(row)}, {level_phrase(row)} ({why}).",
                             trial_ids=trial_ids_of(row), caveat=True))
    return items


def websocket_guidance(run: RunData, summary: pd.DataFrame) -> list[Finding]:
    """Findings (unsupported servers, echo msgs/s and latency per message size, broadcast
    delivery, memory per idle connection), then caveats (levels not ranked, noise, targets)."""
    items: list[Finding] = []
    unsupported = unsupported_sentence(run.meta)
    if unsupported:
        items.append(Finding(topic="ws_unsupported", text=unsupported + " [run.json]",
                             others=tuple(s for s, _ in unsupported_targets(run.meta)),
                             run_id=run.run_id))
    findings = (_echo_closed(run, summary) + _echo_open(run, summary)
                + _broadcast(run, summary) + _idle(run, summary))
    items += findings
    ranked = summary[summary["valid"]] if not summary.empty else summary
    items += noise_items(run, ranked[ranked["load_model"].isin(["closed", "open"])]
                         if not ranked.empty else ranked)
    items += _not_ranked(run, summary)
    items += [i for i in target_items(run)
              if not any(i.text.startswith(f"{server} was not measured (unsupported)")
                         for server, _ in unsupported_targets(run.meta))]
    if not findings:
        items.insert(1 if unsupported else 0, Finding(
            topic="none_valid", caveat=True, run_id=run.run_id,
            text="No valid WebSocket trial in this run: nothing is ranked (see the caveats "
                 "below)."))
    return items


def find(ctx: Context) -> list[Finding]:
    return websocket_guidance(ctx.by_server_run, ctx.by_server_summary)

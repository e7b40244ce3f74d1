"""The WebSocket part of the analysis: guidance sentences and result tables.

A WebSocket run (scenario kind "websocket") has four load models: echo in closed loop (level:
connections, throughput in messages/s), echo in open loop (level: offered messages/s, latency
from the intended send), broadcast (level: subscribers; a "request" is one delivery) and idle
(level: connections held, the figure is the server's memory per connection). Every number in a
sentence is recomputed from the rows it cites, as for HTTP (harness.analysis.guidance). Levels
with a different message size are never merged (frames.GROUP_KEYS holds ``message_size``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import pandas as pd

from harness.analysis.frames import RunData
from harness.analysis.guidance import (
    GuidanceItem,
    fmt_mb,
    fmt_ms,
    fmt_ratio,
    fmt_rps,
    noise_items,
    row_label,
    servers_per_level,
    target_items,
    trial_ids_of,
)

WEBSOCKET_KINDS = ("websocket", "ws")
LOAD_MODELS = ("closed", "open", "broadcast", "idle")
# Below this ratio two message rates are reported as "about the same".
SAME_RATE_RATIO_MAX = 1.05
# A message size in the table and the sentences: bytes, or KiB when a whole number of them.
KIB = 1024


def is_websocket(meta: Mapping[str, Any]) -> bool:
    """Whether a run's scenario is a WebSocket one (run.json scenario.kind)."""
    return str((meta.get("scenario") or {}).get("kind") or "") in WEBSOCKET_KINDS


def fmt_size(size: Any) -> str:
    if size is None or pd.isna(size):
        return "–"
    value = int(size)
    if value >= KIB and value % KIB == 0:
        return f"{value // KIB:,} KiB"
    return f"{value:,} B"


def fmt_count(value: float) -> str:
    return f"{value:,.0f}"


def connections(value: float) -> str:
    return f"{fmt_count(value)} connection{'' if value == 1 else 's'}"


def fmt_kib(value: float) -> str:
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def fmt_fraction(value: float) -> str:
    # two decimals: 99.95 % of a million deliveries is 500 lost ones, worth seeing
    return "–" if value is None or math.isnan(value) else f"{100 * value:.2f} %"


def level_phrase(row: pd.Series) -> str:
    """Where a WebSocket level sits: '64 B messages, 64 connections (closed loop)'."""
    model, level = str(row["load_model"]), float(row["level"])
    size = fmt_size(row["message_size"])
    if model == "closed":
        return f"echo, {size} messages, {connections(level)} (closed loop)"
    if model == "open":
        return f"echo, {size} messages, {fmt_count(level)} msgs/s offered (open loop)"
    if model == "broadcast":
        return f"broadcast to {fmt_count(level)} subscribers ({size} messages)"
    return f"{fmt_count(level)} idle connection{'' if level == 1 else 's'}"


def unsupported_targets(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(server, reason) of the targets run.json lists as unsupported (WSGI servers)."""
    out = []
    for target in meta.get("targets") or []:
        if str(target.get("status") or "") == "unsupported":
            out.append((str(target.get("server") or "?"),
                        str(target.get("reason") or "no reason recorded")))
    return out


def unsupported_sentence(meta: Mapping[str, Any]) -> str:
    """One sentence naming the unsupported servers with their reasons (common reasons once)."""
    by_reason: dict[str, list[str]] = {}
    for server, reason in unsupported_targets(meta):
        # "gunicorn-sync is a WSGI server: the WSGI interface has no way ..." -> the part after
        prefix = f"{server} is a WSGI server: "
        by_reason.setdefault(reason.removeprefix(prefix), []).append(server)
    if not by_reason:
        return ""
    parts = [f"{', '.join(servers)} ({reason})" for reason, servers in by_reason.items()]
    return ("Not run, unsupported: " + "; ".join(parts) + ". A WSGI server answers a request "
            "and returns; it cannot hold the connection a WebSocket needs.")


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


def _echo_closed(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
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
        items.append(GuidanceItem(topic="ws_echo_closed", text=text, run_id=run.run_id,
                                  trial_ids=trial_ids_of(*rows), values=values))
    return items


def _echo_open(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
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
        items.append(GuidanceItem(topic="ws_echo_open", text=text + ".", run_id=run.run_id,
                                  trial_ids=trial_ids_of(*rows), values=values))
    return items


def _rate_of(run: RunData, row: pd.Series) -> float | None:
    trials = run.trials.set_index("trial_id")
    rates = trials.loc[list(row["trial_ids"]), "rate"].astype("float64").dropna()
    return float(rates.iloc[0]) if len(rates) else None


def _broadcast(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
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
        items.append(GuidanceItem(topic="ws_broadcast", text=head + "; ".join(parts) + ".",
                                  run_id=run.run_id, trial_ids=trial_ids_of(*(
                                      r for _, r in at.iterrows())), values=values))
    return items


def _idle(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
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
        items.append(GuidanceItem(topic="ws_idle", text=text, run_id=run.run_id,
                                  trial_ids=trial_ids_of(*(r for _, r in at.iterrows())),
                                  values=values))
    return items


def _not_ranked(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    items = []
    for _, row in summary[~summary["valid"]].iterrows():
        what = "Overloaded" if row["outcome"] == "overloaded" else "Not ranked"
        text = (f"{what}: {row_label(row)}, {level_phrase(row)}: "
                f"{row['invalid_reason'] or 'invalid'}.")
        items.append(GuidanceItem(topic="invalid", text=text, run_id=run.run_id,
                                  trial_ids=trial_ids_of(row), caveat=True))
    return items


def websocket_guidance(run: RunData, summary: pd.DataFrame) -> list[GuidanceItem]:
    """Findings (unsupported servers, echo msgs/s and latency per message size, broadcast
    delivery, memory per idle connection), then caveats (levels not ranked, noise, targets)."""
    items: list[GuidanceItem] = []
    unsupported = unsupported_sentence(run.meta)
    if unsupported:
        items.append(GuidanceItem(topic="ws_unsupported", text=unsupported + " [run.json]",
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
        items.insert(1 if unsupported else 0, GuidanceItem(
            topic="none_valid", caveat=True, run_id=run.run_id,
            text="No valid WebSocket trial in this run: nothing is ranked (see the caveats "
                 "below)."))
    return items


# -- tables ------------------------------------------------------------------------------------

def _num(value: Any, fmt: Any) -> str:
    if value is None or pd.isna(value):
        return "–"
    return str(fmt(float(value)))


def _status(row: pd.Series) -> str:
    if row["valid"]:
        return "valid"
    what = "overloaded" if row["outcome"] == "overloaded" else "invalid (not ranked)"
    return f"{what}: {row['invalid_reason']}"


def table_rows(summary: pd.DataFrame, model: str, short_id: Any) -> list[dict[str, str]]:
    """The rows of one load model's table (columns depend on the model)."""
    rows = []
    for _, r in summary.iterrows():
        row: dict[str, str] = {"server": str(r["server"]),
                               "gateway": str(r["gateway"]).upper()}
        errors = f"{r['errors']} ({r['error_rate']:.2%})"
        if model in ("closed", "open"):
            row["size"] = fmt_size(r["message_size"])
            row["connections" if model == "closed" else "offered msgs/s"] = fmt_count(
                r["level"])
            row["msgs/s"] = _num(r["achieved_rps"], fmt_rps)
            row["p50 ms"] = _num(r["p50_ms"], fmt_ms)
            row["p99 ms"] = _num(r["p99_ms"], fmt_ms)
            if model == "open":
                row["service p50 ms"] = _num(r["service_p50_ms"], fmt_ms)
                row["service p99 ms"] = _num(r["service_p99_ms"], fmt_ms)
            row["errors"] = errors
            row["CPU %"] = _num(r["server_cpu_pct"], lambda v: f"{v:.0f}")
        elif model == "broadcast":
            row["size"] = fmt_size(r["message_size"])
            row["subscribers"] = fmt_count(r["level"])
            reached = r["subscribers_reached"]
            row["on publisher's worker"] = "–" if pd.isna(reached) else f"{int(reached):,}"
            row["deliveries/s"] = _num(r["achieved_rps"], fmt_rps)
            row["p50 ms"] = _num(r["p50_ms"], fmt_ms)
            row["p99 ms"] = _num(r["p99_ms"], fmt_ms)
            row["delivered"] = fmt_fraction(r["delivered_fraction"])
            row["errors"] = errors
            row["CPU %"] = _num(r["server_cpu_pct"], lambda v: f"{v:.0f}")
        else:
            row["connections"] = fmt_count(r["level"])
            held = r["connections_at_end"]
            row["held at end"] = "–" if pd.isna(held) else f"{int(held):,}"
            row["KiB per connection"] = _num(r["memory_per_connection_kb"], fmt_kib)
        row["RSS MB"] = _num(r["server_rss_mb"], fmt_mb)
        row["PSS MB"] = _num(r["server_pss_mb"], fmt_mb)
        row["repeats"] = (str(r["repeats"]) if r["measured_repeats"] == r["repeats"]
                          else f"{r['measured_repeats']} of {r['repeats']}")
        row["status"] = _status(r)
        row["trials"] = ", ".join(short_id(t) for t in r["trial_ids"])
        rows.append(row)
    return rows

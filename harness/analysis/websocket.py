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

from harness.analysis.wording import fmt_mb, fmt_ms, fmt_rps

WEBSOCKET_KINDS = ("websocket", "ws")
LOAD_MODELS = ("closed", "open", "broadcast", "idle")
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

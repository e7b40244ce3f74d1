"""The figures of a WebSocket run: echo messages/s and latency, broadcast delivery, memory
per idle connection."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from harness.analysis.families import series_view
from harness.analysis.plots.style import (
    FIGSIZE_IN,
    INVALID_COLOUR,
    INVALID_LABEL,
    OVERLOADED_LABEL,
    TALL_FIGSIZE_IN,
    Style,
    draw_series,
    legend,
    level_axis,
    new_figure,
    server_order,
    styles_for,
)


def message_sizes(rows: pd.DataFrame) -> list[int]:
    return sorted(set(rows["message_size"].dropna().astype(int)))


def size_label(size: int) -> str:
    return f"{size // 1024} KiB messages" if size >= 1024 and size % 1024 == 0 \
        else f"{size} B messages"


def plot_ws_throughput(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """WebSocket echo, closed loop: messages/s against connections, one line per server, one
    panel per message size (side by side, same y axis)."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "closed"]
    sizes = message_sizes(rows)
    if not sizes:
        return None
    fig = new_figure((max(FIGSIZE_IN[0], 4.2 * len(sizes)), FIGSIZE_IN[1]))
    axes = fig.subplots(1, len(sizes), sharey=True, squeeze=False)[0]
    styles = styles_for(summary)
    over = invalid = False
    for ax, size in zip(axes, sizes, strict=True):
        part = rows[rows["message_size"].astype("Int64") == size]
        for server in server_order(part):
            o, i = draw_series(ax, part[part["server"] == server], "achieved_rps",
                                styles[server], label=ax is axes[0])
            over, invalid = over or o, invalid or i
        level_axis(ax, "closed", part["level"].tolist())
        ax.set_xlabel("connections (closed loop)")
        ax.set_title(size_label(size), fontsize=10)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("messages/s (echo round trips)")
    fig.suptitle(title or "WebSocket echo: messages/s vs connections")
    legend(axes[0], invalid, over)
    return fig


def plot_ws_open_latency(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """WebSocket echo, open loop: p50 and p99 (from the intended send) against the offered
    message rate; a column of panels per message size."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "open"]
    sizes = message_sizes(rows)
    if not sizes:
        return None
    fig = new_figure((max(FIGSIZE_IN[0], 4.2 * len(sizes)), TALL_FIGSIZE_IN[1]))
    grid = fig.subplots(2, len(sizes), sharex="col", squeeze=False)
    styles = styles_for(summary)
    over = invalid = False
    for col, size in enumerate(sizes):
        part = rows[rows["message_size"].astype("Int64") == size]
        for row_index, (column, name) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            ax = grid[row_index][col]
            for server in server_order(part):
                o, i = draw_series(ax, part[part["server"] == server], column,
                                    styles[server], label=row_index == 0 and col == 0)
                over, invalid = over or o, invalid or i
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            level_axis(ax, "open", part["level"].tolist())
            ax.set_xlabel("offered messages/s (open loop)" if row_index == 1 else "")
            if col == 0:
                ax.set_ylabel(f"{name} latency, ms")
            if row_index == 0:
                ax.set_title(size_label(size), fontsize=10)
    fig.suptitle(title or "WebSocket echo: latency vs offered message rate")
    legend(grid[0][0], invalid, over)
    return fig


def bars(ax: Axes, rows: pd.DataFrame, column: str, styles: dict[str, Style],
          servers: Sequence[str], levels: Sequence[float], *, label: bool,
          annotate: dict[tuple[str, float], str] | None = None) -> tuple[bool, bool]:
    """Grouped bars: one group per level, one bar per server; overloaded bars hollow and
    hatched in the server's colour, invalid bars grey and cross-hatched. Returns whether any
    (overloaded, invalid) bar was drawn."""
    width = 0.8 / max(len(servers), 1)
    invalid = any_overloaded = False
    for index, server in enumerate(servers):
        style = styles[server]
        labelled = not label
        for position, level in enumerate(levels):
            match = rows[(rows["server"] == server) & (rows["level"] == level)]
            if match.empty or pd.isna(match.iloc[0][column]):
                continue
            row = match.iloc[0]
            ok = bool(row["valid"])
            # overloaded: a result about the server (it fell short), drawn in its colour
            overloaded = not ok and str(row.get("outcome", "")) == "overloaded"
            invalid |= not ok and not overloaded
            any_overloaded |= overloaded
            x = position - 0.4 + width * (index + 0.5)
            ax.bar(x, float(row[column]), width=width * 0.92,
                   color=style.colour if ok else "none",
                   edgecolor=style.colour if ok or overloaded else INVALID_COLOUR,
                   hatch=None if ok else "//" if overloaded else "xx",
                   label=None if labelled else style.label)
            labelled = True
            note = (annotate or {}).get((server, level))
            if note:
                ax.annotate(note, (x, float(row[column])), xytext=(0, 2),
                            textcoords="offset points", ha="center", va="bottom", fontsize=7)
    ax.set_xticks(range(len(levels)))
    ax.set_xticklabels([f"{lv:,.0f}" for lv in levels])
    ax.grid(True, axis="y", alpha=0.3)
    return any_overloaded, invalid


def bar_legend(ax: Axes, invalid: bool, overloaded: bool = False) -> None:
    found, labels = ax.get_legend_handles_labels()
    handles: list[Any] = list(found)
    if overloaded:
        handles.append(Patch(facecolor="none", edgecolor="#495057", hatch="//"))
        labels.append(OVERLOADED_LABEL)
    if invalid:
        handles.append(Patch(facecolor="none", edgecolor=INVALID_COLOUR, hatch="xx"))
        labels.append(INVALID_LABEL)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def plot_ws_broadcast(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """Broadcast: p50 and p99 delivery latency per server per subscriber count, the fraction
    of expected deliveries that arrived written over each p99 bar."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "broadcast"]
    if rows.empty or rows["p99_ms"].isna().all():
        return None
    fig = new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    styles = styles_for(summary)
    servers = server_order(rows)
    levels = sorted(set(rows["level"].astype(float)))
    delivered = {(str(r["server"]), float(r["level"])):
                 (f"{100 * r['delivered_fraction']:.1f} %"
                  if pd.notna(r["delivered_fraction"]) else "")
                 for _, r in rows.iterrows()}
    over, invalid = bars(top, rows, "p50_ms", styles, servers, levels, label=True)
    bars(bottom, rows, "p99_ms", styles, servers, levels, label=False, annotate=delivered)
    top.set_ylabel("p50 delivery, ms")
    bottom.set_ylabel("p99 delivery, ms")
    bottom.set_xlabel("subscribers (label: share of expected deliveries that arrived)")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.margins(y=0.15)
    top.set_title(title or "WebSocket broadcast: delivery latency")
    bar_legend(top, invalid, over)
    return fig


def plot_ws_idle(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """Idle connections: the server's memory per connection held, a bar per server per
    connection count, labelled with how many connections it still held at the end."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "idle"]
    if rows.empty or rows["memory_per_connection_kb"].isna().all():
        return None
    fig = new_figure()
    ax = fig.add_subplot()
    styles = styles_for(summary)
    levels = sorted(set(rows["level"].astype(float)))
    held = {}
    for _, r in rows.iterrows():
        count = r["connections_at_end"]
        held[(str(r["server"]), float(r["level"]))] = (
            "" if pd.isna(count) else "all held" if int(count) >= float(r["level"])
            else f"held {int(count):,}")
    over, invalid = bars(ax, rows, "memory_per_connection_kb", styles, server_order(rows),
                          levels, label=True, annotate=held)
    ax.set_ylabel("server memory per connection, KiB")
    ax.set_xlabel("idle connections held")
    ax.set_ylim(bottom=0)
    ax.margins(y=0.15)
    ax.set_title(title or "WebSocket: memory per idle connection")
    bar_legend(ax, invalid, over)
    return fig

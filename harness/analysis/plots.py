"""Figures of one run: throughput, latency, the percentile spectrum, per-second series, CPU/RSS.

Figures are built with matplotlib's object API (``Figure``, no pyplot state) and rendered by the
Agg canvas, so nothing here depends on (or changes) the backend a notebook uses. Colours keep
the gateways apart at a glance: WSGI servers in blues and greens, ASGI servers in oranges and
reds, the same colour for a server in every figure. Overloaded levels (the server did not keep
up: a result) are hollow markers in the server's colour, legend entry OVERLOADED_LABEL; invalid
levels (the harness cannot vouch for them) grey hollow markers with a cross, legend entry
"invalid (not ranked)". Neither is joined to a valid line.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.colors import to_hex, to_rgb
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from harness.analysis.families import SERIES_SEPARATOR, series_view
from harness.analysis.frames import (
    RunData,
    head_to_head_rows,
    load_series,
    merged_histogram,
    percentile_spectrum,
)

FIGSIZE_IN = (8.0, 4.4)
TALL_FIGSIZE_IN = (8.0, 6.4)
PNG_DPI = 110
INVALID_COLOUR = "#9e9e9e"
INVALID_LABEL = "invalid (not ranked)"
OVERLOADED_LABEL = "overloaded: did not keep up (a result, not ranked)"
SLO_COLOUR = "#212529"
SPECTRUM_TICKS_PCT = (50.0, 90.0, 99.0, 99.9, 99.99, 99.999)

# Fixed colours for the servers of the catalogue, so a server looks the same in every report.
WSGI_COLOURS: dict[str, str] = {
    "gunicorn-sync": "#1f4e99",
    "gunicorn-gthread": "#3d8bd9",
    "gunicorn-gevent": "#0f9bb0",
    "uwsgi": "#2e8b57",
    "granian-wsgi": "#7cb342",
}
ASGI_COLOURS: dict[str, str] = {
    "uvicorn": "#e8590c",
    "uvicorn-h11": "#f59f00",
    "gunicorn-uvicorn": "#c92a2a",
    "hypercorn": "#a61e4d",
    "daphne": "#8d5524",
    "granian-asgi": "#ff7b7b",
}
# For servers the table above does not know: more of the same families.
WSGI_SPARE = ("#4dabf7", "#087f5b", "#74c0fc", "#94d82d", "#1864ab", "#38d9a9")
ASGI_SPARE = ("#d9480f", "#ffa94d", "#e03131", "#f76707", "#862e9c", "#ffc078")
OTHER_SPARE = ("#6741d9", "#495057", "#9775fa", "#343a40")
GATEWAY_MARKERS = {"wsgi": "o", "asgi": "s"}
# Series of a run with several app families (harness.analysis.families): a marker per family,
# and the server's colour shaded per family (darker below 0, lighter above) so lines without
# markers (the spectrum) stay apart too; distinct among the families of each gateway.
FAMILY_MARKERS = {"raw": "o", "django": "s", "django-async": "D", "flask": "^", "quart": "v",
                  "fastapi": "P", "starlette": "X", "pyramid": "*"}
FAMILY_SHADES = {"raw": 0.0, "django": -0.4, "django-async": 0.4, "flask": -0.2, "quart": 0.2,
                 "fastapi": -0.6, "starlette": 0.6, "pyramid": 0.5}


def shade(colour: str, amount: float) -> str:
    """``colour`` mixed with white (``amount`` > 0) or black (< 0) by ``abs(amount)``."""
    target = 1.0 if amount > 0 else 0.0
    red, green, blue = (c + (target - c) * abs(amount) for c in to_rgb(colour))
    return str(to_hex((red, green, blue)))


@dataclass(frozen=True, kw_only=True)
class Style:
    """How one server is drawn."""

    colour: str
    marker: str
    linestyle: str
    label: str


def server_styles(servers: Iterable[tuple[str, str]]) -> dict[str, Style]:
    """A style per server name from (server, gateway) pairs; stable for the known servers."""
    styles: dict[str, Style] = {}
    spare_used = {"wsgi": 0, "asgi": 0, "other": 0}
    for server, gateway in sorted(set(servers)):
        if server in styles:
            continue
        family = gateway.lower() if gateway.lower() in ("wsgi", "asgi") else "other"
        fixed = {"wsgi": WSGI_COLOURS, "asgi": ASGI_COLOURS}.get(family, {})
        # a series of a run with several app families, "uvicorn · django": the server's
        # colour shaded for the family, the family's marker
        base, _, app = server.partition(SERIES_SEPARATOR)
        colour = fixed.get(base)
        if colour is None:
            spare = {"wsgi": WSGI_SPARE, "asgi": ASGI_SPARE}.get(family, OTHER_SPARE)
            colour = spare[spare_used[family] % len(spare)]
            spare_used[family] += 1
        marker = (FAMILY_MARKERS.get(app, "h") if app
                  else GATEWAY_MARKERS.get(family, "D"))
        if app:
            colour = shade(colour, FAMILY_SHADES.get(app, 0.3))
        styles[server] = Style(colour=colour, marker=marker,
                               linestyle="-" if family == "wsgi" else "--",
                               label=f"{server} ({gateway.upper()})")
    return styles


def _styles_for(summary: pd.DataFrame) -> dict[str, Style]:
    return server_styles(zip(summary["server"].astype(str), summary["gateway"].astype(str),
                             strict=True))


def _server_order(summary: pd.DataFrame) -> list[str]:
    # WSGI first, then ASGI, so legends read in the same order as the colour families.
    pairs = sorted({(str(g).lower() != "wsgi", str(g).lower() != "asgi", str(s))
                    for s, g in zip(summary["server"], summary["gateway"], strict=True)})
    return [p[2] for p in pairs]


def _invalid_handle() -> tuple[Line2D, Line2D]:
    # Drawn like the points themselves: a hollow grey marker with a cross on top.
    ring = Line2D([], [], linestyle="none", marker="o", markersize=9, markerfacecolor="none",
                  markeredgecolor=INVALID_COLOUR, markeredgewidth=1.4)
    cross = Line2D([], [], linestyle="none", marker="x", markersize=7, color=INVALID_COLOUR,
                   markeredgewidth=1.6)
    return ring, cross


def _overloaded_handle(marker: str = "o", colour: str = "#495057") -> Line2D:
    return Line2D([], [], linestyle="none", marker=marker, markersize=8, markerfacecolor="none",
                  markeredgecolor=colour, markeredgewidth=1.6)


def _is_overloaded(rows: pd.DataFrame) -> pd.Series:
    if "outcome" not in rows:
        return pd.Series(False, index=rows.index)
    return (rows["outcome"].astype("string") == "overloaded").fillna(False).astype(bool)


def _draw_points(ax: Axes, x: pd.Series, y: pd.Series, style: Style, *,
                 overloaded: bool) -> None:
    """Points that are not ranked: hollow in the server's colour (overloaded), or grey
    crossed circles (invalid)."""
    if overloaded:
        ax.plot(x, y, linestyle="none", marker=style.marker, markersize=8,
                markerfacecolor="none", markeredgecolor=style.colour, markeredgewidth=1.6)
        return
    ax.plot(x, y, linestyle="none", marker=style.marker, markersize=9,
            markerfacecolor="none", markeredgecolor=INVALID_COLOUR, markeredgewidth=1.4)
    ax.plot(x, y, linestyle="none", marker="x", markersize=7, color=INVALID_COLOUR,
            markeredgewidth=1.6)


def _draw_series(ax: Axes, rows: pd.DataFrame, y: str, style: Style, *, label: bool,
                 x: str = "level") -> tuple[bool, bool]:
    """Valid points as a line in the server's colour; overloaded ones as hollow markers in
    that colour; invalid ones as grey crossed circles.

    Returns whether any (overloaded, invalid) point was drawn: the caller adds each legend
    entry once.
    """
    rows = rows.sort_values(x)
    good = rows[rows["valid"] & rows[y].notna()]
    over = _is_overloaded(rows)
    late = rows[~rows["valid"] & over & rows[y].notna()]
    bad = rows[~rows["valid"] & ~over & rows[y].notna()]
    ax.plot(good[x], good[y], color=style.colour, marker=style.marker,
            linestyle=style.linestyle, linewidth=1.8, markersize=5.5,
            label=style.label if label else None)
    if not late.empty:
        _draw_points(ax, late[x], late[y], style, overloaded=True)
    if not bad.empty:
        _draw_points(ax, bad[x], bad[y], style, overloaded=False)
    return not late.empty, not bad.empty


def _level_axis(ax: Axes, load_model: str, levels: Sequence[float]) -> None:
    ax.set_xscale("log", base=2 if load_model == "closed" else 10)
    ticks = sorted({float(v) for v in levels if v > 0})
    ax.xaxis.set_major_locator(FixedLocator(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:g}"))
    ax.set_xlabel("concurrent clients (closed loop)" if load_model == "closed"
                  else "offered rate, req/s (open loop)")
    ax.grid(True, which="major", alpha=0.3)


def _legend(ax: Axes, any_invalid: bool, any_overloaded: bool = False) -> None:
    found, labels = ax.get_legend_handles_labels()
    handles: list[Any] = list(found)
    if any_overloaded:
        handles.append(_overloaded_handle())
        labels.append(OVERLOADED_LABEL)
    if any_invalid:
        handles.append(_invalid_handle())
        labels.append(INVALID_LABEL)
    if handles:
        ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)


def _new_figure(size: tuple[float, float] = FIGSIZE_IN) -> Figure:
    return Figure(figsize=size, layout="constrained")


def plot_throughput(summary: pd.DataFrame, title: str = "") -> Figure:
    """Achieved throughput against concurrency (closed loop), one line per server."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = _new_figure()
    ax = fig.add_subplot()
    rows = summary[summary["load_model"] == "closed"]
    styles = _styles_for(summary)
    over = invalid = False
    for server in _server_order(rows):
        o, i = _draw_series(ax, rows[rows["server"] == server], "achieved_rps",
                            styles[server], label=True)
        over, invalid = over or o, invalid or i
    _level_axis(ax, "closed", rows["level"].tolist())
    ax.set_ylabel("throughput, req/s (mean of repeats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Throughput vs concurrency")
    _legend(ax, invalid, over)
    return fig


def plot_latency(summary: pd.DataFrame, load_model: str, title: str = "") -> Figure:
    """p50 and p99 (repeats' histograms merged) against concurrency or offered rate."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = _new_figure(TALL_FIGSIZE_IN)
    axes = fig.subplots(2, 1, sharex=True)
    rows = summary[summary["load_model"] == load_model]
    styles = _styles_for(summary)
    over = invalid = False
    for ax, column, name in zip(axes, ("p50_ms", "p99_ms"), ("p50", "p99"), strict=True):
        for server in _server_order(rows):
            o, i = _draw_series(ax, rows[rows["server"] == server], column, styles[server],
                                label=ax is axes[0])
            over, invalid = over or o, invalid or i
        ax.set_yscale("log")
        ax.set_ylabel(f"{name} latency, ms")
        ax.grid(True, which="both", alpha=0.25)
        _level_axis(ax, load_model, rows["level"].tolist())
    axes[0].set_xlabel("")
    _legend(axes[0], invalid, over)
    where = "concurrency" if load_model == "closed" else "offered rate"
    axes[0].set_title(title or f"Latency percentiles vs {where}")
    return fig


def _spectrum_axis(ax: Axes, max_inverse_tail: float) -> None:
    ax.set_xscale("log")
    ticks = [t for t in SPECTRUM_TICKS_PCT if 1.0 / (1.0 - t / 100.0) <= max_inverse_tail * 1.01]
    ticks = ticks or [50.0]
    ax.xaxis.set_major_locator(FixedLocator([1.0 / (1.0 - t / 100.0) for t in ticks]))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.xaxis.set_major_formatter(FixedFormatterPct(ticks))
    ax.set_xlim(1.0, max(max_inverse_tail, 2.0))
    ax.set_xlabel("percentile")
    ax.grid(True, which="major", alpha=0.3)


class FixedFormatterPct(FuncFormatter):
    """Ticks at 1/(1-p) labelled with p, like the classic HdrHistogram plot."""

    def __init__(self, ticks_pct: Sequence[float]) -> None:
        labels = {1.0 / (1.0 - t / 100.0): f"{t:g} %" for t in ticks_pct}

        def label(value: float, _pos: int | None) -> str:
            for x, text in labels.items():
                if math.isclose(value, x, rel_tol=1e-6):
                    return text
            return ""

        super().__init__(label)


def plot_spectrum(run: RunData, summary: pd.DataFrame, load_model: str, level: float,
                  title: str = "") -> Figure | None:
    """The latency percentile spectrum of each server at one level, repeats merged.

    None when no server at that level has histograms.
    """
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[(summary["load_model"] == load_model) & (summary["level"] == level)]
    styles = _styles_for(summary)
    fig = _new_figure()
    ax = fig.add_subplot()
    max_x = 1.0
    for server in _server_order(rows):
        row = rows[rows["server"] == server].iloc[0]
        hist = merged_histogram(run.run_dir, list(row["trial_ids"]))
        if hist is None or hist.get_total_count() == 0:
            continue
        spectrum = percentile_spectrum(hist)
        max_x = max(max_x, float(spectrum["inverse_tail"].max()))
        style = styles[server]
        if bool(row["valid"]):
            ax.plot(spectrum["inverse_tail"], spectrum["value_ms"], color=style.colour,
                    linestyle=style.linestyle, linewidth=1.8, label=style.label)
        elif str(row.get("outcome", "")) == "overloaded":
            ax.plot(spectrum["inverse_tail"], spectrum["value_ms"], color=style.colour,
                    linestyle=":", linewidth=1.6, marker=style.marker, markerfacecolor="none",
                    markevery=[len(spectrum) - 1], markersize=8,
                    label=f"{style.label}: overloaded")
        else:
            ax.plot(spectrum["inverse_tail"], spectrum["value_ms"], color=INVALID_COLOUR,
                    linestyle=":", linewidth=1.6, marker="x", markevery=[len(spectrum) - 1],
                    markersize=8, label=f"{style.label}: {INVALID_LABEL}")
    if not ax.lines:
        return None
    _spectrum_axis(ax, max_x)
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms")
    ax.grid(True, which="both", axis="y", alpha=0.25)
    where = (f"{level:g} concurrent clients" if load_model == "closed"
             else f"{level:g} req/s offered (open loop)")
    ax.set_title(title or f"Latency by percentile at {where}")
    _legend(ax, False)  # overloaded and invalid lines say so in their own label
    return fig


def plot_timeline(run: RunData, summary: pd.DataFrame, load_model: str, level: float,
                  title: str = "") -> Figure | None:
    """Throughput and p99 per second over the first repeat of each server at one level."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[(summary["load_model"] == load_model) & (summary["level"] == level)]
    styles = _styles_for(summary)
    fig = _new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    invalid = over = False
    for server in _server_order(rows):
        row = rows[rows["server"] == server].iloc[0]
        series = load_series(run.run_dir, str(row["trial_ids"][0]))
        if series.empty:
            continue
        valid = bool(row["valid"])
        overloaded = not valid and str(row.get("outcome", "")) == "overloaded"
        invalid |= not valid and not overloaded
        over |= overloaded
        style = styles[server]
        colour = style.colour if valid or overloaded else INVALID_COLOUR
        kwargs = {"color": colour, "linestyle": style.linestyle if valid else ":",
                  "linewidth": 1.6, "marker": style.marker if valid or overloaded else "x",
                  "markersize": 3.5, "markerfacecolor": colour if valid else "none"}
        seconds = series["second"].astype("float64")
        # answered per second is what the server delivered; runs written before the series
        # had it only count requests by the second they were due (the offered load, open loop)
        delivered = series["completed"] if series["completed"].notna().any() \
            else series["requests"]
        top.plot(seconds, delivered.astype("float64"),
                 label=style.label if valid else None, **kwargs)  # type: ignore[arg-type]
        bottom.plot(seconds, series["p99_ms"], **kwargs)  # type: ignore[arg-type]
    if not top.lines:
        return None
    top.set_ylabel("answered per second")
    top.set_ylim(bottom=0)
    bottom.set_ylabel("p99 per second, ms")
    bottom.set_yscale("log")
    bottom.set_xlabel("second of the measurement (repeat 1)")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (top, bottom):
        ax.grid(True, alpha=0.3)
    where = (f"{level:g} concurrent clients" if load_model == "closed"
             else f"{level:g} req/s offered")
    top.set_title(title or f"Over one trial at {where}")
    _legend(top, invalid, over)
    return fig


def plot_resources(summary: pd.DataFrame, load_model: str, title: str = "") -> Figure:
    """Server CPU (percent of one core, mean of repeats) and peak memory against the load level:
    PSS where the run has it (forked workers' shared pages split between them), else RSS."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = _new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    rows = summary[summary["load_model"] == load_model]
    styles = _styles_for(summary)
    memory = "server_pss_mb" if rows["server_pss_mb"].notna().all() else "server_rss_mb"
    over = invalid = False
    for server in _server_order(rows):
        part = rows[rows["server"] == server]
        o, i = _draw_series(top, part, "server_cpu_pct", styles[server], label=True)
        over, invalid = over or o, invalid or i
        _draw_series(bottom, part, memory, styles[server], label=False)
    top.set_ylabel("server CPU, % of one core")
    top.set_ylim(bottom=0)
    bottom.set_ylabel(f"server {'PSS' if memory == 'server_pss_mb' else 'RSS'}, MB (peak)")
    bottom.set_ylim(bottom=0)
    for ax in (top, bottom):
        _level_axis(ax, load_model, rows["level"].tolist())
    top.set_xlabel("")
    top.set_title(title or "CPU and memory per server")
    _legend(top, invalid, over)
    return fig


def plot_capacity(trials: pd.DataFrame, capacity: pd.DataFrame, column: str, percentile: str,
                  threshold_ms: float, title: str = "") -> Figure | None:
    """Latency at the objective's percentile against the offered rate, one point per open-loop
    trial (the plan's levels and every step of the capacity searches), with the objective as a
    horizontal line and each server's capacity marked: a star on each search's proof trial and
    a dotted vertical line at the mean of the plan's searches. None without open-loop trials."""
    rows = trials[(trials["load_model"].astype("string") == "open")
                  & (trials["status"].astype("string") == "ok")]
    rows = rows[rows[column].notna() & rows["rate"].notna()]
    if rows.empty:
        return None
    fig = _new_figure(TALL_FIGSIZE_IN)
    ax = fig.add_subplot()
    styles = _styles_for(rows)
    over = invalid = False
    ids = rows.set_index(rows["trial_id"].astype(str))
    for server in _server_order(rows):
        part = rows[rows["server"].astype("string") == server]
        o, i = _draw_series(ax, part, column, styles[server], label=True, x="rate")
        over, invalid = over or o, invalid or i
        mine = capacity[capacity["server"].astype("string") == server] \
            if not capacity.empty else capacity
        proofs = [str(t) for t in mine["proof_trial"].dropna() if str(t) in ids.index] \
            if not mine.empty else []
        if proofs:
            proof_rows = ids.loc[proofs]
            ax.plot(proof_rows["rate"], proof_rows[column], linestyle="none", marker="*",
                    markersize=15, color=styles[server].colour, markeredgecolor="black",
                    markeredgewidth=0.7, zorder=5)
            # the plan's searches, as the capacity table's mean (not the head-to-head ones)
            plan = mine[~head_to_head_rows(mine)]
            mean = float(plan["capacity_rps"].dropna().mean())
            ax.axvline(mean, color=styles[server].colour, linestyle=":", linewidth=1.3)
    ax.axhline(threshold_ms, color=SLO_COLOUR, linestyle="--", linewidth=1.2,
               label=f"objective: {percentile} <= {threshold_ms:g} ms")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    ax.set_xlabel("offered rate, req/s (open loop; search steps included)")
    ax.set_ylabel(f"{percentile} latency, ms (from the intended send)")
    ax.grid(True, which="both", alpha=0.25)
    ax.set_title(title or f"Capacity at {percentile} <= {threshold_ms:g} ms", fontsize=10)
    found, labels = ax.get_legend_handles_labels()
    handles: list[Any] = list(found)
    if not capacity.empty:
        handles.append(Line2D([], [], linestyle=":", marker="*", markersize=12,
                              color="#495057", markeredgecolor="black", markeredgewidth=0.7))
        labels.append("capacity: proof trial (star), mean of repeats (dotted)")
    if over:
        handles.append(_overloaded_handle())
        labels.append(OVERLOADED_LABEL)
    if invalid:
        handles.append(_invalid_handle())
        labels.append(INVALID_LABEL)
    ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)
    return fig


def save_figure(fig: Figure, base: Path,
                formats: Sequence[str] = ("png", "svg")) -> dict[str, Path]:
    """Write ``base.png`` and ``base.svg`` (Agg renders the PNG); returns path per format."""
    base.parent.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for fmt in formats:
        path = base.with_suffix(f".{fmt}")
        # A fixed salt and no date keep the SVG identical between reports of the same data.
        with matplotlib.rc_context({"svg.hashsalt": "harness"}):
            fig.savefig(path, format=fmt, dpi=PNG_DPI,
                        metadata={"Date": None} if fmt == "svg" else None)
        paths[fmt] = path
    return paths


# -- WebSocket ---------------------------------------------------------------------------------

def _message_sizes(rows: pd.DataFrame) -> list[int]:
    return sorted(set(rows["message_size"].dropna().astype(int)))


def _size_label(size: int) -> str:
    return f"{size // 1024} KiB messages" if size >= 1024 and size % 1024 == 0 \
        else f"{size} B messages"


def plot_ws_throughput(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """WebSocket echo, closed loop: messages/s against connections, one line per server, one
    panel per message size (side by side, same y axis)."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "closed"]
    sizes = _message_sizes(rows)
    if not sizes:
        return None
    fig = _new_figure((max(FIGSIZE_IN[0], 4.2 * len(sizes)), FIGSIZE_IN[1]))
    axes = fig.subplots(1, len(sizes), sharey=True, squeeze=False)[0]
    styles = _styles_for(summary)
    over = invalid = False
    for ax, size in zip(axes, sizes, strict=True):
        part = rows[rows["message_size"].astype("Int64") == size]
        for server in _server_order(part):
            o, i = _draw_series(ax, part[part["server"] == server], "achieved_rps",
                                styles[server], label=ax is axes[0])
            over, invalid = over or o, invalid or i
        _level_axis(ax, "closed", part["level"].tolist())
        ax.set_xlabel("connections (closed loop)")
        ax.set_title(_size_label(size), fontsize=10)
        ax.set_ylim(bottom=0)
    axes[0].set_ylabel("messages/s (echo round trips)")
    fig.suptitle(title or "WebSocket echo: messages/s vs connections")
    _legend(axes[0], invalid, over)
    return fig


def plot_ws_open_latency(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """WebSocket echo, open loop: p50 and p99 (from the intended send) against the offered
    message rate; a column of panels per message size."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "open"]
    sizes = _message_sizes(rows)
    if not sizes:
        return None
    fig = _new_figure((max(FIGSIZE_IN[0], 4.2 * len(sizes)), TALL_FIGSIZE_IN[1]))
    grid = fig.subplots(2, len(sizes), sharex="col", squeeze=False)
    styles = _styles_for(summary)
    over = invalid = False
    for col, size in enumerate(sizes):
        part = rows[rows["message_size"].astype("Int64") == size]
        for row_index, (column, name) in enumerate((("p50_ms", "p50"), ("p99_ms", "p99"))):
            ax = grid[row_index][col]
            for server in _server_order(part):
                o, i = _draw_series(ax, part[part["server"] == server], column,
                                    styles[server], label=row_index == 0 and col == 0)
                over, invalid = over or o, invalid or i
            ax.set_yscale("log")
            ax.grid(True, which="both", alpha=0.25)
            _level_axis(ax, "open", part["level"].tolist())
            ax.set_xlabel("offered messages/s (open loop)" if row_index == 1 else "")
            if col == 0:
                ax.set_ylabel(f"{name} latency, ms")
            if row_index == 0:
                ax.set_title(_size_label(size), fontsize=10)
    fig.suptitle(title or "WebSocket echo: latency vs offered message rate")
    _legend(grid[0][0], invalid, over)
    return fig


def _bars(ax: Axes, rows: pd.DataFrame, column: str, styles: dict[str, Style],
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


def _bar_legend(ax: Axes, invalid: bool, overloaded: bool = False) -> None:
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
    fig = _new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    styles = _styles_for(summary)
    servers = _server_order(rows)
    levels = sorted(set(rows["level"].astype(float)))
    delivered = {(str(r["server"]), float(r["level"])):
                 (f"{100 * r['delivered_fraction']:.1f} %"
                  if pd.notna(r["delivered_fraction"]) else "")
                 for _, r in rows.iterrows()}
    over, invalid = _bars(top, rows, "p50_ms", styles, servers, levels, label=True)
    _bars(bottom, rows, "p99_ms", styles, servers, levels, label=False, annotate=delivered)
    top.set_ylabel("p50 delivery, ms")
    bottom.set_ylabel("p99 delivery, ms")
    bottom.set_xlabel("subscribers (label: share of expected deliveries that arrived)")
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.margins(y=0.15)
    top.set_title(title or "WebSocket broadcast: delivery latency")
    _bar_legend(top, invalid, over)
    return fig


def plot_ws_idle(summary: pd.DataFrame, title: str = "") -> Figure | None:
    """Idle connections: the server's memory per connection held, a bar per server per
    connection count, labelled with how many connections it still held at the end."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[summary["load_model"] == "idle"]
    if rows.empty or rows["memory_per_connection_kb"].isna().all():
        return None
    fig = _new_figure()
    ax = fig.add_subplot()
    styles = _styles_for(summary)
    levels = sorted(set(rows["level"].astype(float)))
    held = {}
    for _, r in rows.iterrows():
        count = r["connections_at_end"]
        held[(str(r["server"]), float(r["level"]))] = (
            "" if pd.isna(count) else "all held" if int(count) >= float(r["level"])
            else f"held {int(count):,}")
    over, invalid = _bars(ax, rows, "memory_per_connection_kb", styles, _server_order(rows),
                          levels, label=True, annotate=held)
    ax.set_ylabel("server memory per connection, KiB")
    ax.set_xlabel("idle connections held")
    ax.set_ylim(bottom=0)
    ax.margins(y=0.15)
    ax.set_title(title or "WebSocket: memory per idle connection")
    _bar_legend(ax, invalid, over)
    return fig

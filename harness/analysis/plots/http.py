"""The figures of an HTTP run: throughput, latency, the percentile spectrum, per-second
series, server CPU and memory, and capacity at the objective."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FixedLocator, FuncFormatter, MaxNLocator, NullLocator

from harness.analysis.families import series_view
from harness.analysis.histograms import merged_histogram, percentile_spectrum
from harness.analysis.plots.style import (
    INVALID_COLOUR,
    INVALID_LABEL,
    OVERLOADED_LABEL,
    SLO_COLOUR,
    SPECTRUM_TICKS_PCT,
    TALL_FIGSIZE_IN,
    draw_series,
    invalid_handle,
    legend,
    level_axis,
    new_figure,
    overloaded_handle,
    server_order,
    styles_for,
)
from harness.analysis.rundata import RunData, head_to_head_rows, load_series


def plot_throughput(summary: pd.DataFrame, title: str = "") -> Figure:
    """Achieved throughput against concurrency (closed loop), one line per server."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = new_figure()
    ax = fig.add_subplot()
    rows = summary[summary["load_model"] == "closed"]
    styles = styles_for(summary)
    over = invalid = False
    for server in server_order(rows):
        o, i = draw_series(ax, rows[rows["server"] == server], "achieved_rps",
                            styles[server], label=True)
        over, invalid = over or o, invalid or i
    level_axis(ax, "closed", rows["level"].tolist())
    ax.set_ylabel("throughput, req/s (mean of repeats)")
    ax.set_ylim(bottom=0)
    ax.set_title(title or "Throughput vs concurrency")
    legend(ax, invalid, over)
    return fig


def plot_latency(summary: pd.DataFrame, load_model: str, title: str = "") -> Figure:
    """p50 and p99 (repeats' histograms merged) against concurrency or offered rate."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = new_figure(TALL_FIGSIZE_IN)
    axes = fig.subplots(2, 1, sharex=True)
    rows = summary[summary["load_model"] == load_model]
    styles = styles_for(summary)
    over = invalid = False
    for ax, column, name in zip(axes, ("p50_ms", "p99_ms"), ("p50", "p99"), strict=True):
        for server in server_order(rows):
            o, i = draw_series(ax, rows[rows["server"] == server], column, styles[server],
                                label=ax is axes[0])
            over, invalid = over or o, invalid or i
        ax.set_yscale("log")
        ax.set_ylabel(f"{name} latency, ms")
        ax.grid(True, which="both", alpha=0.25)
        level_axis(ax, load_model, rows["level"].tolist())
    axes[0].set_xlabel("")
    legend(axes[0], invalid, over)
    where = "concurrency" if load_model == "closed" else "offered rate"
    axes[0].set_title(title or f"Latency percentiles vs {where}")
    return fig


def spectrum_axis(ax: Axes, max_inverse_tail: float) -> None:
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
    styles = styles_for(summary)
    fig = new_figure()
    ax = fig.add_subplot()
    max_x = 1.0
    for server in server_order(rows):
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
    spectrum_axis(ax, max_x)
    ax.set_yscale("log")
    ax.set_ylabel("latency, ms")
    ax.grid(True, which="both", axis="y", alpha=0.25)
    where = (f"{level:g} concurrent clients" if load_model == "closed"
             else f"{level:g} req/s offered (open loop)")
    ax.set_title(title or f"Latency by percentile at {where}")
    legend(ax, False)  # overloaded and invalid lines say so in their own label
    return fig


def plot_timeline(run: RunData, summary: pd.DataFrame, load_model: str, level: float,
                  title: str = "") -> Figure | None:
    """Throughput and p99 per second over the first repeat of each server at one level."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    rows = summary[(summary["load_model"] == load_model) & (summary["level"] == level)]
    styles = styles_for(summary)
    fig = new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    invalid = over = False
    for server in server_order(rows):
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
        # answered per second is what the server delivered (not the offered load, open loop)
        top.plot(seconds, series["completed"].astype("float64"),
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
    legend(top, invalid, over)
    return fig


def plot_resources(summary: pd.DataFrame, load_model: str, title: str = "") -> Figure:
    """Server CPU (percent of one core, mean of repeats) and peak memory against the load level:
    PSS where the run has it (forked workers' shared pages split between them), else RSS."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    fig = new_figure(TALL_FIGSIZE_IN)
    top, bottom = fig.subplots(2, 1, sharex=True)
    rows = summary[summary["load_model"] == load_model]
    styles = styles_for(summary)
    memory = "server_pss_mb" if rows["server_pss_mb"].notna().all() else "server_rss_mb"
    over = invalid = False
    for server in server_order(rows):
        part = rows[rows["server"] == server]
        o, i = draw_series(top, part, "server_cpu_pct", styles[server], label=True)
        over, invalid = over or o, invalid or i
        draw_series(bottom, part, memory, styles[server], label=False)
    top.set_ylabel("server CPU, % of one core")
    top.set_ylim(bottom=0)
    bottom.set_ylabel(f"server {'PSS' if memory == 'server_pss_mb' else 'RSS'}, MB (peak)")
    bottom.set_ylim(bottom=0)
    for ax in (top, bottom):
        level_axis(ax, load_model, rows["level"].tolist())
    top.set_xlabel("")
    top.set_title(title or "CPU and memory per server")
    legend(top, invalid, over)
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
    fig = new_figure(TALL_FIGSIZE_IN)
    ax = fig.add_subplot()
    styles = styles_for(rows)
    over = invalid = False
    ids = rows.set_index(rows["trial_id"].astype(str))
    for server in server_order(rows):
        part = rows[rows["server"].astype("string") == server]
        o, i = draw_series(ax, part, column, styles[server], label=True, x="rate")
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
        handles.append(overloaded_handle())
        labels.append(OVERLOADED_LABEL)
    if invalid:
        handles.append(invalid_handle())
        labels.append(INVALID_LABEL)
    ax.legend(handles, labels, fontsize=8, loc="best", framealpha=0.85)
    return fig

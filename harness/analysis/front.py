"""The report's first screen: the "What to run" rows over every run, the machine the numbers
are from, and the headline chart (capacity, else peak throughput, per server).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Patch

from harness.analysis.answers import AnswerRow, answer_rows, kind_rank
from harness.analysis.capacity import objective_of, server_capacities
from harness.analysis.families import multi_app
from harness.analysis.findings.common import peaks, ranked_rows, rps_values, service_floor
from harness.analysis.findings.record import Finding
from harness.analysis.findings.upload import is_upload, mb_per_s, upload_rows
from harness.analysis.rundata import RunData
from harness.analysis.stats import mean_ci
from harness.analysis.websocket import is_websocket
from harness.analysis.wording import kind_label
from harness.noise import SLOW_CPU_FACTOR
from harness.units import format_size

GATEWAY_COLOURS = {"wsgi": "#1f4e99", "asgi": "#e8590c"}
# A panel's range wider than this (largest over smallest) is drawn on a log scale.
LOG_SCALE_RANGE_MIN = 20.0
PANEL_HEIGHT_PER_BAR_IN = 0.26
PANEL_WIDTH_IN = 4.6
TRANSFER_NOTE = ("Absolute req/s move with the machine (its CPU, its neighbours, the day); "
                 "the ratios between servers and the physics-bound figures (a sync worker's "
                 "cap of workers ÷ wait) are what transfer to yours.")


@dataclass(frozen=True, kw_only=True)
class Bar:
    server: str
    gateway: str
    mean: float
    low: float
    high: float


@dataclass(frozen=True, kw_only=True)
class Panel:
    title: str
    unit: str
    bars: list[Bar]


def what_to_run(runs: Sequence[tuple[RunData, pd.DataFrame, list[Finding], str]]
                ) -> list[AnswerRow]:
    """Every run's rows, the kinds of work most asked about first; ``runs``: (run, its
    summary, its findings, the anchor of its section)."""
    rows: list[AnswerRow] = []
    for run, summary, findings, anchor in sorted(runs, key=lambda r: kind_rank(r[0])):
        floor = service_floor(run, summary)
        wait = floor.seconds if floor is not None and floor.declared else None
        rows += answer_rows(run, findings, wait_s=wait, anchor=anchor)
    return rows


def machine_text(runs: Sequence[RunData]) -> str:
    """Which machine the numbers are from, and what its CPU-pace probe read."""
    parts = []
    models: dict[str, None] = {}
    for run in runs:
        env = run.meta.get("environment") or {}
        models[f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} logical CPUs"] = None
    parts.append("Measured on " + "; ".join(models) + ".")
    slow = pd.concat([r.trials["cpu_slowdown"] for r in runs if "cpu_slowdown" in r.trials],
                     ignore_index=True).dropna() if runs else pd.Series(dtype="float64")
    if len(slow):
        over = int((slow > SLOW_CPU_FACTOR).sum())
        parts.append(f"The CPU-pace probe (a fixed loop timed on the server's CPU beside each "
                     f"trial) read a median of {float(slow.median()):.2f}× its recent pace; "
                     f"{over} of {len(slow)} trials ran more than {SLOW_CPU_FACTOR:g}× slower "
                     f"and are flagged.")
    parts.append(TRANSFER_NOTE)
    return " ".join(parts)


def _capacity_panel(run: RunData, capacity: pd.DataFrame) -> Panel | None:
    objective = objective_of(run.meta, capacity)
    if objective is None or capacity.empty:
        return None
    bars = []
    for cap in server_capacities(capacity):
        if not cap.measured or cap.mean <= 0:
            continue
        spread = cap.spread
        bars.append(Bar(server=cap.server, gateway=cap.gateway.lower(), mean=cap.mean,
                        low=spread.low if spread else cap.mean,
                        high=spread.high if spread else cap.mean))
    return Panel(title=f"{kind_label(run.meta)}: capacity at {objective.percentile} <= "
                       f"{objective.threshold_ms:g} ms", unit="req/s", bars=bars)


def _upload_panel(run: RunData, closed: pd.DataFrame) -> Panel | None:
    """An upload run's panel: each server's best MB/s at the largest body size."""
    rows = upload_rows(closed)
    if rows.empty:
        return None
    size = int(rows["upload_bytes"].max())
    bars = []
    for _, row in peaks(rows[rows["upload_bytes"] == size]).iterrows():
        spread = mean_ci([mb_per_s(v, size) for v in rps_values(run, row)])
        mean = mb_per_s(float(row["achieved_rps"]), size)
        bars.append(Bar(server=str(row["server"]), gateway=str(row["gateway"]).lower(),
                        mean=mean, low=spread.low if spread else mean,
                        high=spread.high if spread else mean))
    return Panel(title=f"{kind_label(run.meta)}, {format_size(size)} bodies: peak MB/s",
                 unit="MB/s", bars=bars)


def _peak_panel(run: RunData, summary: pd.DataFrame) -> Panel | None:
    ranked = ranked_rows(summary)
    closed = ranked[ranked["load_model"] == "closed"]
    if is_upload(run.meta):
        return _upload_panel(run, closed)
    if is_websocket(run.meta) and not closed.empty:
        sizes = sorted(set(closed["message_size"].dropna()))
        if sizes:
            closed = closed[closed["message_size"] == sizes[0]]
    if closed.empty:
        return None
    bars = []
    for _, row in peaks(closed).iterrows():
        spread = mean_ci(rps_values(run, row))
        mean = float(row["achieved_rps"])
        bars.append(Bar(server=str(row["server"]), gateway=str(row["gateway"]).lower(),
                        mean=mean, low=spread.low if spread else mean,
                        high=spread.high if spread else mean))
    unit = "msgs/s" if is_websocket(run.meta) else "req/s"
    what = "WebSocket echo, peak" if is_websocket(run.meta) else \
        f"{kind_label(run.meta)}: peak throughput"
    return Panel(title=what, unit=unit, bars=bars)


def headline_panels(sections: Sequence[tuple[RunData, pd.DataFrame, pd.DataFrame]]
                    ) -> list[Panel]:
    """One panel per run (not a run of several app families): its capacity per server where
    it searched one, else each server's peak closed-loop throughput; ``sections``: (run,
    summary, capacity)."""
    panels = []
    for run, summary, capacity in sorted(sections, key=lambda s: kind_rank(s[0])):
        if multi_app(summary):
            continue
        panel = _capacity_panel(run, capacity) or _peak_panel(run, summary)
        if panel is not None and panel.bars:
            panels.append(panel)
    return panels


def plot_headline(panels: Sequence[Panel]) -> Figure | None:
    """Horizontal bars per server, WSGI and ASGI in two colours, 95 % CI of the repeats as
    error bars; a log scale where one panel's figures span more than LOG_SCALE_RANGE_MIN."""
    if not panels:
        return None
    columns = min(len(panels), 2)
    rows = math.ceil(len(panels) / columns)
    tallest = max(len(p.bars) for p in panels)
    fig = Figure(figsize=(PANEL_WIDTH_IN * columns,
                          rows * (1.0 + PANEL_HEIGHT_PER_BAR_IN * tallest)), layout="constrained")
    axes = fig.subplots(rows, columns, squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        bars = sorted(panel.bars, key=lambda b: b.mean)
        ys = range(len(bars))
        means = [b.mean for b in bars]
        errors = [[b.mean - b.low for b in bars], [b.high - b.mean for b in bars]]
        ax.barh(list(ys), means, xerr=errors, capsize=2, ecolor="#333333",
                color=[GATEWAY_COLOURS.get(b.gateway, "#868e96") for b in bars])
        ax.set_yticks(list(ys), [b.server for b in bars], fontsize=8)
        ax.set_title(panel.title, fontsize=9)
        ax.set_xlabel(panel.unit, fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        low = min(m for m in means if m > 0)
        if max(means) / low > LOG_SCALE_RANGE_MIN:
            ax.set_xscale("log")
    for ax in list(axes.flat)[len(panels):]:
        ax.set_visible(False)
    fig.legend(handles=[Patch(color=GATEWAY_COLOURS["wsgi"], label="WSGI"),
                        Patch(color=GATEWAY_COLOURS["asgi"], label="ASGI")],
               loc="outside upper right", fontsize=8, ncols=2)
    return fig

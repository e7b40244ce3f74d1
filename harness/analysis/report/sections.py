"""What the report shows of each run (its findings, plots, capacity) and its first screen,
built before anything is rendered."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Literal

import pandas as pd
from matplotlib.figure import Figure

from harness.analysis import capacity as capacity_mod
from harness.analysis import plots, websocket
from harness.analysis.answers import AnswerRow
from harness.analysis.families import multi_app, series_view
from harness.analysis.findings.common import pick_level
from harness.analysis.findings.record import Finding
from harness.analysis.findings.upload import is_upload
from harness.analysis.front import headline_panels, machine_text, plot_headline, what_to_run
from harness.analysis.guidance import compute_guidance
from harness.analysis.report.content import (
    FAMILY_LEGEND,
    MODEL_HEADINGS,
    PLOT_LEGEND,
    RESULTS_HEADING,
    RESULTS_NOTE,
    WS_HEADING,
    WS_MODEL_HEADINGS,
    WS_NOTE,
    level_rows,
    short_id,
    ws_unsupported_text,
)
from harness.analysis.rundata import RunData, load_capacity, load_kinds, summarize
from harness.analysis.wording import fmt_ms, kind_label, level_phrase

HEADLINE_PLOT = "headline"
PLOTS_DIR = "plots"
FigureFactory = Callable[[], Figure | None]


class Page(StrEnum):
    """The two pages of a report: report.html or report.md, and its appendix (trials.*)."""

    REPORT = "report"
    TRIALS = "trials"


@dataclass(frozen=True, kw_only=True)
class Part:
    """One part of a run's section in the outline, and the page each format puts it on (None:
    that format leaves it out)."""

    name: str
    html: Page | None
    markdown: Page | None


# The outline of a run's section, in order: the HTML and the Markdown renderer both walk it,
# each drawing a part its own way (one function per name). HTML shows the capacity table in
# the report and folds the presets and versions under the run's setup; Markdown cannot fold,
# so to keep its report short it moves the three to its appendix, which the report links to.
RUN_OUTLINE: tuple[Part, ...] = (
    Part(name="title", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="appendix_title", html=Page.TRIALS, markdown=Page.TRIALS),
    Part(name="notice", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="description", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="findings", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="caveats", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="capacity", html=Page.REPORT, markdown=Page.TRIALS),
    Part(name="plots", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="appendix_link", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="setup", html=Page.REPORT, markdown=Page.REPORT),
    Part(name="results", html=Page.TRIALS, markdown=Page.TRIALS),
    Part(name="kinds", html=Page.TRIALS, markdown=Page.TRIALS),
    Part(name="presets", html=Page.REPORT, markdown=Page.TRIALS),
    Part(name="versions", html=Page.REPORT, markdown=Page.TRIALS),
    Part(name="trials", html=Page.TRIALS, markdown=Page.TRIALS),
)


def parts_on(page: Page, renderer: Literal["html", "markdown"]) -> list[str]:
    """The names of the parts ``renderer`` draws on ``page``, in the outline's order."""
    return [part.name for part in RUN_OUTLINE
            if (part.html if renderer == "html" else part.markdown) is page]


@dataclass(frozen=True, kw_only=True)
class PlotFile:
    """One figure of the report, written as PNG and SVG under plots/."""

    name: str
    title: str
    png: Path
    svg: Path


@dataclass(frozen=True, kw_only=True)
class RunSection:
    """Everything the report shows about one run folder."""

    run: RunData
    slug: str
    summary: pd.DataFrame
    guidance: list[Finding]
    plots: list[PlotFile]
    capacity: pd.DataFrame  # capacity.csv, typed (empty without a capacity search)


@dataclass(frozen=True, kw_only=True)
class Front:
    """The first screen: "What to run", the machine, the headline chart."""

    rows: list[AnswerRow]
    machine: str
    chart: PlotFile | None


def slug_of(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def ordered(summary: pd.DataFrame) -> pd.DataFrame:
    if summary.empty:
        return summary
    gateway_rank = summary["gateway"].str.lower().map({"wsgi": 0, "asgi": 1}).fillna(2)
    model_rank = summary["load_model"].map(
        {"closed": 0, "open": 1, "broadcast": 2, "idle": 3}).fillna(4)
    return (summary.assign(_m=model_rank, _g=gateway_rank)
            .sort_values(["_m", "_g", "server", "app", "message_size", "level"], kind="stable")
            .drop(columns=["_m", "_g"]).reset_index(drop=True))


def ws_figures_of(run: RunData, summary: pd.DataFrame) -> list[tuple[str, str, FigureFactory]]:
    """The figures of a WebSocket run: echo msgs/s and latency, broadcast, idle memory."""
    models = set(summary["load_model"]) if not summary.empty else set()
    wanted: list[tuple[str, str, FigureFactory]] = []
    if "closed" in models:
        title = "WebSocket echo: messages/s vs connections (closed loop)"
        wanted.append(("ws-throughput", title, partial(plots.plot_ws_throughput, summary, title)))
    if "open" in models:
        title = ("WebSocket echo: latency p50 / p99 vs offered message rate (open loop, from "
                 "the intended send)")
        wanted.append(("ws-latency-open", title,
                       partial(plots.plot_ws_open_latency, summary, title)))
        echo = summary[summary["load_model"] == "open"]
        sizes = sorted(set(echo["message_size"].dropna().astype(int)))
        if sizes:
            at_size = summary[summary["message_size"].astype("Int64") == sizes[0]]
            ranked = at_size[at_size["valid"]]
            choice = (pick_level(ranked[ranked["load_model"] == "open"])
                      or pick_level(at_size[at_size["load_model"] == "open"]))
            if choice is not None:
                title = (f"WebSocket echo, {websocket.fmt_size(sizes[0])} messages: latency by "
                         f"percentile at {choice[1]:g} msgs/s offered (open loop)")
                wanted.append(("spectrum-open", title, partial(
                    plots.plot_spectrum, run, at_size, "open", choice[1], title)))
    if "broadcast" in models:
        title = "WebSocket broadcast: delivery latency per subscriber count"
        wanted.append(("ws-broadcast", title, partial(plots.plot_ws_broadcast, summary, title)))
    if "idle" in models:
        title = "WebSocket: server memory per idle connection"
        wanted.append(("ws-idle", title, partial(plots.plot_ws_idle, summary, title)))
    return wanted


def figures_of(run: RunData, summary: pd.DataFrame, capacity: pd.DataFrame
             ) -> list[tuple[str, str, FigureFactory]]:
    """(name, title, factory) of the figures this run has data for."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    if websocket.is_websocket(run.meta):
        return ws_figures_of(run, summary)
    kind = kind_label(run.meta)
    if is_upload(run.meta):
        # the generic figures would draw each body size at the same concurrency as one series
        title = f"{kind}: MB/s and peak server memory per body size (closed loop)"
        return [("upload", title, partial(plots.plot_upload, summary, title))]
    models = set(summary["load_model"]) if not summary.empty else set()
    ranked = summary[summary["valid"]] if not summary.empty else summary
    wanted: list[tuple[str, str, FigureFactory]] = []
    objective = capacity_mod.objective_of(run.meta, capacity)
    if objective is not None and not capacity.empty:
        title = (f"{kind}: capacity at {objective.percentile} <= {objective.threshold_ms:g} ms "
                 f"(open loop, search steps included)")
        wanted.append(("capacity", title, partial(
            plots.plot_capacity, series_view(run.trials), series_view(capacity),
            objective.column, objective.percentile, objective.threshold_ms, title)))
    if "closed" in models:
        title = f"{kind}: throughput vs concurrency"
        wanted.append(("throughput", title, partial(plots.plot_throughput, summary, title)))
    for model in ("closed", "open"):
        if model in models:
            where = "concurrency" if model == "closed" else "offered rate (open loop)"
            title = f"{kind}: latency p50 / p99 vs {where}"
            wanted.append((f"latency-{model}", title,
                           partial(plots.plot_latency, summary, model, title)))
    for model in ("closed", "open"):
        if model not in models:
            continue
        choice = (pick_level(ranked[ranked["load_model"] == model])
                  or pick_level(summary[summary["load_model"] == model]))
        if choice is not None:
            title = f"{kind}: latency by percentile at {level_phrase(model, choice[1])}"
            wanted.append((f"spectrum-{model}", title,
                           partial(plots.plot_spectrum, run, summary, model, choice[1], title)))
    choice = pick_level(ranked) or pick_level(summary)
    if choice is not None:
        title = f"{kind}: throughput and p99 per second at {level_phrase(*choice)}"
        wanted.append(("timeline", title,
                       partial(plots.plot_timeline, run, summary, choice[0], choice[1], title)))
    if models:
        title = f"{kind}: server CPU and memory"
        model = "closed" if "closed" in models else "open"
        wanted.append(("resources", title, partial(plots.plot_resources, summary, model, title)))
    return wanted


def build_section(run: RunData, slug: str, plot_dir: Path) -> RunSection:
    summary = ordered(summarize(run))
    capacity = load_capacity(run.run_dir)
    files: list[PlotFile] = []
    for name, title, factory in figures_of(run, summary, capacity):
        fig = factory()
        if fig is None:
            continue
        paths = plots.save_figure(fig, plot_dir / f"{slug}-{name}")
        files.append(PlotFile(name=name, title=title, png=paths["png"], svg=paths["svg"]))
    return RunSection(run=run, slug=slug, summary=summary,
                      guidance=compute_guidance(run, summary), plots=files, capacity=capacity)


def build_front(sections: Sequence[RunSection], plot_dir: Path) -> Front:
    rows = what_to_run([(s.run, s.summary, s.guidance, s.slug) for s in sections])
    chart = None
    figure = plot_headline(headline_panels([(s.run, s.summary, s.capacity) for s in sections]))
    if figure is not None:
        paths = plots.save_figure(figure, plot_dir / HEADLINE_PLOT)
        chart = PlotFile(name=HEADLINE_PLOT, title="Capacity (or peak throughput) per server",
                         png=paths["png"], svg=paths["svg"])
    return Front(rows=rows, machine=machine_text([s.run for s in sections]), chart=chart)


def plot_legend(section: RunSection) -> str:
    """PLOT_LEGEND, and how families are drawn when the run has several."""
    return (f"{PLOT_LEGEND} {FAMILY_LEGEND}" if multi_app(section.summary) else PLOT_LEGEND)


def ws_parts(section: RunSection) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, table rows) of each load model of a WebSocket run, in order."""
    parts = []
    for model in websocket.LOAD_MODELS:
        part = section.summary[section.summary["load_model"] == model] \
            if not section.summary.empty else section.summary
        if not part.empty:
            parts.append((WS_MODEL_HEADINGS[model], websocket.table_rows(part, model, short_id)))
    return parts


def capacity_table(section: RunSection) -> list[dict[str, str]]:
    objective = capacity_mod.objective_of(section.run.meta, section.capacity)
    if section.capacity.empty or objective is None:
        return []
    return capacity_mod.table_rows(section.run, section.capacity, objective, short_id)


KINDS_HEADING = "Each kind of request (kinds.csv)"


def kind_table(section: RunSection) -> list[dict[str, str]]:
    """A request mix's row per trial and kind: its share, counts and latency (none without
    a mix)."""
    kinds = load_kinds(section.run)
    if kinds.empty:
        return []

    def ms(value: float) -> str:
        return "" if pd.isna(value) else fmt_ms(float(value))

    return [{"trial": short_id(str(r["trial_id"])), "server": str(r["server"]),
             "app": str(r["app"]), "level": f"{r['level']:g}", "kind": str(r["kind"]),
             "share": f"{r['share']:.0%}" if pd.notna(r["share"]) else "",
             "requests": str(r["requests"]), "errors": str(r["errors"]),
             "req/s": f"{r['achieved_rps']:.1f}", "p50 ms": ms(r["p50_ms"]),
             "p99 ms": ms(r["p99_ms"]), "max ms": ms(r["max_ms"]),
             "outcome": str(r["outcome"])}
            for _, r in kinds.iterrows()]


def capacity_intro(section: RunSection) -> str:
    objective = capacity_mod.objective_of(section.run.meta, section.capacity)
    where = f"Objective: {objective.text}. " if objective is not None else ""
    return where + capacity_mod.CAPACITY_NOTE


def results_tables(section: RunSection) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, rows) of the per-level tables of a section."""
    if websocket.is_websocket(section.run.meta):
        return ws_parts(section)
    parts = []
    for model in ("closed", "open"):
        part = section.summary[section.summary["load_model"] == model] \
            if not section.summary.empty else section.summary
        if not part.empty:
            parts.append((MODEL_HEADINGS[model],
                          level_rows(part, multi_app(section.summary))))
    return parts


def results_heading(section: RunSection) -> str:
    return WS_HEADING if websocket.is_websocket(section.run.meta) else RESULTS_HEADING


def findings_of(section: RunSection) -> list[Finding]:
    return [item for item in section.guidance if not item.caveat]


def caveats_of(section: RunSection) -> list[Finding]:
    return [item for item in section.guidance if item.caveat]


def results_note(section: RunSection) -> str:
    if websocket.is_websocket(section.run.meta):
        return f"{WS_NOTE} {ws_unsupported_text(section.run)}"
    return RESULTS_NOTE


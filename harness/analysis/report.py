"""report.html (one self-contained file) and report.md (+ plots/) for one or more run folders.

The HTML embeds every figure as a base64 ``data:`` URI and carries its CSS inline: no script,
no font, no network reference, so it opens the same from an e-mail attachment as from disk.
Both files are built in a hidden folder beside their destination and moved into place at the
end, so a failure (or Ctrl-C) never leaves half a report.
"""

from __future__ import annotations

import base64
import html
import math
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pandas as pd
from matplotlib.figure import Figure

from harness import __version__
from harness.analysis import capacity as capacity_mod
from harness.analysis import plots, websocket
from harness.analysis.answer import AnswerRow
from harness.analysis.families import multi_app, series_view
from harness.analysis.findings.common import pick_level
from harness.analysis.findings.record import FINDINGS_FILE, Finding, write_findings
from harness.analysis.frames import RunData, busy_trials, load_capacity, summarize
from harness.analysis.front import headline_panels, machine_text, plot_headline, what_to_run
from harness.analysis.guidance import compute_guidance
from harness.analysis.wording import fmt_mb, fmt_ms, fmt_pct, fmt_rps, kind_label, level_phrase
from harness.errors import UsageError

HTML_FILE = "report.html"
MARKDOWN_FILE = "report.md"
# The appendix: the per-level and per-trial tables, beside the report.
TRIALS_HTML_FILE = "trials.html"
TRIALS_MARKDOWN_FILE = "trials.md"
HEADLINE_PLOT = "headline"
PLOTS_DIR = "plots"
MAX_COMMAND_CHARS = 400

FigureFactory = Callable[[], Figure | None]


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


# -- building ------------------------------------------------------------------------------

def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "run"


def _ordered(summary: pd.DataFrame) -> pd.DataFrame:
    if summary.empty:
        return summary
    gateway_rank = summary["gateway"].str.lower().map({"wsgi": 0, "asgi": 1}).fillna(2)
    model_rank = summary["load_model"].map(
        {"closed": 0, "open": 1, "broadcast": 2, "idle": 3}).fillna(4)
    return (summary.assign(_m=model_rank, _g=gateway_rank)
            .sort_values(["_m", "_g", "server", "app", "message_size", "level"], kind="stable")
            .drop(columns=["_m", "_g"]).reset_index(drop=True))


def _ws_figures(run: RunData, summary: pd.DataFrame) -> list[tuple[str, str, FigureFactory]]:
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


def _figures(run: RunData, summary: pd.DataFrame, capacity: pd.DataFrame
             ) -> list[tuple[str, str, FigureFactory]]:
    """(name, title, factory) of the figures this run has data for."""
    summary = series_view(summary)  # several app families: a series per (server, app)
    if websocket.is_websocket(run.meta):
        return _ws_figures(run, summary)
    kind = kind_label(run.meta)
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


def _build_section(run: RunData, slug: str, plot_dir: Path) -> RunSection:
    summary = _ordered(summarize(run))
    capacity = load_capacity(run.run_dir)
    files: list[PlotFile] = []
    for name, title, factory in _figures(run, summary, capacity):
        fig = factory()
        if fig is None:
            continue
        paths = plots.save_figure(fig, plot_dir / f"{slug}-{name}")
        files.append(PlotFile(name=name, title=title, png=paths["png"], svg=paths["svg"]))
    return RunSection(run=run, slug=slug, summary=summary,
                      guidance=compute_guidance(run, summary), plots=files, capacity=capacity)


def _build_front(sections: Sequence[RunSection], plot_dir: Path) -> Front:
    rows = what_to_run([(s.run, s.summary, s.guidance, s.slug) for s in sections])
    chart = None
    figure = plot_headline(headline_panels([(s.run, s.summary, s.capacity) for s in sections]))
    if figure is not None:
        paths = plots.save_figure(figure, plot_dir / HEADLINE_PLOT)
        chart = PlotFile(name=HEADLINE_PLOT, title="Capacity (or peak throughput) per server",
                         png=paths["png"], svg=paths["svg"])
    return Front(rows=rows, machine=machine_text([s.run for s in sections]), chart=chart)


def load_sections_input(run_dirs: Sequence[Path | str]) -> list[RunData]:
    """Every run folder loaded and checked before anything is written."""
    if not run_dirs:
        raise UsageError("no run folder given: expected at least one folder holding run.json")
    return [RunData.load(p) for p in run_dirs]


def write_report(run_dirs: Sequence[Path], out_dir: Path | None = None) -> tuple[Path, Path]:
    """Write report.html and report.md (with plots/) for the runs; return their paths.

    ``out_dir`` defaults to the first run folder. Bad input raises UsageError before anything
    is written.
    """
    runs = load_sections_input(run_dirs)
    target = Path(out_dir) if out_dir is not None else runs[0].run_dir
    if target.exists() and not target.is_dir():
        raise UsageError(f"--out {target}: is a file: expected a folder for the report")
    target.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(dir=target, prefix=".report-"))
    try:
        slugs: list[str] = []
        for run in runs:
            slug = _slug(run.run_id)
            while slug in slugs:
                slug += "-b"
            slugs.append(slug)
        sections = [_build_section(run, slug, staging / PLOTS_DIR)
                    for run, slug in zip(runs, slugs, strict=True)]
        front = _build_front(sections, staging / PLOTS_DIR)
        generated = datetime.now(UTC).isoformat(timespec="seconds")
        (staging / HTML_FILE).write_text(render_html(sections, generated, front),
                                         encoding="utf-8")
        (staging / MARKDOWN_FILE).write_text(render_markdown(sections, generated, front),
                                             encoding="utf-8")
        (staging / TRIALS_HTML_FILE).write_text(render_trials_html(sections, generated),
                                                encoding="utf-8")
        (staging / TRIALS_MARKDOWN_FILE).write_text(render_trials_markdown(sections, generated),
                                                    encoding="utf-8")
        write_findings(staging / FINDINGS_FILE, (f for s in sections for f in s.guidance),
                       runs=[s.run.run_id for s in sections])
        _commit(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target / HTML_FILE, target / MARKDOWN_FILE


def _commit(staging: Path, target: Path) -> None:
    # plots/ first (the Markdown points into it), then the Markdown, then the HTML.
    new_plots, old_plots = staging / PLOTS_DIR, target / PLOTS_DIR
    if new_plots.is_dir():
        if old_plots.exists():
            old_plots.rename(staging / ".old-plots")
        new_plots.rename(old_plots)
    for name in (FINDINGS_FILE, TRIALS_MARKDOWN_FILE, TRIALS_HTML_FILE, MARKDOWN_FILE,
                 HTML_FILE):
        os.replace(staging / name, target / name)


# -- shared content ------------------------------------------------------------------------

def short_id(trial_id: str) -> str:
    """``0007`` for ``0007-uvicorn-c64-r1``: unique within a run, short enough to cite."""
    head = trial_id.split("-", 1)[0]
    return head if head.isdigit() else trial_id


# The words both renderings share, written once so the HTML and Markdown reports cannot drift.
PLOT_LEGEND = ("WSGI servers in blues and greens, ASGI in oranges and reds; hollow markers "
               "in a server's colour are overloaded (the server did not keep up: a result, "
               "shown, not ranked); grey crossed markers are invalid (not ranked): the harness "
               "cannot vouch for them.")
RESULTS_NOTE = ("Throughput and CPU: mean of the measured repeats; p50/p99: the repeats' "
                "histograms added together; RSS: peak. CPU is percent of one core. A level is "
                "ranked only when every repeat is valid. Status: valid; overloaded (the server "
                "did not keep up: a result); invalid (the harness cannot vouch for the number). "
                "The capacity search's steps are in the capacity table and the trials list.")
CAPACITY_HEADING = "Capacity at the objective"
FAMILY_LEGEND = ("Several app families: a line per server · family, in the server's colour "
                 "with a marker per family.")


def plot_legend(section: RunSection) -> str:
    """PLOT_LEGEND, and how families are drawn when the run has several."""
    return (f"{PLOT_LEGEND} {FAMILY_LEGEND}" if multi_app(section.summary) else PLOT_LEGEND)
STATUS_VALID = "valid"


def status_text(outcome: str, reason: str) -> str:
    """The status cell of a results table: valid / overloaded: why / invalid (not ranked): why."""
    if outcome == "valid":
        return STATUS_VALID
    if outcome == "overloaded":
        return f"overloaded: {reason}" if reason else "overloaded"
    return f"invalid (not ranked): {reason}" if reason else "invalid (not ranked)"


def _row_class(row: Mapping[str, str]) -> str:
    status = row.get("status", row.get("outcome", ""))
    if status.startswith("overloaded"):
        return "overloaded"
    return "" if status == STATUS_VALID else "invalid"
MODEL_HEADINGS = {"closed": "Closed loop (level = concurrent clients)",
                  "open": "Open loop (level = offered req/s)",
                  "broadcast": "Broadcast (level = subscribers)",
                  "idle": "Idle connections (level = connections held)"}
NO_FINDINGS = "No valid trial to rank."
NO_ANSWER = "No comparison of the two gateways in these runs."
REPORT_TITLE = "WSGI vs ASGI: gateway and server comparison"
RESULTS_HEADING = "Results per server and level"
# The WebSocket section, shown instead of the HTTP results tables for a WebSocket run.
WS_HEADING = "WebSocket results"
WS_MODEL_HEADINGS = {**MODEL_HEADINGS,
                     "closed": "Echo, closed loop (level = connections)",
                     "open": "Echo, open loop (level = offered messages/s)"}
WS_NOTE = ("A request here is one message round trip (a broadcast: one delivery to one "
           "subscriber): msgs/s counts them. Open-loop and broadcast latency is timed from the "
           "message's intended send time, so a stall cannot hide; service latency from the "
           "actual send. Errors: refused upgrades, wrong echoes, connections the server "
           "closed, deliveries that never arrived. Levels of different message sizes are never "
           "merged. KiB per connection: the growth of the server's memory (PSS, else RSS) "
           "while it held the idle connections, per connection.")
WS_NO_WSGI = ("WSGI servers: none in this run. They are unsupported for WebSocket: the WSGI "
              "interface has no way to hold a WebSocket connection.")


def ws_unsupported_text(run: RunData) -> str:
    """What the WebSocket section says about the servers that could not run it."""
    return websocket.unsupported_sentence(run.meta) or WS_NO_WSGI


def _ws_parts(section: RunSection) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, table rows) of each load model of a WebSocket run, in order."""
    parts = []
    for model in websocket.LOAD_MODELS:
        part = section.summary[section.summary["load_model"] == model] \
            if not section.summary.empty else section.summary
        if not part.empty:
            parts.append((WS_MODEL_HEADINGS[model], websocket.table_rows(part, model, short_id)))
    return parts


def _num(value: Any, fmt: Callable[[float], str]) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)) or pd.isna(value):
        return "–"
    return fmt(float(value))


def _table_rows(summary: pd.DataFrame, with_app: bool | None = None) -> list[dict[str, str]]:
    """The results table; an ``app`` column when ``with_app`` (default: several families)."""
    with_app = multi_app(summary) if with_app is None else with_app
    rows = []
    for _, r in summary.iterrows():
        threads = "" if pd.isna(r["threads"]) else f"×{r['threads']}"
        rows.append({
            "server": str(r["server"]),
            **({"app": str(r["app"])} if with_app else {}),
            "gateway": str(r["gateway"]).upper(),
            "level": f"{r['level']:g}",
            # measured of planned: a repeat that could not be measured is not in the means
            "repeats": (str(r["repeats"]) if r["measured_repeats"] == r["repeats"]
                        else f"{r['measured_repeats']} of {r['repeats']}"),
            "req/s": _num(r["achieved_rps"], fmt_rps),
            "CV": _num(r["rps_cv"] * 100 if pd.notna(r["rps_cv"]) else None, fmt_pct),
            "p50 ms": _num(r["p50_ms"], fmt_ms),
            "p99 ms": _num(r["p99_ms"], fmt_ms),
            "p99.9 ms": _num(r["p99_9_ms"], fmt_ms),
            "errors": f"{r['errors']} ({r['error_rate']:.2%})",
            "CPU %": _num(r["server_cpu_pct"], lambda v: f"{v:.0f}"),
            "RSS MB": _num(r["server_rss_mb"], fmt_mb),
            "PSS MB": _num(r["server_pss_mb"], fmt_mb),
            "req/CPU-s": _num(r["rps_per_cpu_s"], fmt_rps),
            "workers": ("–" if pd.isna(r["workers"]) else str(r["workers"])) + threads,
            "status": status_text(str(r["outcome"]) if r["valid"] or r["outcome"] != "valid"
                                  else "invalid", str(r["invalid_reason"])),
            "trials": ", ".join(short_id(t) for t in r["trial_ids"]),
        })
    return rows


_TRIAL_COLUMNS: tuple[tuple[str, str, Callable[[Any], str]], ...] = (
    ("trial", "trial_id", str),
    ("server", "server", str),
    ("model", "load_model", str),
    ("phase", "phase", str),
    ("level", "level", lambda v: f"{v:g}"),
    ("repeat", "repeat", str),
    ("req/s", "achieved_rps", lambda v: _num(v, fmt_rps)),
    ("p50 ms", "p50_ms", lambda v: _num(v, fmt_ms)),
    ("p99 ms", "p99_ms", lambda v: _num(v, fmt_ms)),
    ("errors", "errors", str),
    ("CPU %", "server_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("RSS MB", "server_rss_mb", lambda v: _num(v, fmt_mb)),
    ("PSS MB", "server_pss_mb", lambda v: _num(v, fmt_mb)),
    ("gen CPU %", "loadgen_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("others CPU %", "others_cpu_pct", lambda v: _num(v, lambda x: f"{x:.0f}")),
    ("CPU slowdown", "cpu_slowdown", lambda v: _num(v, lambda x: f"{x:.2f}x")),
    ("outcome", "outcome", str),
    ("reason", "invalid_reason", str),
    ("notes", "notes", lambda v: "" if pd.isna(v) else str(v)),
)


def _trial_rows(run: RunData) -> list[dict[str, str]]:
    columns = _TRIAL_COLUMNS
    if multi_app(run.trials):  # several app families: which one each trial ran
        at = [label for label, _c, _f in columns].index("server") + 1
        columns = (*columns[:at], ("app", "app", str), *columns[at:])
    busy = set(busy_trials(run.trials)["trial_id"].astype(str)) if not run.trials.empty \
        else set()
    rows = []
    for _, r in run.trials.iterrows():
        row = {label: fn(r[col]) for label, col, fn in columns}
        if str(r["trial_id"]) in busy and not row["notes"].startswith("busy machine"):
            row["notes"] = "; ".join(x for x in ("busy machine", row["notes"]) if x)
        rows.append(row)
    return rows


def _capacity_rows(section: RunSection) -> list[dict[str, str]]:
    objective = capacity_mod.objective_of(section.run.meta, section.capacity)
    if section.capacity.empty or objective is None:
        return []
    return capacity_mod.table_rows(section.run, section.capacity, objective, short_id)


def capacity_intro(section: RunSection) -> str:
    objective = capacity_mod.objective_of(section.run.meta, section.capacity)
    where = f"Objective: {objective.text}. " if objective is not None else ""
    return where + capacity_mod.CAPACITY_NOTE


def _facts(run: RunData) -> list[tuple[str, str]]:
    meta = run.meta
    scenario = meta.get("scenario") or {}
    env = meta.get("environment") or {}
    cpus = meta.get("cpus") or {}
    plan = meta.get("plan") or {}
    facts = [
        ("run", f"{run.run_id} ({meta.get('status', '?')}), {meta.get('started_at', '?')} → "
                f"{meta.get('finished_at') or '?'}"),
        ("folder", str(run.run_dir)),
        ("command line", " ".join(str(a) for a in meta.get("command_line") or [])),
        ("scenario", f"{scenario.get('name', '?')} (kind {scenario.get('kind', '?')}), "
                     f"endpoint {scenario.get('endpoint', '?')}"),
        ("scenario hash", str(scenario.get("hash", "?"))),
        ("CPU sets", f"server {cpus.get('server', '?')}, load generator "
                     f"{cpus.get('loadgen', '?')}"),
        ("CPU", f"{env.get('cpu_model', '?')}, {env.get('cpu_count', '?')} logical CPUs"
                + (f", governor {env['cpu_governor']}" if env.get("cpu_governor") else "")),
        ("OS", f"{env.get('os', '?')} (kernel {env.get('kernel', '?')})"),
        ("Python", f"{env.get('python', '?')} {env.get('python_implementation', '')}".strip()),
        ("git commit", str(env.get("git_commit") or "unknown")),
    ]
    if plan:
        facts.append(("plan", ", ".join(f"{k} {v}" for k, v in plan.items() if k != "levels")))
    if env.get("load_average_at_start"):
        facts.append(("load average at start", str(env["load_average_at_start"])))
    if env.get("env"):
        facts.append(("environment variables",
                      ", ".join(f"{k}={v}" for k, v in sorted(env["env"].items()))))
    if meta.get("synthetic"):
        facts.insert(0, ("NOTE", "synthetic data for development, not a measurement"))
    return facts


def _targets(run: RunData) -> list[dict[str, str]]:
    rows = []
    for t in run.meta.get("targets") or []:
        command = " ".join(str(c) for c in t.get("command") or []) or str(t.get("app_spec") or "")
        if len(command) > MAX_COMMAND_CHARS:
            command = command[:MAX_COMMAND_CHARS] + " …"
        rows.append({
            "server": str(t.get("server", "")),
            "gateway": str(t.get("gateway", "")).upper(),
            "app": str(t.get("app", "")),
            "version": str(t.get("version") or ""),
            "workers": str(t.get("workers") if t.get("workers") is not None else "–"),
            "threads": str(t.get("threads") if t.get("threads") is not None else "–"),
            "preset note": str(t.get("preset_note") or "") + (
                f" (overridden: {', '.join(map(str, t['overridden']))})"
                if t.get("overridden") else ""),
            "status": str(t.get("status", "")) + (f": {t['reason']}" if t.get("reason") else ""),
            "command / app": command,
        })
    return rows


def _versions(run: RunData) -> dict[str, str]:
    versions = (run.meta.get("environment") or {}).get("versions") or {}
    return {str(k): str(v) for k, v in sorted(versions.items())}


# -- HTML ----------------------------------------------------------------------------------

CSS = """
body{font:15px/1.5 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif;
 color:#1d2330;background:#fff;margin:0 auto;padding:1.5em 2em 4em;max-width:1180px}
h1{font-size:1.7em;margin:.2em 0}h2{margin-top:2.2em;border-bottom:2px solid #e3e6eb;
 padding-bottom:.2em}h3{margin-top:1.6em}
.meta{color:#5b6472;font-size:.9em}
nav ul{padding-left:1.2em}
.guidance li{margin:.35em 0}.guidance li.caveat{color:#7a4b00}
.refs{font-size:.78em;color:#6b7380;white-space:nowrap}.refs a{color:#6b7380}
.legend-key span{display:inline-block;padding:.05em .6em;border-radius:3px;margin-right:.4em;
 color:#fff;font-size:.85em}.wsgi{background:#1f4e99}.asgi{background:#e8590c}
table{border-collapse:collapse;font-size:.84em;margin:.6em 0 1.2em;width:100%}
th,td{border-bottom:1px solid #e3e6eb;padding:.25em .5em;text-align:right;vertical-align:top;
 white-space:nowrap}
td.status,td.wrap{white-space:normal}
th{background:#f4f6f8;position:sticky;top:0}
td.l,th.l{text-align:left}
tr.invalid td{color:#8a8f98;background:#fafafa}
tr.invalid td.status{color:#b3261e}
tr.overloaded td.status{color:#7a4b00}
table.facts td{text-align:left}table.facts td:first-child{font-weight:600;width:13em}
code{font-size:.85em;background:#f4f6f8;padding:.05em .3em;border-radius:3px;word-break:break-all}
figure{margin:1.2em 0;text-align:center}
figure img{max-width:100%;height:auto;border:1px solid #eceff3}
figcaption{font-size:.85em;color:#5b6472}
details{margin:1em 0}summary{cursor:pointer;font-weight:600}
.scroll{overflow-x:auto;max-width:100%}
table.answer{font-size:.9em}table.answer td,table.answer th{white-space:normal;text-align:left;
 min-width:6em}table.answer td:first-child{font-weight:600}
.guidance details{margin:.1em 0 .3em;font-size:.88em;color:#3d4450}
.guidance summary{font-weight:400;color:#5b6472;font-size:.9em}
.badge{font-size:.75em;background:#b3261e;color:#fff;padding:.05em .4em;border-radius:3px}
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_refs(item: Finding, slug: str) -> str:
    if not item.trial_ids:
        return ""
    links = ", ".join(f'<a href="{TRIALS_HTML_FILE}#{_e(slug)}-t-{_e(t)}" title="{_e(t)}">'
                      f"{_e(short_id(t))}</a>" for t in item.trial_ids)
    return f' <span class="refs">[trials: {links}]</span>'


def _html_table(rows: Sequence[Mapping[str, str]], *, left: Iterable[str] = (),
                row_class: Callable[[Mapping[str, str]], str] | None = None,
                row_id: Callable[[Mapping[str, str]], str] | None = None,
                cell_class: Mapping[str, str] | None = None, table_id: str = "") -> str:
    """A table in a box of its own that scrolls sideways when wider than the page."""
    if not rows:
        return "<p><em>none</em></p>"
    left_set = set(left)
    cols = list(rows[0])
    head = "".join(f'<th class="{"l" if c in left_set else ""}">{_e(c)}</th>' for c in cols)
    body = []
    for row in rows:
        cls = row_class(row) if row_class else ""
        rid = f' id="{_e(row_id(row))}"' if row_id else ""
        cells = []
        for c in cols:
            classes = " ".join(x for x in ("l" if c in left_set else "",
                                           (cell_class or {}).get(c, "")) if x)
            cells.append(f'<td class="{classes}">{_e(row[c])}</td>')
        body.append(f'<tr class="{cls}"{rid}>{"".join(cells)}</tr>')
    tid = f' id="{_e(table_id)}"' if table_id else ""
    return (f'<div class="scroll"><table{tid}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def _data_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_items(items: Sequence[Finding], slug: str, cls: str = "") -> str:
    """The first layer (one short sentence each), the full sentence and its trials a click
    away."""
    out = []
    for item in items:
        detail = (f"<details><summary>evidence</summary><p>{_e(item.text)}"
                  f"{_html_refs(item, slug)}</p></details>")
        out.append(f'<li class="{cls}">{_e(item.short)}{detail}</li>')
    return '<ul class="guidance">' + "".join(out) + "</ul>"


def _html_section(section: RunSection) -> str:
    run, slug = section.run, section.slug
    scenario = run.meta.get("scenario") or {}
    out = [f'<section id="{_e(slug)}">',
           f"<h2>{_e(kind_label(run.meta))}: scenario {_e(scenario.get('name', '?'))} "
           f'<span class="meta">(run {_e(run.run_id)})</span></h2>']
    if run.meta.get("synthetic"):
        out.append('<p><span class="badge">synthetic data</span> not a measurement</p>')
    if scenario.get("description"):
        out.append(f"<p>{_e(scenario['description'])}</p>")
    findings = [i for i in section.guidance if not i.caveat]
    caveats = [i for i in section.guidance if i.caveat]
    out.append("<h3>Findings</h3>")
    out.append(_html_items(findings, slug) if findings
               else f"<p><em>{_e(NO_FINDINGS)}</em></p>")
    if caveats:
        out.append("<h3>Caveats</h3>")
        out.append(_html_items(caveats, slug, "caveat"))
    capacity_rows = _capacity_rows(section)
    if capacity_rows:
        out.append(f"<h3>{_e(CAPACITY_HEADING)}</h3>")
        out.append(f'<p class="meta">{_e(capacity_intro(section))}</p>')
        out.append(_html_table(capacity_rows, left=("server", "gateway", "status", "spread",
                                                    "first failed", "note"),
                               cell_class={"first failed": "wrap", "note": "wrap",
                                           "spread": "wrap"}))
    if section.plots:
        out.append("<h3>Plots</h3>")
        out.append(f'<p class="legend-key">{_e(plot_legend(section))}</p>')
    for plot in section.plots:
        out.append(f'<figure><img src="{_data_uri(plot.svg)}" alt="{_e(plot.title)}" '
                   f'width="880"><figcaption>{_e(plot.title)}</figcaption></figure>')
    out.append(f'<p>Every level\'s figures and every trial: <a href="{TRIALS_HTML_FILE}#'
               f'{_e(slug)}">{TRIALS_HTML_FILE}</a>.</p>')
    out.append("<details><summary>What ran on what</summary>")
    facts = []
    for key, value in _facts(run):
        shown = f"<code>{_e(value)}</code>" if key == "command line" else _e(value)
        facts.append(f"<tr><td>{_e(key)}</td><td>{shown}</td></tr>")
    out.append(f'<div class="scroll"><table class="facts"><tbody>{"".join(facts)}</tbody>'
               "</table></div>")
    out.append("<h4>Servers and presets</h4>")
    out.append(_html_table(_targets(run), left=("server", "gateway", "app", "preset note",
                                                "status", "command / app"),
                           cell_class={"command / app": "wrap", "preset note": "wrap",
                                       "status": "wrap"}))
    versions = _versions(run)
    if versions:
        out.append("<h4>Versions</h4>")
        out.append(_html_table([{"package": k, "version": v} for k, v in versions.items()],
                               left=("package", "version")))
    out.append("</details></section>")
    return "\n".join(out)


def _answer_cells(row: AnswerRow) -> dict[str, str]:
    return {**row.cells(), "evidence": row.anchor}


def _html_front(front: Front) -> str:
    out = ['<section id="what-to-run-section"><h2>What to run</h2>']
    if front.rows:
        head = "".join(f"<th>{_e(c)}</th>" for c in (*front.rows[0].cells(), "evidence"))
        body = "".join(
            "<tr>" + "".join(f"<td>{_e(v)}</td>" for v in row.cells().values())
            + f'<td><a href="#{_e(row.anchor)}">{_e(row.run_id)}</a></td></tr>'
            for row in front.rows)
        out.append(f'<div class="scroll"><table id="what-to-run" class="answer"><thead><tr>'
                   f"{head}</tr></thead><tbody>{body}</tbody></table></div>")
    else:
        out.append(f"<p><em>{_e(NO_ANSWER)}</em></p>")
    out.append(f'<p class="meta">{_e(front.machine)}</p>')
    if front.chart is not None:
        out.append(f'<figure><img src="{_data_uri(front.chart.svg)}" '
                   f'alt="{_e(front.chart.title)}" width="880"><figcaption>'
                   f"{_e(front.chart.title)}: WSGI blue, ASGI orange; error bars: the 95 % CI "
                   "of the repeats' mean.</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def _html_page(title: str, heading: str, intro: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{_e(heading)}</h1>"
        f'<p class="meta">{intro}</p>\n{body}\n</body></html>\n')


def render_html(sections: Sequence[RunSection], generated: str, front: Front) -> str:
    runs = ", ".join(s.run.run_id for s in sections)
    nav = "".join(f'<li><a href="#{_e(s.slug)}">{_e(kind_label(s.run.meta))}: '
                  f"{_e(s.run.run_id)}</a></li>" for s in sections)
    body = "\n".join(_html_section(s) for s in sections)
    intro = (f"harness {_e(__version__)}, report generated {_e(generated)} from "
             f"{len(sections)} run folder(s). Every number is recomputed from the run folders' "
             "trials.csv and histograms; each finding's evidence names its trials, listed in "
             f'<a href="{TRIALS_HTML_FILE}">{TRIALS_HTML_FILE}</a>.')
    return _html_page(f"harness report: {runs}", REPORT_TITLE, intro,
                      f"{_html_front(front)}\n<nav><h2>Runs</h2><ul>{nav}</ul></nav>\n{body}")


def _results_tables(section: RunSection) -> list[tuple[str, list[dict[str, str]]]]:
    """(heading, rows) of the per-level tables of a section."""
    if websocket.is_websocket(section.run.meta):
        return _ws_parts(section)
    parts = []
    for model in ("closed", "open"):
        part = section.summary[section.summary["load_model"] == model] \
            if not section.summary.empty else section.summary
        if not part.empty:
            parts.append((MODEL_HEADINGS[model],
                          _table_rows(part, multi_app(section.summary))))
    return parts


def _results_note(section: RunSection) -> str:
    if websocket.is_websocket(section.run.meta):
        return f"{WS_NOTE} {ws_unsupported_text(section.run)}"
    return RESULTS_NOTE


def render_trials_html(sections: Sequence[RunSection], generated: str) -> str:
    """The appendix: each run's results per server and level, and every trial."""
    out = []
    for section in sections:
        slug = section.slug
        out.append(f'<section id="{_e(slug)}"><h2>{_e(kind_label(section.run.meta))}: '
                   f"run {_e(section.run.run_id)}</h2>")
        heading = WS_HEADING if websocket.is_websocket(section.run.meta) else RESULTS_HEADING
        out.append(f"<h3>{_e(heading)}</h3>")
        out.append(f'<p class="meta">{_e(_results_note(section))}</p>')
        for heading, rows in _results_tables(section):
            out.append(f"<h4>{_e(heading)}</h4>")
            out.append(_html_table(rows, left=("server", "app", "gateway", "status", "trials"),
                                   row_class=_row_class, cell_class={"status": "status"}))
        rows = _trial_rows(section.run)
        out.append(f"<h3>All {len(rows)} trials (trials.csv)</h3>")
        out.append(_html_table(rows, left=("trial", "server", "model", "phase", "outcome",
                                           "reason", "notes"),
                               row_class=_row_class,
                               row_id=partial(_trial_anchor, slug),
                               cell_class={"reason": "wrap", "notes": "wrap"}))
        out.append("</section>")
    intro = (f"The appendix of <a href=\"{HTML_FILE}\">{HTML_FILE}</a>, generated "
             f"{_e(generated)}.")
    return _html_page("harness report: trials", f"{REPORT_TITLE}: every level and trial",
                      intro, "\n".join(out))


# -- Markdown ------------------------------------------------------------------------------

def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _md_table(rows: Sequence[Mapping[str, str]]) -> str:
    if not rows:
        return "_none_\n"
    cols = list(rows[0])
    lines = ["| " + " | ".join(_md_cell(c) for c in cols) + " |",
             "|" + "|".join("---" for _ in cols) + "|"]
    lines += ["| " + " | ".join(_md_cell(r[c]) for c in cols) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def _md_refs(item: Finding) -> str:
    if not item.trial_ids:
        return ""
    return " [trials: " + ", ".join(short_id(t) for t in item.trial_ids) + "]"


def _md_items(items: Sequence[Finding], slug: str, start: int) -> tuple[list[str], list[str]]:
    """Bullets with a footnote mark each, and the footnotes (the full sentence, its trials)."""
    bullets, notes = [], []
    for k, item in enumerate(items, start=start):
        mark = f"[^{slug}-{k}]"
        bullets.append(f"- {item.short} {mark}")
        notes.append(f"{mark}: {item.text}{_md_refs(item)}")
    return bullets, notes


def _md_section(section: RunSection) -> tuple[str, list[str]]:
    """The section, and its second layer (footnotes, printed at the end of the report)."""
    run, slug = section.run, section.slug
    scenario = run.meta.get("scenario") or {}
    out = [f'<a id="{slug}"></a>', "",
           f"## {kind_label(run.meta)}: scenario {scenario.get('name', '?')} (run {run.run_id})",
           ""]
    if run.meta.get("synthetic"):
        out += ["**Synthetic data, not a measurement.**", ""]
    if scenario.get("description"):
        out += [str(scenario["description"]), ""]
    findings = [i for i in section.guidance if not i.caveat]
    caveats = [i for i in section.guidance if i.caveat]
    bullets, notes = _md_items(findings, slug, 1)
    out += ["### Findings", "", *(bullets or [f"_{NO_FINDINGS}_"])]
    if caveats:
        more, more_notes = _md_items(caveats, slug, len(findings) + 1)
        out += ["", "### Caveats", "", *more]
        notes += more_notes
    if section.plots:
        out += ["", "### Plots", "", plot_legend(section), ""]
    for plot in section.plots:
        out += [f"![{plot.title}]({PLOTS_DIR}/{plot.png.name})", "",
                f"_{plot.title}_ ([SVG]({PLOTS_DIR}/{plot.svg.name}))", ""]
    out += ["", f"The capacity searches, every level's figures, the servers' presets and every "
                f"trial: [{TRIALS_MARKDOWN_FILE}]({TRIALS_MARKDOWN_FILE}#{_md_anchor(section)}).",
            "", "### What ran on what", "",
            _md_table([{"": k, "value": v} for k, v in _facts(run)])]
    return "\n".join(out), notes


def _md_anchor(section: RunSection) -> str:
    """GitHub's anchor of the appendix heading of ``section``."""
    heading = f"{kind_label(section.run.meta)}: run {section.run.run_id}".lower()
    return re.sub(r"[^a-z0-9 _-]", "", heading).replace(" ", "-")


def _md_front(front: Front) -> list[str]:
    out = ["## What to run", ""]
    if front.rows:
        out.append(_md_table([{**row.cells(), "evidence": f"[{row.run_id}](#{row.anchor})"}
                              for row in front.rows]))
    else:
        out += [f"_{NO_ANSWER}_", ""]
    out += [front.machine, ""]
    if front.chart is not None:
        out += [f"![{front.chart.title}]({PLOTS_DIR}/{front.chart.png.name})", "",
                f"_{front.chart.title}: WSGI blue, ASGI orange; error bars: the 95 % CI of the "
                f"repeats' mean_ ([SVG]({PLOTS_DIR}/{front.chart.svg.name}))", ""]
    return out


def render_markdown(sections: Sequence[RunSection], generated: str, front: Front) -> str:
    head = [f"# {REPORT_TITLE}", "",
            f"harness {__version__}, report generated {generated} from {len(sections)} run "
            "folder(s). Every number is recomputed from trials.csv and the histograms; each "
            "finding's footnote gives its full figures and the trials they came from (trial "
            f"id prefixes, listed in [{TRIALS_MARKDOWN_FILE}]({TRIALS_MARKDOWN_FILE})).", ""]
    parts, notes = [], []
    for section in sections:
        text, mine = _md_section(section)
        parts.append(text)
        notes += mine
    evidence = ["## Evidence", "", "Each finding in full: its figures, intervals, tests and "
                "trials.", "", *notes] if notes else []
    return "\n".join(head + _md_front(front) + parts + evidence) + "\n"


def render_trials_markdown(sections: Sequence[RunSection], generated: str) -> str:
    """The appendix: each run's results per server and level, and every trial."""
    out = [f"# {REPORT_TITLE}: every level and trial", "",
           f"The appendix of [{MARKDOWN_FILE}]({MARKDOWN_FILE}), generated {generated}.", ""]
    for section in sections:
        heading = WS_HEADING if websocket.is_websocket(section.run.meta) else RESULTS_HEADING
        out += [f"## {kind_label(section.run.meta)}: run {section.run.run_id}", ""]
        capacity_rows = _capacity_rows(section)
        if capacity_rows:
            out += [f"### {CAPACITY_HEADING}", "", capacity_intro(section), "",
                    _md_table(capacity_rows)]
        out += [f"### {heading}", "", _results_note(section), ""]
        for heading, rows in _results_tables(section):
            out += [f"#### {heading}", "", _md_table(rows)]
        out += ["### Servers and presets", "", _md_table(_targets(section.run))]
        versions = _versions(section.run)
        if versions:
            out += ["### Versions", "", _md_table([{"package": k, "version": v}
                                                   for k, v in versions.items()])]
        rows = _trial_rows(section.run)
        out += [f"### All {len(rows)} trials", "", _md_table(rows)]
    return "\n".join(out) + "\n"


def _trial_anchor(slug: str, row: Mapping[str, str]) -> str:
    return f"{slug}-t-{row['trial']}"

"""report.md (beside plots/) and trials.md."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from harness import __version__
from harness.analysis import websocket
from harness.analysis.findings.record import Finding
from harness.analysis.report.content import (
    CAPACITY_HEADING,
    MARKDOWN_FILE,
    NO_ANSWER,
    NO_FINDINGS,
    REPORT_TITLE,
    RESULTS_HEADING,
    TRIALS_MARKDOWN_FILE,
    WS_HEADING,
    run_facts,
    run_versions,
    short_id,
    target_rows,
    trial_rows,
)
from harness.analysis.report.sections import (
    PLOTS_DIR,
    Front,
    RunSection,
    capacity_intro,
    capacity_table,
    plot_legend,
    results_note,
    results_tables,
)
from harness.analysis.wording import kind_label


def _md_cell(text: object) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def md_table(rows: Sequence[Mapping[str, str]]) -> str:
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


# A section lists at most this many caveats of one topic; the rest are counted, each still a
# footnote under Evidence (a noisy run can have twenty "noisy" levels).
CAVEATS_PER_TOPIC_MAX = 2


def _md_items(items: Sequence[Finding], slug: str, start: int,
              per_topic: int | None = None) -> tuple[list[str], list[str]]:
    """Bullets with a footnote mark each, and the footnotes (the full sentence, its trials);
    with ``per_topic``, the items past that many of one topic are one bullet counting them."""
    bullets, notes = [], []
    shown: dict[str, int] = {}
    hidden: dict[str, list[str]] = {}
    for k, item in enumerate(items, start=start):
        mark = f"[^{slug}-{k}]"
        notes.append(f"{mark}: {item.text}{_md_refs(item)}")
        shown[item.topic] = shown.get(item.topic, 0) + 1
        if per_topic is not None and shown[item.topic] > per_topic:
            hidden.setdefault(item.topic, []).append(mark)
            continue
        bullets.append(f"- {item.short} {mark}")
    for topic, marks in hidden.items():
        bullets.append(f"- … and {len(marks)} more of this kind ({topic}): " + " ".join(marks))
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
        more, more_notes = _md_items(caveats, slug, len(findings) + 1,
                                      CAVEATS_PER_TOPIC_MAX)
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
            md_table([{"": k, "value": v} for k, v in run_facts(run)])]
    return "\n".join(out), notes


def _md_anchor(section: RunSection) -> str:
    """GitHub's anchor of the appendix heading of ``section``."""
    heading = f"{kind_label(section.run.meta)}: run {section.run.run_id}".lower()
    return re.sub(r"[^a-z0-9 _-]", "", heading).replace(" ", "-")


def _md_front(front: Front) -> list[str]:
    out = ["## What to run", ""]
    if front.rows:
        out.append(md_table([{**row.cells(), "evidence": f"[{row.run_id}](#{row.anchor})"}
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
        capacity_rows = capacity_table(section)
        if capacity_rows:
            out += [f"### {CAPACITY_HEADING}", "", capacity_intro(section), "",
                    md_table(capacity_rows)]
        out += [f"### {heading}", "", results_note(section), ""]
        for heading, rows in results_tables(section):
            out += [f"#### {heading}", "", md_table(rows)]
        out += ["### Servers and presets", "", md_table(target_rows(section.run))]
        versions = run_versions(section.run)
        if versions:
            out += ["### Versions", "", md_table([{"package": k, "version": v}
                                                   for k, v in versions.items()])]
        rows = trial_rows(section.run)
        out += [f"### All {len(rows)} trials", "", md_table(rows)]
    return "\n".join(out) + "\n"

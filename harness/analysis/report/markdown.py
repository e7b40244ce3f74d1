"""report.md (beside plots/) and trials.md."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from harness import __version__
from harness.analysis.findings.record import Finding
from harness.analysis.report.content import (
    CAPACITY_HEADING,
    MARKDOWN_FILE,
    NO_ANSWER,
    NO_FINDINGS,
    REPORT_TITLE,
    TRIALS_MARKDOWN_FILE,
    notice_of,
    run_facts,
    run_versions,
    short_id,
    target_rows,
    trial_rows,
)
from harness.analysis.report.sections import (
    KINDS_HEADING,
    PLOTS_DIR,
    Front,
    Page,
    RunSection,
    capacity_intro,
    capacity_table,
    caveats_of,
    findings_of,
    kind_table,
    parts_on,
    plot_legend,
    results_heading,
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


# -- a run's section, part by part (sections.RUN_OUTLINE) ------------------------------------

@dataclass(frozen=True)
class _Run:
    """A run's section being drawn, and its second layer: the footnotes its findings gather,
    printed at the end of the report under Evidence."""

    section: RunSection
    notes: list[str] = field(default_factory=list)


def _title(run: _Run) -> list[str]:
    data, slug = run.section.run, run.section.slug
    scenario = data.meta.get("scenario") or {}
    return [f'<a id="{slug}"></a>', "",
            f"## {kind_label(data.meta)}: scenario {scenario.get('name', '?')} "
            f"(run {data.run_id})", ""]


def _appendix_title(run: _Run) -> list[str]:
    return [f"## {kind_label(run.section.run.meta)}: run {run.section.run.run_id}", ""]


def _notice(run: _Run) -> list[str]:
    notice = notice_of(run.section.run)
    return [f"**Note:** {notice}", ""] if notice else []


def _description(run: _Run) -> list[str]:
    description = (run.section.run.meta.get("scenario") or {}).get("description")
    return [str(description), ""] if description else []


def _findings(run: _Run) -> list[str]:
    bullets, notes = _md_items(findings_of(run.section), run.section.slug, len(run.notes) + 1)
    run.notes.extend(notes)
    return ["### Findings", "", *(bullets or [f"_{NO_FINDINGS}_"])]


def _caveats(run: _Run) -> list[str]:
    caveats = caveats_of(run.section)
    if not caveats:
        return []
    bullets, notes = _md_items(caveats, run.section.slug, len(run.notes) + 1,
                               CAVEATS_PER_TOPIC_MAX)
    run.notes.extend(notes)
    return ["", "### Caveats", "", *bullets]


def _capacity(run: _Run) -> list[str]:
    rows = capacity_table(run.section)
    if not rows:
        return []
    return [f"### {CAPACITY_HEADING}", "", capacity_intro(run.section), "", md_table(rows)]


def _plots(run: _Run) -> list[str]:
    section = run.section
    if not section.plots:
        return []
    out = ["", "### Plots", "", plot_legend(section), ""]
    for plot in section.plots:
        out += [f"![{plot.title}]({PLOTS_DIR}/{plot.png.name})", "",
                f"_{plot.title}_ ([SVG]({PLOTS_DIR}/{plot.svg.name}))", ""]
    return out


def _appendix_link(run: _Run) -> list[str]:
    return ["", f"The capacity searches, every level's figures, the servers' presets and every "
                f"trial: [{TRIALS_MARKDOWN_FILE}]({TRIALS_MARKDOWN_FILE}#"
                f"{_md_anchor(run.section)}).", ""]


def _setup(run: _Run) -> list[str]:
    return ["### What ran on what", "",
            md_table([{"": k, "value": v} for k, v in run_facts(run.section.run)])]


def _results(run: _Run) -> list[str]:
    out = [f"### {results_heading(run.section)}", "", results_note(run.section), ""]
    for heading, rows in results_tables(run.section):
        out += [f"#### {heading}", "", md_table(rows)]
    return out


def _kinds(run: _Run) -> list[str]:
    rows = kind_table(run.section)
    return [f"### {KINDS_HEADING}", "", md_table(rows)] if rows else []


def _presets(run: _Run) -> list[str]:
    return ["### Servers and presets", "", md_table(target_rows(run.section.run))]


def _versions(run: _Run) -> list[str]:
    versions = run_versions(run.section.run)
    if not versions:
        return []
    return ["### Versions", "", md_table([{"package": k, "version": v}
                                          for k, v in versions.items()])]


def _trials(run: _Run) -> list[str]:
    rows = trial_rows(run.section.run)
    return [f"### All {len(rows)} trials", "", md_table(rows)]


# How the Markdown draws each part of the outline, by its name.
PARTS: dict[str, Callable[[_Run], list[str]]] = {
    "title": _title, "appendix_title": _appendix_title, "notice": _notice,
    "description": _description, "findings": _findings, "caveats": _caveats,
    "capacity": _capacity, "plots": _plots, "appendix_link": _appendix_link, "setup": _setup,
    "results": _results, "kinds": _kinds, "presets": _presets, "versions": _versions,
    "trials": _trials,
}


def _md_section(section: RunSection, page: Page) -> tuple[list[str], list[str]]:
    """The section's lines on ``page``, and its footnotes."""
    run = _Run(section)
    lines = [line for name in parts_on(page, "markdown") for line in PARTS[name](run)]
    return lines, run.notes


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
        lines, mine = _md_section(section, Page.REPORT)
        parts.append("\n".join(lines))
        notes += mine
    evidence = ["## Evidence", "", "Each finding in full: its figures, intervals, tests and "
                "trials.", "", *notes] if notes else []
    return "\n".join(head + _md_front(front) + parts + evidence) + "\n"


def render_trials_markdown(sections: Sequence[RunSection], generated: str) -> str:
    """The appendix: each run's results per server and level, and every trial."""
    out = [f"# {REPORT_TITLE}: every level and trial", "",
           f"The appendix of [{MARKDOWN_FILE}]({MARKDOWN_FILE}), generated {generated}.", ""]
    for section in sections:
        out += _md_section(section, Page.TRIALS)[0]
    return "\n".join(out) + "\n"

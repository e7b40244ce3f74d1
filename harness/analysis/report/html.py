"""report.html and trials.html: one self-contained file each (figures as data: URIs, CSS
inline, no script, no network reference), so each opens the same from an e-mail as from disk."""

from __future__ import annotations

import base64
import html
from collections.abc import Callable, Iterable, Mapping, Sequence
from functools import partial
from pathlib import Path

from harness import __version__
from harness.analysis.answers import AnswerRow
from harness.analysis.findings.record import Finding
from harness.analysis.report.content import (
    CAPACITY_HEADING,
    HTML_FILE,
    NO_ANSWER,
    NO_FINDINGS,
    REPORT_TITLE,
    TRIALS_HTML_FILE,
    notice_of,
    run_facts,
    run_versions,
    short_id,
    status_class,
    target_rows,
    trial_rows,
)
from harness.analysis.report.sections import (
    KINDS_HEADING,
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


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _html_refs(item: Finding, slug: str) -> str:
    if not item.trial_ids:
        return ""
    links = ", ".join(f'<a href="{TRIALS_HTML_FILE}#{esc(slug)}-t-{esc(t)}" title="{esc(t)}">'
                      f"{esc(short_id(t))}</a>" for t in item.trial_ids)
    return f' <span class="refs">[trials: {links}]</span>'


def html_table(rows: Sequence[Mapping[str, str]], *, left: Iterable[str] = (),
                row_class: Callable[[Mapping[str, str]], str] | None = None,
                row_id: Callable[[Mapping[str, str]], str] | None = None,
                cell_class: Mapping[str, str] | None = None, table_id: str = "") -> str:
    """A table in a box of its own that scrolls sideways when wider than the page."""
    if not rows:
        return "<p><em>none</em></p>"
    left_set = set(left)
    cols = list(rows[0])
    head = "".join(f'<th class="{"l" if c in left_set else ""}">{esc(c)}</th>' for c in cols)
    body = []
    for row in rows:
        cls = row_class(row) if row_class else ""
        rid = f' id="{esc(row_id(row))}"' if row_id else ""
        cells = []
        for c in cols:
            classes = " ".join(x for x in ("l" if c in left_set else "",
                                           (cell_class or {}).get(c, "")) if x)
            cells.append(f'<td class="{classes}">{esc(row[c])}</td>')
        body.append(f'<tr class="{cls}"{rid}>{"".join(cells)}</tr>')
    tid = f' id="{esc(table_id)}"' if table_id else ""
    return (f'<div class="scroll"><table{tid}><thead><tr>{head}</tr></thead>'
            f"<tbody>{''.join(body)}</tbody></table></div>")


def data_uri(path: Path) -> str:
    mime = "image/svg+xml" if path.suffix == ".svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def _html_items(items: Sequence[Finding], slug: str, cls: str = "") -> str:
    """The first layer (one short sentence each), the full sentence and its trials a click
    away."""
    out = []
    for item in items:
        detail = (f"<details><summary>evidence</summary><p>{esc(item.text)}"
                  f"{_html_refs(item, slug)}</p></details>")
        out.append(f'<li class="{cls}">{esc(item.short)}{detail}</li>')
    return '<ul class="guidance">' + "".join(out) + "</ul>"


# -- a run's section, part by part (sections.RUN_OUTLINE) ------------------------------------

def _title(section: RunSection) -> list[str]:
    run, slug = section.run, section.slug
    scenario = run.meta.get("scenario") or {}
    return [f'<section id="{esc(slug)}">',
            f"<h2>{esc(kind_label(run.meta))}: scenario {esc(scenario.get('name', '?'))} "
            f'<span class="meta">(run {esc(run.run_id)})</span></h2>']


def _appendix_title(section: RunSection) -> list[str]:
    return [f'<section id="{esc(section.slug)}"><h2>{esc(kind_label(section.run.meta))}: '
            f"run {esc(section.run.run_id)}</h2>"]


def _notice(section: RunSection) -> list[str]:
    notice = notice_of(section.run)
    return [f'<p><span class="badge">note</span> {esc(notice)}</p>'] if notice else []


def _description(section: RunSection) -> list[str]:
    description = (section.run.meta.get("scenario") or {}).get("description")
    return [f"<p>{esc(description)}</p>"] if description else []


def _findings(section: RunSection) -> list[str]:
    findings = findings_of(section)
    return ["<h3>Findings</h3>", _html_items(findings, section.slug) if findings
            else f"<p><em>{esc(NO_FINDINGS)}</em></p>"]


def _caveats(section: RunSection) -> list[str]:
    caveats = caveats_of(section)
    return ["<h3>Caveats</h3>", _html_items(caveats, section.slug, "caveat")] if caveats else []


def _capacity(section: RunSection) -> list[str]:
    rows = capacity_table(section)
    if not rows:
        return []
    return [f"<h3>{esc(CAPACITY_HEADING)}</h3>",
            f'<p class="meta">{esc(capacity_intro(section))}</p>',
            html_table(rows, left=("server", "gateway", "status", "spread", "first failed",
                                   "note"),
                       cell_class={"first failed": "wrap", "note": "wrap", "spread": "wrap"})]


def _plots(section: RunSection) -> list[str]:
    if not section.plots:
        return []
    return ["<h3>Plots</h3>", f'<p class="legend-key">{esc(plot_legend(section))}</p>',
            *(f'<figure><img src="{data_uri(plot.svg)}" alt="{esc(plot.title)}" '
              f'width="880"><figcaption>{esc(plot.title)}</figcaption></figure>'
              for plot in section.plots)]


def _appendix_link(section: RunSection) -> list[str]:
    return [f'<p>Every level\'s figures and every trial: <a href="{TRIALS_HTML_FILE}#'
            f'{esc(section.slug)}">{TRIALS_HTML_FILE}</a>.</p>']


def _setup(section: RunSection) -> list[str]:
    # Opens the fold the presets and the versions follow in; the section's end closes it.
    facts = []
    for key, value in run_facts(section.run):
        shown = f"<code>{esc(value)}</code>" if key == "command line" else esc(value)
        facts.append(f"<tr><td>{esc(key)}</td><td>{shown}</td></tr>")
    return ["<details><summary>What ran on what</summary>",
            f'<div class="scroll"><table class="facts"><tbody>{"".join(facts)}</tbody>'
            "</table></div>"]


def _results(section: RunSection) -> list[str]:
    out = [f"<h3>{esc(results_heading(section))}</h3>",
           f'<p class="meta">{esc(results_note(section))}</p>']
    for heading, rows in results_tables(section):
        out += [f"<h4>{esc(heading)}</h4>",
                html_table(rows, left=("server", "app", "gateway", "status", "trials"),
                           row_class=status_class, cell_class={"status": "status"})]
    return out


def _kinds(section: RunSection) -> list[str]:
    rows = kind_table(section)
    if not rows:
        return []
    return [f"<h3>{esc(KINDS_HEADING)}</h3>",
            html_table(rows, left=("trial", "server", "app", "kind", "outcome"))]


def _presets(section: RunSection) -> list[str]:
    return ["<h4>Servers and presets</h4>",
            html_table(target_rows(section.run), left=("server", "gateway", "app",
                                                       "preset note", "status", "command / app"),
                       cell_class={"command / app": "wrap", "preset note": "wrap",
                                   "status": "wrap"})]


def _versions(section: RunSection) -> list[str]:
    versions = run_versions(section.run)
    if not versions:
        return []
    return ["<h4>Versions</h4>",
            html_table([{"package": k, "version": v} for k, v in versions.items()],
                       left=("package", "version"))]


def _trials(section: RunSection) -> list[str]:
    rows = trial_rows(section.run)
    return [f"<h3>All {len(rows)} trials (trials.csv)</h3>",
            html_table(rows, left=("trial", "server", "model", "phase", "outcome", "reason",
                                   "notes"),
                       row_class=status_class, row_id=partial(trial_anchor, section.slug),
                       cell_class={"reason": "wrap", "notes": "wrap"})]


# How the HTML draws each part of the outline, by its name.
PARTS: dict[str, Callable[[RunSection], list[str]]] = {
    "title": _title, "appendix_title": _appendix_title, "notice": _notice,
    "description": _description, "findings": _findings, "caveats": _caveats,
    "capacity": _capacity, "plots": _plots, "appendix_link": _appendix_link, "setup": _setup,
    "results": _results, "kinds": _kinds, "presets": _presets, "versions": _versions,
    "trials": _trials,
}
# The report's section ends inside the fold its setup part opened.
_SECTION_END = {Page.REPORT: "</details></section>", Page.TRIALS: "</section>"}


def _html_section(section: RunSection, page: Page) -> str:
    out = [element for name in parts_on(page, "html") for element in PARTS[name](section)]
    return "\n".join([*out, _SECTION_END[page]])


def _answer_cells(row: AnswerRow) -> dict[str, str]:
    return {**row.cells(), "evidence": row.anchor}


def _html_front(front: Front) -> str:
    out = ['<section id="what-to-run-section"><h2>What to run</h2>']
    if front.rows:
        head = "".join(f"<th>{esc(c)}</th>" for c in (*front.rows[0].cells(), "evidence"))
        body = "".join(
            "<tr>" + "".join(f"<td>{esc(v)}</td>" for v in row.cells().values())
            + f'<td><a href="#{esc(row.anchor)}">{esc(row.run_id)}</a></td></tr>'
            for row in front.rows)
        out.append(f'<div class="scroll"><table id="what-to-run" class="answer"><thead><tr>'
                   f"{head}</tr></thead><tbody>{body}</tbody></table></div>")
    else:
        out.append(f"<p><em>{esc(NO_ANSWER)}</em></p>")
    out.append(f'<p class="meta">{esc(front.machine)}</p>')
    if front.chart is not None:
        out.append(f'<figure><img src="{data_uri(front.chart.svg)}" '
                   f'alt="{esc(front.chart.title)}" width="880"><figcaption>'
                   f"{esc(front.chart.title)}: WSGI blue, ASGI orange; error bars: the 95 % CI "
                   "of the repeats' mean.</figcaption></figure>")
    out.append("</section>")
    return "\n".join(out)


def _html_page(title: str, heading: str, intro: str, body: str) -> str:
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{esc(heading)}</h1>"
        f'<p class="meta">{intro}</p>\n{body}\n</body></html>\n')


def render_html(sections: Sequence[RunSection], generated: str, front: Front) -> str:
    runs = ", ".join(s.run.run_id for s in sections)
    nav = "".join(f'<li><a href="#{esc(s.slug)}">{esc(kind_label(s.run.meta))}: '
                  f"{esc(s.run.run_id)}</a></li>" for s in sections)
    body = "\n".join(_html_section(s, Page.REPORT) for s in sections)
    intro = (f"harness {esc(__version__)}, report generated {esc(generated)} from "
             f"{len(sections)} run folder(s). Every number is recomputed from the run folders' "
             "trials.csv and histograms; each finding's evidence names its trials, listed in "
             f'<a href="{TRIALS_HTML_FILE}">{TRIALS_HTML_FILE}</a>.')
    return _html_page(f"harness report: {runs}", REPORT_TITLE, intro,
                      f"{_html_front(front)}\n<nav><h2>Runs</h2><ul>{nav}</ul></nav>\n{body}")


def render_trials_html(sections: Sequence[RunSection], generated: str) -> str:
    """The appendix: each run's results per server and level, and every trial."""
    body = "\n".join(_html_section(s, Page.TRIALS) for s in sections)
    intro = (f"The appendix of <a href=\"{HTML_FILE}\">{HTML_FILE}</a>, generated "
             f"{esc(generated)}.")
    return _html_page("harness report: trials", f"{REPORT_TITLE}: every level and trial",
                      intro, body)


def trial_anchor(slug: str, row: Mapping[str, str]) -> str:
    return f"{slug}-t-{row['trial']}"

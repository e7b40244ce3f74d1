"""report.html and report.md (+ plots/), their appendix trials.html and trials.md, and
findings.json, for one or more run folders.

All are built in a hidden folder beside their destination and moved into place at the end, so
a failure (or Ctrl-C) never leaves half a report.

>>> write_report([Path("results/reference/io_bound")], Path("/tmp/report"))  # doctest: +SKIP
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from harness.analysis.findings.record import FINDINGS_FILE, write_findings
from harness.analysis.report.content import (
    HTML_FILE,
    MARKDOWN_FILE,
    MODEL_HEADINGS,
    PLOT_LEGEND,
    TRIALS_HTML_FILE,
    TRIALS_MARKDOWN_FILE,
    WS_HEADING,
    WS_NOTE,
    short_id,
)
from harness.analysis.report.html import render_html, render_trials_html
from harness.analysis.report.markdown import render_markdown, render_trials_markdown
from harness.analysis.report.sections import PLOTS_DIR, build_front, build_section, slug_of
from harness.analysis.rundata import RunData
from harness.errors import UsageError

__all__ = ["HTML_FILE", "MARKDOWN_FILE", "MODEL_HEADINGS", "PLOT_LEGEND", "TRIALS_HTML_FILE",
           "TRIALS_MARKDOWN_FILE", "WS_HEADING", "WS_NOTE", "load_sections_input",
           "short_id", "write_report"]


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
            slug = slug_of(run.run_id)
            while slug in slugs:
                slug += "-b"
            slugs.append(slug)
        sections = [build_section(run, slug, staging / PLOTS_DIR)
                    for run, slug in zip(runs, slugs, strict=True)]
        front = build_front(sections, staging / PLOTS_DIR)
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

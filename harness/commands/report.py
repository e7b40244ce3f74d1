"""harness report RUN_DIR [RUN_DIR...] [--out DIR]: report.html and report.md for run folders."""

from __future__ import annotations

import argparse
from pathlib import Path

from harness.commands import options

HELP = "write report.html and report.md for a run folder"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    report = subparsers.add_parser("report", help=HELP)
    report.add_argument("run_dir", nargs="+", help="run folder(s); several are combined")
    report.add_argument("--out", help="where to write the report (default: the first run folder)")
    return report


def main(args: argparse.Namespace) -> int:
    # Imported here: pandas and matplotlib are paid for only by the commands that draw.
    from harness.analysis import write_report

    html, markdown = write_report([Path(p) for p in args.run_dir],
                                  Path(args.out) if args.out else None)
    print(f"report: {html}")
    print(f"markdown: {markdown}")
    return 0

"""harness compare RUN_A RUN_B: does a second run of the same plan confirm the first?"""

from __future__ import annotations

import argparse
import sys

from harness.commands import options

# exit status when some finding differs between the runs (2 stays "bad input")
EXIT_DISAGREE = 1
HELP = "does a second run confirm the first? their guidance side by side"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    compare = subparsers.add_parser(
        "compare", help=HELP,
        description="Print both runs' guidance, sentence by sentence. A finding agrees when "
                    "its sentence names the same servers with the same verdict (a winner, 'no "
                    "significant difference', 'not ranked') in both; only figures differ. "
                    "Caveats are shown, not judged. Exit 0 when every finding agrees, 1 when "
                    "one differs, 2 on bad input.")
    compare.add_argument("run_a", help="a run folder")
    compare.add_argument("run_b", help="a run folder of the same plan")
    return compare


def main(args: argparse.Namespace) -> int:
    # Imported here: pandas is paid for only by the commands that analyse.
    from harness.analysis.agreement import busy_runs, compare_runs
    from harness.analysis.rundata import RunData

    runs = (RunData.load(args.run_a), RunData.load(args.run_b))
    rows = compare_runs(*runs)
    findings = [r for r in rows if r.finding]
    differ = [r for r in findings if not r.same]
    for row in rows:
        mark = (("same: no winner in either" if row.unranked
                 else "same" if row.identical
                 else "same winners: in another order, or the other side differs") if row.same
                else "DIFFERS") if row.finding else "caveat"
        print(f"[{mark}] {row.topic}")
        print(f"  A: {row.a if row.a is not None else '(no such sentence)'}")
        print(f"  B: {row.b if row.b is not None else '(no such sentence)'}")
    print(f"\n{len(findings) - len(differ)} of {len(findings)} findings have the same servers "
          f"and verdicts in both runs" + (f"; differ: {', '.join(r.topic for r in differ)}"
                                          if differ else "."), file=sys.stderr)
    for line in busy_runs(*runs):
        print(line, file=sys.stderr)
    return EXIT_DISAGREE if differ else 0

"""Argument parsing only: each subcommand hands its namespace to one function in harness.commands.

Command modules are imported lazily so that ``harness --help`` and ``harness load`` do not pay
for pandas and matplotlib.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence
from pathlib import Path

from harness import __version__
from harness.cpus import parse_cpus
from harness.errors import UsageError
from harness.units import parse_duration

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # the shell's convention for SIGINT: 128 + 2


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _cpus(text: str) -> tuple[int, ...]:
    try:
        return parse_cpus(text)
    except UsageError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _int_list(text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers like '1,8,64', got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers like '1,8,64', got {text!r}")
    return values


def _float_list(text: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected numbers like '100,500', got {text!r}") from None
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive numbers like '100,500', got {text!r}")
    return values


def _names(text: str) -> list[str]:
    return [x.strip() for x in text.split(",") if x.strip()]


def _add_app_options(parser: argparse.ArgumentParser, default: str) -> None:
    group = parser.add_argument_group("the app served")
    group.add_argument("--app", help=f"app family: raw, django, django-async, flask, quart, "
                                     f"fastapi, starlette, pyramid (default: {default})")
    group.add_argument("--wsgi-app", metavar="MODULE:ATTR",
                       help="your own WSGI app, e.g. mysite.wsgi:application (instead of --app)")
    group.add_argument("--asgi-app", metavar="MODULE:ATTR",
                       help="your own ASGI app, e.g. mysite.asgi:application")
    group.add_argument("--app-dir", metavar="DIR",
                       help="your app's folder, first on the servers' PYTHONPATH (default: .)")
    group.add_argument("--env", action="append", metavar="NAME=VALUE",
                       help="environment for your app's servers, repeatable, e.g. "
                            "DJANGO_SETTINGS_MODULE=mysite.settings")
    group.add_argument("--path", help="your app's path to load (and to check answers 2xx), "
                                      "e.g. /api/items (default: /)")


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend", default="local",
        help="how servers run: local (default; pinned processes) or compose (Docker containers "
             "pinned with cpuset; needs a Docker engine, see README)",
    )


class _Parser(argparse.ArgumentParser):
    """argparse exits 2 on bad input already; keep its message to one line."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="harness",
        description=(
            "Compare Python gateway models (WSGI vs ASGI) and their servers under load: "
            "identical apps behind every server, a fast and honest load generator, "
            "results you can trust and a report that guides the choice."
        ),
    )
    parser.add_argument("--version", action="version", version=f"harness {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    # -- harness run -------------------------------------------------------------------------
    run = sub.add_parser(
        "run",
        help="take every server through a scenario and write a result folder",
        description=(
            "Start each server pinned to its CPUs, verify it against the app contract, warm it "
            "up, measure every load level, stop it; write run.json, trials.csv, histograms and "
            "series into the run folder, then the report."
        ),
    )
    run.add_argument(
        "--scenario",
        required=True,
        help="a name from scenarios/ (hello, io_bound, cpu_bound, ...) or a TOML path",
    )
    run.add_argument(
        "--servers", type=_names, help="comma-separated server names (default: the scenario's)"
    )
    _add_app_options(run, "the scenario's, usually 'raw'")
    run.add_argument(
        "--quick",
        action="store_true",
        help="short levels and durations: a first look in a couple of minutes",
    )
    run.add_argument("--concurrency", type=_int_list, help="closed-loop levels, e.g. 1,8,64")
    run.add_argument("--rate", type=_float_list, help="open-loop levels in req/s, e.g. 100,500")
    run.add_argument("--duration", type=_duration, help="measured time per trial, e.g. 10s")
    run.add_argument("--warmup", type=_duration, help="unrecorded warm-up per trial, e.g. 2s "
                     "(in open loop the rate rises from 0 over its first half)")
    run.add_argument("--repeat", type=int, help="repeats per level (default: the scenario's)")
    run.add_argument("--out", help="run folder (default: results/<run-id>/)")
    run.add_argument(
        "--server-cpus", type=_cpus,
        help="CPUs for the server under test (default: the upper half; on 2 cores CPU 1)",
    )
    run.add_argument(
        "--loadgen-cpus",
        type=_cpus,
        help="CPUs for the load generator and upstream (default: all others)",
    )
    run.add_argument("--workers", type=int, help="override every server's worker preset")
    run.add_argument("--threads", type=int, help="override the thread preset of threaded servers")
    _add_backend(run)
    run.add_argument(
        "--driver", default="builtin",
        help="load generator: builtin (default; asyncio + httptools, as fast as wrk) or "
             "locust (closed-loop levels as Locust users; pip install -e '.[locust]')",
    )
    locust = run.add_argument_group("with --driver locust")
    locust.add_argument(
        "--locustfile", type=Path, default=None,
        help="this locustfile's traffic mix against every server instead of the scenario's "
             "request (see scenarios/locustfiles/shop.py)")
    locust.add_argument(
        "--locust-workers", type=int, default=None, metavar="N",
        help="Locust's master plus N worker processes pinned to the generator CPUs "
             "(default: one process)")
    locust.add_argument(
        "--locust-remote-workers", type=int, default=0, metavar="M",
        help="also wait for M workers started elsewhere with "
             "'harness locust-worker --master-host HOST'")
    locust.add_argument(
        "--locust-master-bind", default="127.0.0.1", metavar="HOST",
        help="address the Locust master listens on for remote workers (e.g. 0.0.0.0)")
    locust.add_argument(
        "--locust-master-port", type=int, default=None, metavar="PORT",
        help="Locust master port (default: a free port; 5557 with remote workers)")
    locust.add_argument(
        "--stop-timeout", type=_duration, default=None,
        help="how long requests in flight at the end may finish (default: the scenario's "
             "timeout); later ones count as timeouts")
    run.add_argument(
        "--slo", metavar="OBJECTIVE",
        help="also find each server's capacity at a latency objective, e.g. 'p99=100ms' or "
             "'p99.9=250ms,errors=0.5%%': an open-loop rate search (ramp, then bisection to "
             "5%%), every step a trial; capacity.csv holds the answers (default: the "
             "scenario's [slo] with its own plan, none with --quick or --concurrency/--rate; "
             "'off': none)",
    )
    run.add_argument(
        "--searches", type=int, metavar="N",
        help="capacity searches per server, each on a freshly started server (default: one "
             "per repeat); rounds past --repeat start each server for its search alone, so "
             "capacity gets more repeats without repeating every level",
    )
    run.add_argument(
        "--head-to-head", type=int, metavar="PAIRS",
        help="after the plan, search the capacity of the best WSGI and the best ASGI server "
             "(highest mean capacity of each) in turn, PAIRS times each: A B, B A, ..., on "
             "freshly started servers. Best WSGI vs best ASGI then takes every search of the "
             "two, the plan's and these: more searches where the report's headline comparison "
             "needs them, without another round of every server (default: none)",
    )
    run.add_argument("--dry-run", action="store_true", help="print the plan and its estimate only")
    run.add_argument("--no-report", action="store_true", help="skip writing the report at the end")

    # -- harness load ------------------------------------------------------------------------
    load = sub.add_parser(
        "load",
        help="drive any URL with the built-in load generator (like wrk/wrk2)",
        description=(
            "Closed loop (--concurrency N: N keep-alive connections, each sends when its answer "
            "is complete) or open loop (--rate R: request i is due at start + i/R and its latency "
            "is timed from then, so stalls are not hidden)."
        ),
    )
    load.add_argument("url", help="http://HOST:PORT/PATH, or ws://HOST:PORT/PATH for a "
                      "WebSocket echo (a request is then one message round trip)")
    load.add_argument("--concurrency", "-c", type=int,
                      help="closed loop: number of connections (give one of -c and -R, except "
                           "for a WebSocket broadcast, which takes both)")
    load.add_argument("--rate", "-R", type=float, help="open loop: constant arrival rate, req/s")
    load.add_argument(
        "--duration", "-d", type=_duration, default=10.0, help="measured time (default 10s)"
    )
    load.add_argument(
        "--warmup", type=_duration, default=0.0,
        help="unrecorded warm-up (default 0s); in open loop the rate rises from 0 over its "
             "first half",
    )
    load.add_argument(
        "--timeout", type=_duration, default=5.0, help="per-request timeout (default 5s)"
    )
    load.add_argument("--procs", type=int, default=1, help="generator processes (default 1)")
    load.add_argument("--cpus", type=_cpus, help="pin generator processes to these CPUs")
    load.add_argument(
        "--max-connections", "--connections",
        type=int,
        help="open loop: cap on connections opened to keep up (default 10000); for ws:// "
             "URLs, the connections opened up front that carry the messages",
    )
    load.add_argument("--message-size", type=int, default=64,
                      help="ws://: bytes per message (default 64)")
    load.add_argument("--text", action="store_true",
                      help="ws://: text frames (the server validates UTF-8) instead of binary")
    load.add_argument("--ws-mode", choices=("echo", "broadcast", "idle"), default="echo",
                      help="ws://: echo round trips (default); broadcast (-c subscribers, -R "
                           "messages/s from one publisher, on /ws/broadcast); idle (-c "
                           "connections held, no message)")
    load.add_argument("--method", default="GET", help="HTTP method (default GET)")
    load.add_argument(
        "--header", "-H", action="append", default=[], help="'Name: value', repeatable"
    )
    load.add_argument("--body", default=None, help="request body")
    load.add_argument(
        "--expect-body", default=None, help="count a response with another body as an error"
    )
    load.add_argument("--json", action="store_true", help="print one JSON object instead of text")

    # -- harness servers / serve / verify / upstream -----------------------------------------
    servers = sub.add_parser(
        "servers", help="list the servers under test, their versions and presets"
    )
    servers.add_argument(
        "--cpus", type=_cpus, help="CPU set the presets are computed for (default: 1 CPU)"
    )

    serve = sub.add_parser("serve", help="start one target and keep it up until Ctrl-C")
    serve.add_argument("name", help="server name (see 'harness servers')")
    _add_app_options(serve, "raw")
    serve.add_argument(
        "--cpus", type=_cpus,
        help="CPUs to pin the server to (default: the upper half; on 2 cores CPU 1)",
    )
    _add_backend(serve)
    serve.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    serve.add_argument("--workers", type=int, help="override the worker preset")
    serve.add_argument("--threads", type=int, help="override the thread preset")
    serve.add_argument("--upstream-url", help="delay service for /io (default: start one)")

    verify = sub.add_parser("verify", help="check live servers against the app contract")
    verify.add_argument("--servers", type=_names, help="comma-separated names (default: all)")
    _add_app_options(verify, "raw")
    verify.add_argument(
        "--cpus", type=_cpus,
        help="CPUs to pin the servers to (default: the upper half; on 2 cores CPU 1)",
    )
    _add_backend(verify)

    upstream = sub.add_parser("upstream", help="run the upstream delay service (/delay?ms=N)")
    upstream.add_argument(
        "--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)"
    )
    upstream.add_argument("--cpus", type=_cpus, help="CPUs to pin it to")

    compose = sub.add_parser(
        "compose", help="Compose files kept in step with the catalogue; engine check")
    compose_sub = compose.add_subparsers(dest="action", required=True, metavar="ACTION",
                                         parser_class=_Parser)
    compose_sub.add_parser(
        "write", help="regenerate compose/docker-compose.yml and .dockerignore from the catalogue")
    compose_check = compose_sub.add_parser(
        "check", help="files in step with the catalogue; engine, Compose tool and the servers' "
                      "image (built if needed)")
    compose_check.add_argument("--files-only", action="store_true",
                               help="only compare the files (no engine needed)")

    worker = sub.add_parser(
        "locust-worker",
        help="a Locust worker for a harness run on another machine "
             "(--driver locust --locust-remote-workers N)")
    worker.add_argument("--master-host", required=True, help="the machine running harness run")
    worker.add_argument("--master-port", type=int, default=5557,
                        help="the master's port (default 5557)")
    worker.add_argument("--locustfile", type=Path, default=None,
                        help="the same locustfile the run uses, if any")

    # -- harness report ----------------------------------------------------------------------
    report = sub.add_parser("report", help="write report.html and report.md for a run folder")
    report.add_argument("run_dir", nargs="+", help="run folder(s); several are combined")
    report.add_argument("--out", help="where to write the report (default: the first run folder)")

    # -- harness compare ---------------------------------------------------------------------
    compare = sub.add_parser(
        "compare", help="does a second run confirm the first? their guidance side by side",
        description="Print both runs' guidance, sentence by sentence. A finding agrees when "
                    "its sentence names the same servers with the same verdict (a winner, 'no "
                    "significant difference', 'not ranked') in both; only figures differ. "
                    "Caveats are shown, not judged. Exit 0 when every finding agrees, 1 when "
                    "one differs, 2 on bad input.")
    compare.add_argument("run_a", help="a run folder")
    compare.add_argument("run_b", help="a run folder of the same plan")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    # each subcommand is the module of its name in harness.commands, with main(args) -> int
    module = importlib.import_module(f"harness.commands.{args.command.replace('-', '_')}")
    try:
        code: int = module.main(args)
    except UsageError as exc:
        print(f"harness {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("harness: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    return code


if __name__ == "__main__":
    sys.exit(main())

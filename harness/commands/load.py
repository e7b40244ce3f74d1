"""``harness load URL``: drive any URL with the built-in generator, like wrk / wrk2."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from harness.commands import options

if TYPE_CHECKING:
    from harness.loadgen import LoadSpec
    from harness.loadgen.spec import RequestKind

HELP = "drive any URL with the built-in load generator (like wrk/wrk2)"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    load = subparsers.add_parser(
        "load",
        help=HELP,
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
        "--duration", "-d", type=options.duration, default=10.0, help="measured time (default 10s)"
    )
    load.add_argument(
        "--warmup", type=options.duration, default=0.0,
        help="unrecorded warm-up (default 0s); in open loop the rate rises from 0 over its "
             "first half",
    )
    load.add_argument(
        "--timeout", type=options.duration, default=5.0, help="per-request timeout (default 5s)"
    )
    load.add_argument("--procs", type=int, default=1, help="generator processes (default 1)")
    load.add_argument("--cpus", type=options.cpus, help="pin generator processes to these CPUs")
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
    load.add_argument(
        "--mix", action="append", default=[], metavar="[NAME=]WEIGHT:PATH",
        help="a request mix: send PATH (on the URL's host) in proportion to WEIGHT, e.g. "
             "--mix light=95:/io?ms=20 --mix heavy=5:/cpu?n=3000; repeatable; each kind gets "
             "its own latency and errors (NAME defaults to PATH; --method, --body and "
             "--expect-body apply to every kind)")
    load.add_argument("--json", action="store_true", help="print one JSON object instead of text")
    return load


def parse_mix_entry(text: str, *, method: str, body: bytes,
                    expect_body: bytes | None) -> RequestKind:
    """``[NAME=]WEIGHT:PATH`` -> a RequestKind; anything else is a UsageError."""
    from harness.errors import UsageError
    from harness.loadgen.spec import RequestKind

    left, sep, path = text.partition(":")
    name, has_name, weight_text = left.rpartition("=") if "=" in left else ("", "", left)
    try:
        weight = float(weight_text)
    except ValueError:
        weight = float("nan")
    if not sep or not path or (has_name and not name) or weight != weight:
        raise UsageError(f"--mix {text!r}: expected [NAME=]WEIGHT:PATH, e.g. light=95:/io?ms=20")
    return RequestKind(name=name or path, path=path, weight=weight, method=method, body=body,
                       expect_body=expect_body)


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
    from harness.loadgen import LoadSpec, parse_header

    body = args.body.encode() if args.body is not None else b""
    expect_body = args.expect_body.encode() if args.expect_body is not None else None
    return LoadSpec(
        url=args.url,
        concurrency=args.concurrency,
        rate=args.rate,
        duration_s=args.duration,
        warmup_s=args.warmup,
        timeout_s=args.timeout,
        procs=args.procs,
        cpus=args.cpus,
        method=args.method.upper(),
        headers=tuple(parse_header(h) for h in args.header),
        body=body,
        expect_body=expect_body,
        max_connections=args.max_connections,
        message_size=args.message_size,
        text=args.text,
        websocket_mode=args.ws_mode,
        mix=tuple(parse_mix_entry(entry, method=args.method.upper(), body=body,
                                  expect_body=expect_body) for entry in args.mix),
    )


def main(args: argparse.Namespace) -> int:
    from harness.loadgen import check_reachable, run_load
    from harness.loadgen.text import header, render

    spec = spec_from_args(args)
    check_reachable(spec.target)  # before the banner, so bad input is one line
    if not args.json:
        print(header(spec), flush=True)
    result = run_load(spec)
    if args.json:
        print(json.dumps(result.to_json()))
    else:
        print(render(result))
    sys.stdout.flush()
    return 0

"""``harness load URL``: drive any URL with the built-in generator, like wrk / wrk2."""

from __future__ import annotations

import argparse
import json
import sys

from harness.loadgen import LoadSpec, check_reachable, parse_header, run_load
from harness.loadgen.report import header, render


def spec_from_args(args: argparse.Namespace) -> LoadSpec:
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
        body=args.body.encode() if args.body is not None else b"",
        expect_body=args.expect_body.encode() if args.expect_body is not None else None,
        max_connections=args.max_connections,
        message_size=args.message_size,
        text=args.text,
        websocket_mode=args.ws_mode,
    )


def main(args: argparse.Namespace) -> int:
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

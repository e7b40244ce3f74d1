"""The upstream delay service: ``GET /delay?ms=N`` answers ``OK`` after N milliseconds.

The ``/io`` endpoint of every app calls this service, so that waiting is real network I/O on
both sides. It must never be the bottleneck: aiohttp on uvloop (when installed), no access log,
a deep accept backlog, and keep-alive connections held for an hour so the apps' pools never
meet a closed connection. Its measured capacity is in apps/README.md.

Run it with ``python -m apps.upstream --port 0``: once bound it prints
``upstream listening on http://127.0.0.1:PORT`` (the real port) and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from aiohttp import web

DEFAULT_HOST = "127.0.0.1"
BACKLOG = 4096
KEEPALIVE_TIMEOUT_S = 3600.0
MAX_DELAY_MS = 600_000
READY_LINE_PREFIX = "upstream listening on "

DELAY_BODY = b"OK"


async def delay(request: web.Request) -> web.Response:
    text = request.query.get("ms", "0")
    if not (text.isascii() and text.isdigit()) or int(text) > MAX_DELAY_MS:
        return web.Response(status=400, content_type="text/plain",
                            text=f"Bad Request: ms must be an integer 0..{MAX_DELAY_MS}")
    ms = int(text)
    if ms:
        await asyncio.sleep(ms / 1000)
    return web.Response(body=DELAY_BODY, content_type="text/plain", charset="utf-8")


def make_app() -> web.Application:
    app = web.Application()
    app.router.add_get("/delay", delay)
    return app


async def serve(host: str, port: int, *, on_ready: Callable[[str], None]) -> None:
    """Serve until SIGINT or SIGTERM; ``on_ready`` gets the base URL once the socket is bound."""
    runner = web.AppRunner(make_app(), access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT_S,
                           handle_signals=False)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port, backlog=BACKLOG, reuse_address=True)
        await site.start()
        bound_host, bound_port = runner.addresses[0][:2]
        on_ready(f"http://{bound_host}:{bound_port}")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            for signum in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(signum)
    finally:
        await runner.cleanup()


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    """Run on uvloop when it is installed: the service must be cheaper than anything it serves."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(coroutine)
    else:
        uvloop.run(coroutine)


def _print_ready(url: str) -> None:
    print(f"{READY_LINE_PREFIX}{url}", flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m apps.upstream", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--host", default=DEFAULT_HOST, help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=0, help="port (default 0: a free one)")
    args = parser.parse_args(argv)
    run(serve(args.host, args.port, on_ready=_print_ready))
    return 0


if __name__ == "__main__":
    sys.exit(main())

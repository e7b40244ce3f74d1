"""The raw WSGI app (`apps.raw.wsgi:app`): the contract of apps/README.md, no framework.

``/io`` calls the upstream delay service through one urllib3 pool per process. The pool is made
on first use and remade when the process id changes, so a pool built before a fork (gunicorn
``--preload``, uWSGI's master) is never shared by workers, and under gevent it is built after
the monkey-patching, on cooperative sockets.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterable

import urllib3
from urllib3.exceptions import HTTPError

from apps.raw import common

try:
    from wsgiref.types import StartResponse, WSGIEnvironment
except ImportError:  # pragma: no cover - Python < 3.11 has only the typeshed names
    StartResponse = WSGIEnvironment = object  # type: ignore[assignment,misc]

_pool_lock = threading.Lock()
_pool: urllib3.PoolManager | None = None
_pool_pid = 0


def _upstream_pool() -> urllib3.PoolManager:
    global _pool, _pool_pid
    pid = os.getpid()
    pool = _pool
    if pool is not None and _pool_pid == pid:
        return pool
    with _pool_lock:
        if _pool is None or _pool_pid != pid:
            # block=False: past maxsize a request opens an extra connection instead of queueing
            # in the client; retries=False: a failed call is reported, not silently repeated.
            _pool = urllib3.PoolManager(num_pools=4, maxsize=common.UPSTREAM_POOL_MAXSIZE,
                                        block=False, retries=False)
            _pool_pid = pid
        return _pool


def _call_upstream(ms: int) -> common.Response | None:
    """None when the upstream answered 200 after its delay; otherwise the 502 to send."""
    base_url = common.upstream_base_url()
    if base_url is None:
        return common.upstream_not_configured()
    timeout = urllib3.Timeout(connect=common.UPSTREAM_CONNECT_TIMEOUT_S,
                              read=common.upstream_timeout_s(ms))
    try:
        upstream = _upstream_pool().request("GET", common.upstream_delay_url(base_url, ms),
                                            timeout=timeout)
    except (HTTPError, OSError):
        return common.upstream_unreachable(base_url)
    if upstream.status != 200:
        return common.upstream_bad_status(base_url, upstream.status)
    return None


def _wait(io: common.IoRequest) -> common.Response:
    if io.mode == "sleep":
        time.sleep(io.ms / 1000)
    else:
        failure = _call_upstream(io.ms)
        if failure is not None:
            return failure
    return common.io_ok(io)


def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
    answer = common.route(environ["REQUEST_METHOD"], environ.get("PATH_INFO", ""),
                          environ.get("QUERY_STRING", ""))
    response = _wait(answer) if isinstance(answer, common.IoRequest) else answer
    # A copy: some servers (wsgiref) add their own headers to the list they are given.
    start_response(response.status_line, list(response.header_pairs))
    return [response.body]

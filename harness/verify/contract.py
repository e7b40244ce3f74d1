"""The app contract of every family (apps/README.md): hello, json, 404, Date, /cpu (inline, on a
thread, in a process), /io, and the WebSocket routes."""

from __future__ import annotations

from apps.raw import common
from harness.checks import DEFAULT_TIMEOUT_S, VerifyReport
from harness.verify.probe import (
    CPU_CHECK_NS,
    CPU_OFFLOAD_CHECK_N,
    IO_CHECK_MS,
    NOT_FOUND_PATH,
    LiveTarget,
    check_date,
    expect,
    waited,
)
from harness.verify.websocket import (
    check_ws_broadcast,
    check_ws_echo,
)


def verify_target(base_url: str, *, websocket: bool, io: bool = True,
                  broadcast: bool | None = None,
                  timeout_s: float = DEFAULT_TIMEOUT_S) -> VerifyReport:
    """Check the live target at ``base_url`` against the app contract.

    ``io=False`` skips ``/io`` in upstream mode (no delay service is running); the sleep mode is
    always checked. ``websocket=False`` skips the echo and the broadcast (a WSGI server);
    ``broadcast`` (default: as ``websocket``) says whether ``/ws/broadcast`` is checked. Every
    request is bounded by ``timeout_s`` (which must exceed the ``/io`` wait of 100 ms).
    """
    target = LiveTarget(base_url, timeout_s)
    text, json_type = common.TEXT_PLAIN, common.APPLICATION_JSON
    checks = [
        expect(target, "hello", "/hello", status=200, content_type=text, body=common.HELLO_BODY),
        expect(target, "json", "/json", status=200, content_type=json_type,
                body=common.JSON_BODY),
        expect(target, "not_found", NOT_FOUND_PATH, status=404, content_type=text,
                body=common.NOT_FOUND_BODY),
        check_date(target),
    ]
    for n in CPU_CHECK_NS:
        checks.append(expect(target, f"cpu[n={n}]", f"/cpu?n={n}", status=200,
                              content_type=json_type, body=common.cpu_body(n, common.cpu_work(n))))
    # The same bytes wherever the work runs (a WSGI app runs it inline whatever it is asked).
    n = CPU_OFFLOAD_CHECK_N
    for offload in common.CPU_OFFLOADS:
        checks.append(expect(target, f"cpu[offload={offload}]", f"/cpu?n={n}&offload={offload}",
                              status=200, content_type=json_type,
                              body=common.cpu_body(n, common.cpu_work(n))))
    checks.append(expect(target, "cpu_bad_offload", f"/cpu?n={n}&offload=bogus", status=400,
                          content_type=text, body=common.BAD_OFFLOAD.body))
    for name, path in (("cpu_bad_n", "/cpu?n=-1"), ("io_bad_ms", "/io?ms=abc"),
                       ("io_bad_mode", "/io?ms=1&mode=nap")):
        query = path.partition("?")[2]
        rejected = common.parse_cpu(query) if path.startswith("/cpu") else common.parse_io(query)
        assert isinstance(rejected, common.Response)
        checks.append(expect(target, name, path, status=400, content_type=text,
                              body=rejected.body))
    ms = IO_CHECK_MS
    checks.append(expect(target, "io_sleep", f"/io?ms={ms}&mode=sleep", status=200,
                          content_type=json_type, body=common.io_body(ms, "sleep"),
                          extra=waited(ms)))
    if io:
        checks.append(expect(target, "io_upstream", f"/io?ms={ms}", status=200,
                              content_type=json_type, body=common.io_body(ms, "upstream"),
                              extra=waited(ms)))
    if websocket:
        checks.append(check_ws_echo(target))
        if broadcast is None or broadcast:
            checks.append(check_ws_broadcast(target))
    return VerifyReport(checks=tuple(checks))

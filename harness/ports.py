"""Choosing the TCP port a server listens on (every backend, the Locust master)."""

from __future__ import annotations

import re
import socket

from harness.catalogue import HOST
from harness.errors import UsageError

# A free port picked here can be taken by someone else before the server binds it: a start
# whose output says so is tried again on another free port, this many times in all.
PORT_ATTEMPTS = 3
PORT_IN_USE_RE = re.compile(r"address already in use|errno 98|eaddrinuse|port is already in use",
                            re.IGNORECASE)


def free_port(host: str = HOST) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_is_free(port: int, host: str = HOST) -> bool:
    """Whether a server could listen on the port now (SO_REUSEADDR, as servers bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
            sock.listen(1)
        except OSError:
            return False
    return True


def choose_port(port: int, host: str = HOST) -> tuple[int, str]:
    """Port 0 -> a free port; a port in use -> another free one, and a note that says so."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port: expected 0..65535 (0 picks a free port), got {port}")
    if port == 0:
        return free_port(host), ""
    if port_is_free(port, host):
        return port, ""
    other = free_port(host)
    return other, f"Port taken: {host}:{port} is in use, so another free port is used: {other}"

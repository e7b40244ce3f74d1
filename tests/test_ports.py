"""Port choice and the launch-again-on-another-port rule every backend shares (unit tests:
the launches are fakes; the real servers' port handling is in test_backend_local.py)."""

from __future__ import annotations

import socket
from collections.abc import Sequence

import pytest

from harness.backends.base import ResourceSampler, RunningTarget, start_until_ready
from harness.errors import TargetError, UsageError
from harness.ports import PORT_ATTEMPTS, choose_port, port_is_free


class Launched(RunningTarget):
    def __init__(self, port: int) -> None:
        super().__init__()
        self.name, self.url, self.command, self.cpus, self.notes = (
            "fake", f"http://127.0.0.1:{port}", [], (0,), [])
        self.port = port
        self.stops = 0

    def alive(self) -> bool:
        return not self._stopped

    def log_tail(self) -> str:
        return ""

    def exit_reason(self) -> str:
        return "stopped"

    def _stop_now(self) -> None:
        self.stops += 1

    def sampler(self, *, watch_cpus: Sequence[int] = (),
                census_after_s: float | None = None) -> ResourceSampler:
        raise NotImplementedError


def test_a_port_taken_before_the_server_bound_it_is_replaced_and_noted() -> None:
    launched: list[Launched] = []

    def launch(port: int) -> Launched:
        launched.append(Launched(port))
        return launched[-1]

    def ready(running: Launched) -> None:
        if running is launched[0]:
            raise TargetError("[Errno 98] Address already in use")

    notes: list[str] = []
    running = start_until_ready("fake", 5555, notes, launch, ready)
    assert running is launched[1] and running.port != 5555
    assert launched[0].stops == 1 and running.stops == 0
    assert notes == [f"Port taken: port 5555 was taken before fake bound it, so another free "
                     f"port is used: {running.port}"]


def test_other_failures_stop_what_was_launched_and_are_not_retried() -> None:
    launched: list[Launched] = []

    def launch(port: int) -> Launched:
        launched.append(Launched(port))
        return launched[-1]

    def never(running: Launched) -> None:
        raise TargetError("ModuleNotFoundError: No module named 'app'")

    with pytest.raises(TargetError, match="No module named"):
        start_until_ready("fake", 5555, [], launch, never)
    assert len(launched) == 1 and launched[0].stops == 1

    def interrupted(running: Launched) -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        start_until_ready("fake", 5555, [], launch, interrupted)
    assert launched[-1].stops == 1


def test_a_port_that_stays_taken_gives_up_after_the_attempts() -> None:
    launched: list[Launched] = []

    def launch(port: int) -> Launched:
        launched.append(Launched(port))
        return launched[-1]

    def taken(running: Launched) -> None:
        raise TargetError("address already in use")

    with pytest.raises(TargetError):
        start_until_ready("fake", 5555, [], launch, taken)
    assert len(launched) == PORT_ATTEMPTS and all(r.stops == 1 for r in launched)


def test_choose_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        taken = holder.getsockname()[1]
        assert not port_is_free(taken)
        other, note = choose_port(taken)
        assert other != taken and note.startswith(f"Port taken: 127.0.0.1:{taken} is in use")
    port, note = choose_port(0)
    assert port > 0 and note == ""
    with pytest.raises(UsageError, match=r"expected 0\.\.65535"):
        choose_port(70000)

"""The seams: a backend, a driver and a load model are each one class plus one registry entry.

Each fake here is registered through the very registry the CLI resolves names from, then used
by name: ``harness run --backend recording --driver counting`` and a worker whose plan names
the load model ``exactly-n``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import pytest

from harness import cli
from harness.backends import BACKENDS
from harness.backends.local import LocalBackend, RunningServer
from harness.catalogue import Target
from harness.drivers import DRIVERS
from harness.errors import UsageError
from harness.loadgen import LoadResult, LoadSpec, run_load
from harness.loadgen.connection import Connection
from harness.loadgen.launch import new_loop
from harness.loadgen.models import LOAD_MODELS, LoadModel, WorkerPlan
from harness.loadgen.spec import encode_request, parse_url
from harness.loadgen.worker import Worker
from harness.registry import Registry
from harness.results import read_meta, read_trials_rows
from tests.runhelpers import start_test_server


class RecordingBackend(LocalBackend):
    """The local backend, remembering what it was asked to start."""

    name = "recording"
    started: ClassVar[list[str]] = []

    def start_target(self, target: Target, *, cpus: Sequence[int], port: int = 0,
                     upstream_url: str | None = None, db_url: str | None = None,
                     task_log: bool = False) -> RunningServer:
        RecordingBackend.started.append(target.server.name)
        return super().start_target(target, cpus=cpus, port=port, upstream_url=upstream_url,
                                      db_url=db_url, task_log=task_log)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name, "started": list(self.started)}


class CountingDriver:
    """The built-in generator, counting its loads."""

    name = "counting"
    loads = 0

    def measure(self, spec: LoadSpec) -> LoadResult:
        CountingDriver.loads += 1
        return run_load(spec)

    def describe(self) -> dict[str, Any]:
        return {"name": self.name}

    def supports(self, spec: LoadSpec) -> str | None:
        return None


class ExactlyN(LoadModel):
    """One connection, exactly ``plan.concurrency`` requests, one after another."""

    name = "exactly-n"

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.sent = 0

    def cap(self) -> int:
        return 1

    def initial_connections(self) -> int:
        return 1

    def start(self, start_ns: int) -> None:
        self.started = True
        conn = self.pool.take_idle()
        if conn is not None:
            self.ready(conn, start_ns)

    def ready(self, conn: Connection, now: int) -> None:
        if self.started and self.sent < (self.plan.concurrency or 0):
            self.sent += 1
            self.send(conn, now, now)
        else:
            self.pool.idle.append(conn)

    def replenish(self) -> None:
        self.pool.open()


@pytest.fixture
def registered() -> Iterator[None]:
    BACKENDS.register("recording", RecordingBackend)
    DRIVERS.register("counting", CountingDriver)  # type: ignore[arg-type]
    LOAD_MODELS.register("exactly-n", ExactlyN)
    try:
        yield
    finally:
        BACKENDS.unregister("recording")
        DRIVERS.unregister("counting")
        LOAD_MODELS.unregister("exactly-n")


@pytest.mark.e2e
def test_run_uses_a_backend_and_a_driver_registered_by_name(
        registered: None, tmp_path: Path) -> None:
    RecordingBackend.started = []
    CountingDriver.loads = 0
    out = tmp_path / "run"
    code = cli.main(["run", "--scenario", "hello", "--servers", "uvicorn", "--concurrency", "2",
                     "--duration", "0.5s", "--warmup", "0s", "--backend", "recording",
                     "--driver", "counting", "--out", str(out), "--no-report"])
    assert code == 0
    assert RecordingBackend.started == ["uvicorn"]
    assert CountingDriver.loads == 1
    meta = read_meta(out)
    assert meta["backend"]["name"] == "recording" and meta["driver"]["name"] == "counting"
    assert [r["status"] for r in read_trials_rows(out)] == ["ok"]


@pytest.mark.e2e
def test_a_load_model_registered_by_name_drives_the_pool() -> None:
    proc, base = start_test_server()
    try:
        target = parse_url(base + "/")
        spec = LoadSpec(url=base + "/", concurrency=1, duration_s=2.0)
        plan = WorkerPlan(load_model="exactly-n", host=target.host, port=target.port,
                          request=encode_request(spec), expect_body=None, concurrency=7,
                          rate=None, proc=0, procs=1, max_connections=1, warmup_ns=0,
                          duration_ns=2_000_000_000, timeout_ns=2_000_000_000)
        LOAD_MODELS.register("exactly-n", ExactlyN)
        loop = new_loop()
        try:
            worker = Worker(plan, loop)
            assert isinstance(worker.model, ExactlyN)
            assert loop.run_until_complete(worker.connect()) == 1
            report = loop.run_until_complete(worker.run(time.monotonic_ns()))
        finally:
            loop.close()
            LOAD_MODELS.unregister("exactly-n")
    finally:
        proc.kill()
        proc.wait(5)
    assert report.requests == 7 and report.errors["total"] == 0


@pytest.mark.parametrize("flag", ["--backend", "--driver"])
def test_unknown_names_are_one_line_errors(flag: str, capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.main(["run", "--scenario", "hello", flag, "locall", "--dry-run"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "expected one of" in err, err


def test_registry_suggests_a_close_name() -> None:
    registry: Registry[object] = Registry("thing", {"local": "builtins:len"})
    with pytest.raises(UsageError, match=r"unknown thing 'locall' \(did you mean 'local'\?\)"):
        registry.get("locall")
    assert registry.get("local") is len  # resolved lazily from the import string

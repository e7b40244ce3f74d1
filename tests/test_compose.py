"""The compose backend: the generated files, and real containers on a Docker engine.

Without an engine, the generated-file check, the command rendering and the error messages run;
the engine tests skip with the reason. One image build serves the whole session (the engine
caches it across sessions: its tag is a hash of what it is built from). After every test,
nothing of the harness is left on the engine: no container, no network.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import psycopg
import pytest

from apps import dbcontract
from harness import compose_file
from harness.backends import BACKENDS, compose
from harness.backends.compose import ComposeBackend, ContainerTarget
from harness.catalogue import (
    APPS,
    REPO_DIR,
    SERVERS,
    get_server,
    make_target,
    render_command,
)
from harness.commands import compose as compose_command
from harness.errors import TargetError, UsageError
from harness.loadgen import LoadSpec, run_load
from harness.services import database
from harness.verify import verify_database
from tests.runhelpers import harness_cmd, http_get

ENGINE_SCRIPT = REPO_DIR.parent / "shared" / "docker" / "local-engine.sh"
SERVER_CPUS = (1,) if (os.cpu_count() or 1) > 1 else (0,)
LOADGEN_CPUS = (0,)
GONE_TIMEOUT_S = 40.0
POLL_S = 0.1


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        time.sleep(POLL_S)


# -- without an engine -----------------------------------------------------------------------


def test_committed_files_match_the_catalogue() -> None:
    stale = [str(p.relative_to(REPO_DIR)) for p in compose_file.stale_files()]
    assert not stale, f"{stale} differ from the catalogue: run 'harness compose write'"


def test_committed_file_has_a_service_per_server_the_upstream_and_the_database() -> None:
    yaml = pytest.importorskip("yaml")  # PyYAML comes with uvicorn[standard]
    doc = yaml.safe_load(compose_file.COMPOSE_FILE.read_text())
    assert doc == compose_file.document(compose_file.default_services(),
                                        image=compose_file.COMMITTED_IMAGE,
                                        build=compose_file.committed_build())
    services = doc["services"]
    own = {compose_file.UPSTREAM_SERVICE, compose_file.DATABASE_SERVICE}
    assert set(services) == {*own, *SERVERS}
    for name, service in services.items():
        assert service["network_mode"] == "host"
        assert service["cpuset"] == ("0" if name in own else "1")
        assert service["build"]["network"] == "host"
        assert service["environment"]["PYTHONPATH"] == "/app"
    ports = [s["command"] for s in services.values()]
    assert len({tuple(c) for c in ports}) == len(ports)


@pytest.mark.parametrize("server_name", list(SERVERS))
def test_container_command_is_the_local_command_with_the_container_python(
        server_name: str) -> None:
    target = make_target(get_server(server_name), app="raw", cpus=2)
    spec = compose_file.target_service(target, name="x", port=8123, cpus=(2, 3),
                                       upstream_url="http://127.0.0.1:9", backlog=77)
    local = render_command(target, port=8123, backlog=77)
    python = sys.executable
    bindir = str(Path(python).parent)
    expected = [compose_file.CONTAINER_PYTHON if part == python else
                part.replace(bindir, "/opt/venv/bin").replace(str(REPO_DIR), "/app")
                for part in local]
    assert spec.command == expected
    assert spec.environment["HARNESS_UPSTREAM_URL"] == "http://127.0.0.1:9"
    service = spec.to_dict(image="img")
    assert service["cpuset"] == "2,3" and service["network_mode"] == "host"
    assert "127.0.0.1" in " ".join(spec.command) and "77" in spec.command[-12:] + [
        p.split("backlog=")[-1] for p in spec.command]


def test_family_environment_and_paths_reach_the_container() -> None:
    family = next((f for f in APPS.values() if f.env), None)
    if family is None:
        pytest.skip("no app family with an environment in the catalogue")
    gateway = next(iter(family.modules))
    server = next(s for s in SERVERS.values() if s.gateway == gateway)
    target = make_target(server, app=family, cpus=1)
    spec = compose_file.target_service(target, name="x", port=1, cpus=(1,))
    assert {k: spec.environment[k] for k in family.env} == dict(family.env)


def test_database_service_runs_the_wheels_postgres_unprivileged_without_a_volume() -> None:
    spec = compose_file.database_service(name="db", port=5499, cpus=(0, 1), connections=33,
                                         labels={"a": "b"})
    service = spec.to_dict(image="img")
    assert service["user"] == database.UNPRIVILEGED_USER != "root"
    assert service["cpuset"] == "0,1" and service["network_mode"] == "host"
    # PostgreSQL's fast shutdown: TERM would wait for the targets' pools to disconnect
    assert service["stop_signal"] == "SIGINT"
    assert "volumes" not in service and service["labels"] == {"a": "b"}
    assert spec.command[:2] == [compose_file.CONTAINER_PYTHON, "-c"]
    assert spec.command[-2:] == ["5499", "33"]
    assert "init_cluster" in spec.command[2] and "server_command" in spec.command[2]
    assert service["environment"]["PYTHONPATH"] == "/app"
    # the targets keep the image's user and TERM
    target = compose_file.target_service(make_target(get_server("uvicorn"), app="raw", cpus=1),
                                         name="x", port=1, cpus=(1,)).to_dict(image="img")
    assert "user" not in target and target["stop_signal"] == "SIGTERM"


def test_no_database_on_an_engine_elsewhere(monkeypatch: pytest.MonkeyPatch) -> None:
    """Its cluster trusts loopback only: the harness here could not reach it."""
    backend = ComposeBackend()
    monkeypatch.setattr(backend, "check", lambda: None)
    backend.remote = "servers.example"
    with pytest.raises(UsageError, match=r"servers\.example.*--db-url"):
        backend.start_database(cpus=(0,), connections=20)


def test_yaml_writer_quotes_every_string() -> None:
    yaml = pytest.importorskip("yaml")
    doc = {"a": {"no": "no", "one": "1", "list": ["on", "x y"], "empty": {}, "flag": True}}
    assert yaml.safe_load(compose_file.render_yaml(doc)) == doc


def test_context_hash_follows_every_file(tmp_path: Path) -> None:
    for name in ("harness", "apps", "compose"):
        (tmp_path / name).mkdir()
    (tmp_path / "compose" / "Dockerfile").write_text("FROM x\n")
    (tmp_path / "pyproject.toml").write_text("[project]\n")
    (tmp_path / "apps" / "a.py").write_text("A = 1\n")
    first = compose_file.context_hash(base_image="b", root=tmp_path)
    (tmp_path / "apps" / "__pycache__").mkdir()
    (tmp_path / "apps" / "__pycache__" / "a.cpython-311.pyc").write_bytes(b"x")
    assert compose_file.context_hash(base_image="b", root=tmp_path) == first
    (tmp_path / "apps" / "a.py").write_text("A = 2\n")
    second = compose_file.context_hash(base_image="b", root=tmp_path)
    assert second != first
    assert compose_file.context_hash(base_image="other", root=tmp_path) != second


def test_no_engine_is_one_line_naming_docker_host(monkeypatch: pytest.MonkeyPatch,
                                                  tmp_path: Path) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    with pytest.raises(UsageError) as info:
        ComposeBackend().check()
    message = str(info.value)
    assert "\n" not in message
    assert f"DOCKER_HOST=unix://{tmp_path}/none.sock" in message and "start one" in message


def test_a_failed_build_names_the_step_and_its_last_lines() -> None:
    class Images:
        def get(self, name: str) -> Any:
            from docker.errors import ImageNotFound
            raise ImageNotFound(name)

    class Api:
        def build(self, **kwargs: Any) -> Iterator[dict[str, str]]:
            yield {"stream": "Step 1/3 : FROM base\n"}
            yield {"stream": "Step 2/3 : RUN pip install nothing-such\n"}
            yield {"stream": "ERROR: No matching distribution found for nothing-such\n"}
            yield {"error": "The command '/bin/sh -c pip install' returned a non-zero code: 1"}

    class Client:
        images = Images()
        api = Api()

    with pytest.raises(UsageError) as info:
        compose.build_image(Client(), base_image="base")
    message = str(info.value)
    assert "Step 2/3 : RUN pip install nothing-such" in message
    assert "No matching distribution found" in message and "non-zero code" in message


def test_engine_address_is_none_for_this_machine() -> None:
    assert compose.engine_address("unix:///var/run/docker.sock") is None
    assert compose.engine_address("tcp://127.0.0.1:2375") is None
    assert compose.engine_address("tcp://10.0.0.5:2376") == "10.0.0.5"
    assert compose.engine_address("ssh://me@servers.example") == "servers.example"


def test_backend_is_registered() -> None:
    assert BACKENDS.get("compose") is ComposeBackend


def test_compose_command_checks_the_files(capsys: pytest.CaptureFixture[str]) -> None:
    code = compose_command.main(argparse.Namespace(action="check", files_only=True))
    assert code == 0, capsys.readouterr().err
    assert "match the catalogue" in capsys.readouterr().out


# -- with an engine --------------------------------------------------------------------------


def _engine_error() -> str | None:
    try:
        compose.connect()
    except UsageError as exc:
        return str(exc)
    return None


@pytest.fixture(scope="session")
def engine() -> str:
    """A reachable engine: DOCKER_HOST's, or the repository's local one started once."""
    error = _engine_error()
    if error is not None and ENGINE_SCRIPT.exists():
        done = subprocess.run(
            ["bash", "-c", f"source {ENGINE_SCRIPT} start >&2 && "
                           "echo DOCKER_HOST=$DOCKER_HOST && "
                           "echo HARNESS_BASE_IMAGE=$HARNESS_BASE_IMAGE"],
            capture_output=True, text=True, check=False, timeout=900)
        for line in done.stdout.splitlines():
            key, _, value = line.partition("=")
            if key in ("DOCKER_HOST", "HARNESS_BASE_IMAGE") and value:
                os.environ[key] = value
        error = _engine_error()
        if error is not None:
            error += f" ({ENGINE_SCRIPT.name}: {done.stderr.strip().splitlines()[-1:]})"
    if error is not None:
        pytest.skip(f"no Docker engine: {error}")
    try:
        compose.find_compose()
    except UsageError as exc:
        pytest.skip(str(exc))
    return os.environ.get("DOCKER_HOST", compose.DEFAULT_DOCKER_HOST)


@pytest.fixture(scope="session")
def backend(engine: str) -> Iterator[ComposeBackend]:
    """One backend (one image build, one run id) for the session; nothing left at the end."""
    started = time.monotonic()
    with ComposeBackend() as instance:
        sys.stderr.write(f"\ncompose image {instance.image}: "
                         f"{'built' if instance.image_built else 'cached'} in "
                         f"{time.monotonic() - started:.0f}s\n")
        yield instance
    assert instance.leftovers() == []
    client = compose.connect()
    mine = client.containers.list(all=True, ignore_removed=True, filters={
        "label": f"{compose.LABEL_OWNER}={socket.gethostname()}:{os.getpid()}"})
    assert [c.name for c in mine] == []


@pytest.fixture(scope="module")
def upstream(backend: ComposeBackend) -> Iterator[ContainerTarget]:
    with backend.start_upstream(cpus=LOADGEN_CPUS) as up:
        yield up


@pytest.fixture
def no_leftovers(backend: ComposeBackend, upstream: ContainerTarget) -> Iterator[None]:
    """After the test: nothing of this run on the engine but the module's upstream."""
    yield
    left = [name for name in backend.leftovers() if name != upstream.container.name]
    assert left == []


@pytest.mark.e2e
@pytest.mark.docker
def test_upstream_container_answers_on_its_cpus(upstream: ContainerTarget) -> None:
    assert http_get(upstream.url, "/delay?ms=0") == (200, b"OK")
    assert upstream.port > 0 and upstream.alive()
    procs = upstream.processes() or _cgroup_processes(upstream)
    assert procs and all(tuple(p.cpu_affinity()) == LOADGEN_CPUS for p in procs)


def _cgroup_processes(running: ContainerTarget) -> list[psutil.Process]:
    running._procs_path = running._procs_path or running.cgroup_procs()
    return running.processes()


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_io_bound_physics_match_local_and_the_container_is_sampled(
        backend: ComposeBackend, upstream: ContainerTarget) -> None:
    """50 ms of upstream I/O: 3 sync workers cap at 60 req/s; an event loop does not. The
    containers are pinned, run the local command with the image's Python, and are sampled."""
    rates = {}
    for name in ("gunicorn-sync", "uvicorn"):
        target = make_target(get_server(name), app="raw", cpus=len(SERVER_CPUS))
        with backend.start_target(target, cpus=SERVER_CPUS, upstream_url=upstream.url) as srv:
            info = srv.container.attrs["HostConfig"]
            assert info["CpusetCpus"] == ",".join(map(str, SERVER_CPUS))
            assert info["NetworkMode"] == "host"
            assert srv.container.labels[compose.LABEL_RUN] == backend.run_id
            assert srv.command[0] == compose_file.CONTAINER_PYTHON and "--backlog" in srv.command
            sampler = srv.sampler(watch_cpus=LOADGEN_CPUS)
            procs = srv.processes()
            assert procs and all(tuple(p.cpu_affinity()) == SERVER_CPUS for p in procs)
            assert all("docker-init" not in " ".join(p.cmdline()) for p in procs)
            sampler.start()
            result = run_load(LoadSpec(url=srv.url + "/io?ms=50", concurrency=64,
                                       duration_s=3.0, warmup_s=0.5, cpus=LOADGEN_CPUS))
            usage = sampler.stop()
            rates[name] = result.achieved_rps
            t0, t1 = result.window_start_ns, result.window_end_ns
            cpu = usage.cpu_pct(t0, t1)
            rss, pss = usage.peak_mb(t0, t1)
            assert cpu is not None and cpu > 1
            assert rss is not None and 10 < rss < 1000 and pss is not None and 0 < pss <= rss
            assert usage.watched_busy_pct(t0, t1) is not None
            if name == "uvicorn":
                # the engine's stats API (for an engine elsewhere) reads the container too
                stats = srv.sampler(watch_cpus=LOADGEN_CPUS, engine_stats=True)
                stats.start()
                run_load(LoadSpec(url=srv.url + "/hello", concurrency=16, duration_s=1.5,
                                  cpus=LOADGEN_CPUS))
                by_api = stats.stop()
                # the API's samples come late and coarse on this engine (vfs): that it reads the
                # container's CPU and memory at all is what is checked
                assert by_api.samples[-1].cpu_s > 0.05 and 10 < by_api.samples[-1].rss_mb < 1000
                assert by_api.samples[-1].pss_mb is None
            name_ = srv.container.name
        assert not srv.alive() and name_ not in backend.leftovers()
    assert rates["gunicorn-sync"] <= 60.0 * 1.05, rates
    assert rates["uvicorn"] >= 5 * rates["gunicorn-sync"], rates


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_port_in_use_a_stale_container_and_a_container_that_dies(
        backend: ComposeBackend, upstream: ContainerTarget) -> None:
    target = make_target(get_server("uvicorn"), app="raw", cpus=len(SERVER_CPUS))
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        srv = backend.start_target(target, cpus=SERVER_CPUS, port=port,
                                   upstream_url=upstream.url)
    try:
        assert srv.port != port and any("Port taken" in n for n in srv.notes)
        # a later run (another backend) finds this container on the port: it is named
        later = ComposeBackend()
        try:
            later.check()
            with pytest.raises(UsageError, match=srv.container.name):
                later.start_target(target, cpus=SERVER_CPUS, port=srv.port)
        finally:
            later.close()
        # the container dies mid-trial: seen dead, with why
        srv.container.kill(signal="SIGKILL")
        wait_until(lambda: not srv.alive(), 10, "the killed container to be seen dead")
        assert "exited" in srv.exit_reason() and "137" in srv.exit_reason()
    finally:
        srv.stop()
    assert srv.container.name not in backend.leftovers()


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_a_server_that_cannot_start_gives_its_output(backend: ComposeBackend,
                                                      upstream: ContainerTarget) -> None:
    family = APPS["raw"]
    broken = type(family)(name="broken", modules={"wsgi": "apps.no_such_module:app"})
    target = make_target(get_server("gunicorn-sync"), app=broken, cpus=len(SERVER_CPUS))
    with pytest.raises(TargetError, match=r"exited \(exit code [1-9]\d*\); its output ends"):
        backend.start_target(target, cpus=SERVER_CPUS, upstream_url=upstream.url)


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.usefixtures("no_leftovers")
def test_database_container_is_seeded_serves_both_gateways_and_goes(
        backend: ComposeBackend, upstream: ContainerTarget) -> None:
    """The scratch PostgreSQL in a container: pinned, unprivileged, no volume, seeded; a WSGI
    and an ASGI target given its URL answer the database routes with its rows; stopped, the
    container (and with it the data) is gone."""
    targets = [make_target(get_server(name), app="raw", cpus=len(SERVER_CPUS))
               for name in ("gunicorn-sync", "uvicorn")]
    connections = database.max_connections(t.db_connections for t in targets)
    with backend.start_database(cpus=LOADGEN_CPUS, connections=connections) as db:
        assert db.url == database.local_url(db.port) and db.port > 0 and db.alive()
        attrs = db.container.attrs
        assert attrs["HostConfig"]["CpusetCpus"] == ",".join(map(str, LOADGEN_CPUS))
        assert attrs["HostConfig"]["NetworkMode"] == "host"
        assert attrs["Config"]["User"] == database.UNPRIVILEGED_USER
        assert attrs["Config"]["Image"] == backend.image
        assert not attrs["Mounts"]
        assert db.container.labels[compose.LABEL_RUN] == backend.run_id
        procs = _cgroup_processes(db)
        assert any("postgres" in p.name() for p in procs)
        assert all(p.uids().real != 0 and tuple(p.cpu_affinity()) == LOADGEN_CPUS
                   for p in procs)
        with psycopg.connect(db.url) as conn:
            assert conn.execute("SELECT count(*) FROM world").fetchone() == (
                dbcontract.WORLD_ROWS,)
            assert conn.execute("SELECT count(*) FROM fortune").fetchone() == (
                len(dbcontract.FORTUNES),)
            assert conn.execute("SHOW max_connections").fetchone() == (str(connections),)
        for target in targets:
            with backend.start_target(target, cpus=SERVER_CPUS, upstream_url=upstream.url,
                                      db_url=db.url) as srv:
                report = verify_database(srv.url, db.url)
                assert report.ok, [(c.name, c.detail) for c in report.failures]
        name = db.container.name
    assert not db.alive() and name not in backend.leftovers()
    assert not database.accepts(database.local_url(db.port, database.SUPERUSER))


def _owned_by(pid: int) -> list[str]:
    client = compose.connect()
    label = f"{compose.LABEL_OWNER}={socket.gethostname()}:{pid}"
    return [c.name for c in client.containers.list(all=True, ignore_removed=True,
                                                    filters={"label": label})]


@pytest.mark.e2e
@pytest.mark.docker
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "sigkill"])
def test_nothing_survives_the_harness(upstream: ContainerTarget, how: signal.Signals) -> None:
    """``harness serve --backend compose`` interrupted or killed: its container is removed
    (SIGKILL: by the watchdog). SIGTERM takes Ctrl-C's path in serve and run."""
    proc = subprocess.Popen(harness_cmd("serve", "uvicorn", "--backend", "compose",
                                        "--upstream-url", upstream.url),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            cwd=REPO_DIR)
    try:
        assert proc.stdout is not None
        lines = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("Ctrl-C stops it"):
                break
        else:
            raise AssertionError("harness serve did not come up:\n" + "".join(lines))
        assert len(_owned_by(proc.pid)) == 1, "".join(lines)
        proc.send_signal(how)
        proc.wait(timeout=60)
        wait_until(lambda: not _owned_by(proc.pid), GONE_TIMEOUT_S,
                   f"no container of the harness after {how.name}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

"""The catalogue as data: names, presets and their doc rules, commands, capabilities, versions."""

from __future__ import annotations

import dataclasses
import sys

import pytest

from harness import catalogue
from harness.catalogue import (
    SERVERS,
    MissingPackageError,
    get_server,
    make_target,
    preset_for,
    render_command,
    require_installed,
    supports,
)
from harness.errors import TargetError, UsageError

ALL_NAMES = (
    "gunicorn-sync", "gunicorn-gthread", "gunicorn-gevent", "uwsgi", "granian-wsgi",
    "uvicorn", "uvicorn-h11", "gunicorn-uvicorn", "gunicorn-asgi", "hypercorn", "daphne",
    "granian-asgi",
)


def test_the_twelve_servers_by_exact_name() -> None:
    assert tuple(SERVERS) == ALL_NAMES
    for name, server in SERVERS.items():
        assert server.name == name
        assert server.gateway in ("wsgi", "asgi")
        # WebSocket exactly where the gateway can carry it
        assert server.websocket == (server.gateway == "asgi")
        assert server.preset.note


def test_unknown_server_lists_every_known_name() -> None:
    with pytest.raises(UsageError) as info:
        get_server("gunicorn-turbo")
    message = str(info.value)
    assert "gunicorn-turbo" in message
    for name in ALL_NAMES:
        assert name in message
    assert "\n" not in message


def test_unknown_app_family_lists_the_known_ones() -> None:
    with pytest.raises(UsageError, match=r"unknown app family 'bottle'.*raw.*django"):
        make_target(get_server("uvicorn"), app="bottle")


@pytest.mark.parametrize(("name", "cpus", "workers", "threads"), [
    ("gunicorn-sync", 1, 3, None),
    ("gunicorn-sync", 2, 5, None),
    ("gunicorn-gthread", 1, 3, 2),
    ("gunicorn-gthread", 4, 9, 8),
    ("gunicorn-gevent", 2, 5, 1000),
    ("uwsgi", 1, 3, 2),
    ("uwsgi", 2, 5, 2),
    ("granian-wsgi", 2, 2, None),
    ("uvicorn", 1, 1, None),
    ("uvicorn", 4, 4, None),
    ("uvicorn-h11", 2, 2, None),
    ("gunicorn-uvicorn", 2, 5, None),
    ("gunicorn-asgi", 1, 1, None),  # its ASGI docs: --workers $(nproc), not 2N + 1
    ("gunicorn-asgi", 4, 4, None),
    ("hypercorn", 2, 2, None),
    ("daphne", 1, 1, None),
    ("daphne", 8, 1, None),  # single-process whatever the budget
    ("granian-asgi", 3, 3, None),
])
def test_presets_follow_each_servers_documented_rule(name: str, cpus: int, workers: int,
                                                     threads: int | None) -> None:
    preset = preset_for(get_server(name), cpus)
    assert (preset.workers, preset.threads) == (workers, threads)
    assert preset.cpus == cpus
    assert preset.overridden == ()


def test_preset_notes_cite_the_rule() -> None:
    assert "(2 x $num_cores) + 1" in get_server("gunicorn-sync").preset.note
    assert "2-4 x $(NUM_CORES)" in get_server("gunicorn-gthread").preset.note
    assert "worker_connections" in get_server("gunicorn-gevent").preset.note
    assert "single-process" in get_server("daphne").preset.note
    assert "CPU cores" in get_server("granian-asgi").preset.note
    assert "no magic rule" in get_server("uwsgi").preset.note
    assert "--workers $(nproc)" in get_server("gunicorn-asgi").preset.note


def test_overrides_replace_the_preset_and_are_recorded() -> None:
    target = make_target(get_server("gunicorn-gthread"), cpus=1, workers=2, threads=16)
    assert (target.preset.workers, target.preset.threads) == (2, 16)
    assert target.preset.overridden == ("workers", "threads")
    record = target.to_dict()
    assert record["workers"] == 2 and record["threads"] == 16
    assert record["overridden"] == ["workers", "threads"]
    # an override equal to the preset is no override
    same = make_target(get_server("gunicorn-sync"), cpus=1, workers=3)
    assert same.preset.overridden == ()


@pytest.mark.parametrize(("name", "workers", "threads", "match"), [
    ("daphne", 2, None, "single process"),
    ("uvicorn", None, 4, "no thread setting"),
    ("gunicorn-sync", None, 4, "no thread setting"),
    ("uvicorn", 0, None, "positive integer"),
])
def test_impossible_overrides_are_usage_errors(name: str, workers: int | None,
                                               threads: int | None, match: str) -> None:
    with pytest.raises(UsageError, match=match):
        make_target(get_server(name), cpus=1, workers=workers, threads=threads)


def test_websocket_on_a_wsgi_server_is_unsupported_with_the_reason() -> None:
    ok, reason = supports(get_server("gunicorn-sync"), websocket=True)
    assert not ok and "WSGI" in reason and "WebSocket" in reason
    assert supports(get_server("gunicorn-sync"), websocket=False) == (True, "")
    assert supports(get_server("daphne"), websocket=True) == (True, "")


def test_commands_bind_loopback_with_access_logs_off() -> None:
    for name, server in SERVERS.items():
        target = make_target(server, cpus=2)
        argv = render_command(target, port=8123)
        joined = " ".join(argv)
        assert not any("{" in part for part in argv), argv
        assert "127.0.0.1" in joined and "8123" in joined, name
        assert argv[-1] == target.app_spec or target.app_spec in argv, name
        assert "{" not in " ".join(server.threads_args).replace("{threads}", ""), name
        if server.preset.workers_per_cpu:
            assert str(target.preset.workers) in argv, name
        if target.preset.threads is not None:
            assert str(target.preset.threads) in argv, name
        # access logs: off by flag, or off by the server's default (gunicorn, hypercorn)
        assert "--access-log " not in joined and "--access-logfile" not in joined
    uwsgi = " ".join(render_command(make_target(get_server("uwsgi"), cpus=1), port=1))
    for flag in ("--http-socket 127.0.0.1:1", "--master", "--die-on-term", "--disable-logging",
                 "--need-app", "--processes 3", "--threads 2"):
        assert flag in uwsgi
    assert "--http " not in uwsgi  # --http adds a router process in front of the workers
    daphne = render_command(make_target(get_server("daphne"), cpus=1), port=1)
    assert daphne[daphne.index("-v") + 1] == "0"  # verbosity 1 writes the access log
    uvicorn = " ".join(render_command(make_target(get_server("uvicorn"), cpus=1), port=1))
    h11 = " ".join(render_command(make_target(get_server("uvicorn-h11"), cpus=1), port=1))
    assert "--loop uvloop --http httptools" in uvicorn and "--no-access-log" in uvicorn
    assert "--loop asyncio --http h11" in h11
    native = " ".join(render_command(make_target(get_server("gunicorn-asgi"), cpus=1), port=1))
    assert ("--workers 1 --worker-class "
            "harness.backends.gunicorn_asgi.BacklogASGIWorker --asgi-loop uvloop") in native


def test_gunicorn_asgi_is_gunicorns_own_worker_with_only_the_backlog_passed_on() -> None:
    from gunicorn.workers import SUPPORTED_WORKERS  # type: ignore[import-untyped]

    from harness.backends.gunicorn_asgi import BacklogASGIWorker

    assert SUPPORTED_WORKERS["asgi"] == "gunicorn.workers.gasgi.ASGIWorker"
    (base,) = BacklogASGIWorker.__bases__
    assert f"{base.__module__}.{base.__qualname__}" == SUPPORTED_WORKERS["asgi"]
    assert set(vars(BacklogASGIWorker)) - {"__module__", "__doc__"} == {"_setup_event_loop"}


def test_threads_args_appear_only_with_a_thread_count() -> None:
    granian = make_target(get_server("granian-wsgi"), cpus=1)
    assert "--blocking-threads" not in render_command(granian, port=1)
    tuned = make_target(get_server("granian-wsgi"), cpus=1, threads=8)
    argv = render_command(tuned, port=1)
    assert argv[argv.index("--blocking-threads") + 1] == "8"
    assert argv[-1] == "apps.raw.wsgi:app"


def test_target_records_what_a_result_needs() -> None:
    target = make_target(get_server("uwsgi"), app="raw", cpus=1)
    assert target.app_spec == "apps.raw.wsgi:app"
    assert make_target(get_server("daphne")).app_spec == "apps.raw.asgi:app"
    record = target.to_dict()
    assert record["server"] == "uwsgi" and record["gateway"] == "wsgi"
    assert record["version"] == catalogue.installed_version(get_server("uwsgi"))
    assert record["preset_note"] == get_server("uwsgi").preset.note
    assert "uwsgi" in target.describe() and "workers=3" in target.describe()
    with pytest.raises(dataclasses.FrozenInstanceError):
        target.app = "other"  # type: ignore[misc]


def test_installed_versions_of_every_server() -> None:
    for server in SERVERS.values():
        assert catalogue.installed_version(server), server.name
        assert catalogue.missing_distributions(server) == (), server.name
        require_installed(server)


def test_missing_package_is_one_line_naming_it_and_the_install_command() -> None:
    fake = dataclasses.replace(get_server("uvicorn"), distribution="no-such-server-dist")
    assert catalogue.installed_version(fake) is None
    with pytest.raises(MissingPackageError) as info:
        require_installed(fake)
    message = str(info.value)
    assert isinstance(info.value, TargetError)
    assert "\n" not in message
    assert "no-such-server-dist is not installed" in message
    assert "pip install no-such-server-dist" in message
    assert sys.executable.rsplit("/", 1)[0] in message

"""The user's own app as a family: building it from flags, import checks in a subprocess, and a
real ``django-admin startproject`` served by a WSGI and an ASGI server."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from harness.backends import local
from harness.catalogue import get_server, make_target
from harness.errors import UsageError
from harness.ownapp import check_importable, own_family, verify_path
from tests.runhelpers import harness_cmd, read_json, read_rows

BIN = Path(sys.executable).parent
SERVER_CPUS = (1,)
RUN_TIMEOUT_S = 300.0
ITEMS = {"items": [{"id": 1, "name": "first"}, {"id": 2, "name": "second"}]}
ITEMS_VIEW = f'''
from django.http import JsonResponse


def items(request):
    return JsonResponse({ITEMS!r})
'''


def _module(folder: Path, name: str, source: str) -> None:
    (folder / f"{name}.py").write_text(textwrap.dedent(source))


def test_own_family_from_flags(tmp_path: Path) -> None:
    family = own_family(wsgi="mysite.wsgi:application", asgi=" mysite.asgi:application ",
                        app_dir=str(tmp_path),
                        env=["DJANGO_SETTINGS_MODULE=mysite.settings", "EMPTY=", "A=b=c"],
                        path="/api/items")
    assert family.modules == {"wsgi": "mysite.wsgi:application",
                              "asgi": "mysite.asgi:application"}
    assert family.env == {"DJANGO_SETTINGS_MODULE": "mysite.settings", "EMPTY": "", "A": "b=c"}
    assert family.paths == (str(tmp_path.resolve()),)
    assert family.check_path == "/api/items" and family.ready_path == "/api/items"
    assert not family.contract and not family.websocket
    only_asgi = own_family(wsgi=None, asgi="main:app", app_dir=str(tmp_path))
    assert list(only_asgi.modules) == ["asgi"] and only_asgi.check_path == "/"


def test_own_family_defaults_to_the_current_directory(tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert own_family(wsgi="app:app", asgi=None, app_dir=None).paths == (str(tmp_path),)


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"wsgi": None, "asgi": None}, "own app: give --wsgi-app or --asgi-app"),
    ({"wsgi": "", "asgi": None}, "own app: give --wsgi-app or --asgi-app"),
    ({"wsgi": "mysite.wsgi"}, "--wsgi-app: expected an import string like "
                              "'mysite.wsgi:application' (module:attribute), got 'mysite.wsgi'"),
    ({"asgi": "my-site:app"}, "--asgi-app: expected an import string"),
    ({"env": ["NOEQUALS"]}, "--env: expected NAME=VALUE (NAME letters, digits and _), "
                            "got 'NOEQUALS'"),
    ({"env": ["=value"]}, "--env: expected NAME=VALUE"),
    ({"env": ["BAD NAME=1"]}, "--env: expected NAME=VALUE"),
    ({"app_dir": "/no/such/folder"}, "--app-dir: no such directory: /no/such/folder"),
    ({"path": "api/items"}, "--path: expected a path starting with '/', got 'api/items'"),
])
def test_own_family_rejects_bad_flags_in_one_line(kwargs: dict[str, object], message: str,
                                                  tmp_path: Path) -> None:
    arguments: dict[str, object] = {"wsgi": "app:app", "asgi": None, "app_dir": str(tmp_path)}
    arguments.update(kwargs)
    with pytest.raises(UsageError) as caught:
        own_family(**arguments)  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_check_importable_passes_an_importable_app_with_its_env(tmp_path: Path) -> None:
    _module(tmp_path, "needs_env", """
        import os
        GREETING = os.environ["OWN_APP_GREETING"]

        def app(environ, start_response):
            start_response("200 OK", [])
            return [GREETING.encode()]
    """)
    check_importable(own_family(wsgi="needs_env:app", asgi=None, app_dir=str(tmp_path),
                                env=["OWN_APP_GREETING=hi"]))
    with pytest.raises(UsageError, match=r"^cannot import 'needs_env:app': "
                                         r"KeyError: 'OWN_APP_GREETING'$"):
        check_importable(own_family(wsgi="needs_env:app", asgi=None, app_dir=str(tmp_path)))


@pytest.mark.parametrize(("source", "spec", "message"), [
    (None, "mysite.wsgi:application",
     "cannot import 'mysite.wsgi:application': ModuleNotFoundError: No module named 'mysite'"),
    ("raise RuntimeError('settings are wrong\\nsee the docs\\nand more')", "broken:app",
     "cannot import 'broken:app': RuntimeError: settings are wrong"),
    ("application = None", "broken:app",
     "cannot import 'broken:app': AttributeError: module 'broken' has no attribute 'app'"),
    ("app = 42", "broken:app",
     "cannot import 'broken:app': TypeError: app is a int, not an application"),
    ("import sys\nprint('noise on stderr', file=sys.stderr)\nsys.exit(1)", "broken:app",
     "cannot import 'broken:app': SystemExit: 1"),
])
def test_check_importable_names_the_import_string_and_the_first_line(
        source: str | None, spec: str, message: str, tmp_path: Path) -> None:
    if source is not None:
        _module(tmp_path, "broken", source)
    family = own_family(wsgi=None, asgi=spec, app_dir=str(tmp_path))
    with pytest.raises(UsageError) as caught:
        check_importable(family)
    assert str(caught.value) == message


def test_check_importable_never_imports_in_the_harness(tmp_path: Path) -> None:
    _module(tmp_path, "marker_app", "def app(environ, start_response): return []\n")
    check_importable(own_family(wsgi="marker_app:app", asgi=None, app_dir=str(tmp_path)))
    assert "marker_app" not in sys.modules


def _startproject(folder: Path) -> Path:
    """``django-admin startproject mysite`` plus one JSON view at /api/items."""
    folder.mkdir(parents=True)
    subprocess.run([str(BIN / "django-admin"), "startproject", "mysite", str(folder)],
                   check=True, capture_output=True)
    package = folder / "mysite"
    (package / "views.py").write_text(ITEMS_VIEW)
    with open(package / "urls.py", "a") as urls:
        urls.write("\nfrom mysite import views\n\n"
                   "urlpatterns.append(path('api/items', views.items))\n")
    return folder


@pytest.fixture(scope="module")
def django_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _startproject(tmp_path_factory.mktemp("own") / "project")


@pytest.mark.e2e
@pytest.mark.parametrize("server", ["gunicorn-sync", "uvicorn"])
def test_startproject_app_served_by_each_gateway(server: str, django_project: Path) -> None:
    family = own_family(wsgi="mysite.wsgi:application", asgi="mysite.asgi:application",
                        app_dir=str(django_project),
                        env=["DJANGO_SETTINGS_MODULE=mysite.settings"], path="/api/items")
    check_importable(family)
    target = make_target(get_server(server), app=family, cpus=len(SERVER_CPUS))
    with local.start_target(target, cpus=SERVER_CPUS) as running:
        checked = verify_path(running.url, "/api/items")
        missing = verify_path(running.url, "/api/nothing-here")
    assert checked.report.ok, checked.report.summary()
    assert checked.status == 200 and checked.body is not None
    assert json.loads(checked.body) == ITEMS
    assert not missing.report.ok and missing.status == 404 and missing.body is None
    assert "expected a 2xx status, got 404" in missing.report.summary()


def test_verify_path_reports_a_silent_target() -> None:
    checked = verify_path("http://127.0.0.1:9", "/", timeout_s=1.0)
    assert not checked.report.ok and checked.status is None
    assert "no answer within 1 s" in checked.report.summary()


@pytest.mark.e2e
def test_cli_import_error_is_one_line_and_exit_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        harness_cmd("run", "--scenario", "io_bound", "--quick", "--dry-run",
                    "--wsgi-app", "nosuchsite.wsgi:application", "--app-dir", str(tmp_path),
                    "--servers", "gunicorn-sync"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == (
        "harness run: error: cannot import 'nosuchsite.wsgi:application': "
        "ModuleNotFoundError: No module named 'nosuchsite'")


@pytest.mark.e2e
def test_cli_run_quick_with_own_django_app(django_project: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = subprocess.run(
        harness_cmd("run", "--scenario", "io_bound", "--quick",
                    "--wsgi-app", "mysite.wsgi:application",
                    "--asgi-app", "mysite.asgi:application",
                    "--app-dir", str(django_project), "--path", "/api/items",
                    "--env", "DJANGO_SETTINGS_MODULE=mysite.settings",
                    "--servers", "gunicorn-sync,uvicorn", "--concurrency", "8",
                    "--rate", "50", "--duration", "1s", "--warmup", "200ms",
                    "--out", str(out), "--no-report"),
        capture_output=True, text=True, timeout=RUN_TIMEOUT_S)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    meta = read_json(out / "run.json")
    assert meta["status"] == "complete"
    assert {t["server"]: t["status"] for t in meta["targets"]} == {
        "gunicorn-sync": "ok", "uvicorn": "ok"}
    assert {t["app_spec"] for t in meta["targets"]} == {"mysite.wsgi:application",
                                                        "mysite.asgi:application"}
    rows = read_rows(out / "trials.csv")
    assert {row["server"] for row in rows} == {"gunicorn-sync", "uvicorn"}
    for row in rows:
        assert float(row["requests"]) > 0
        assert row["valid"].lower() == "true", row.get("invalid_reason")

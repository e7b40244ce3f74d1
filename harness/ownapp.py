"""The user's own app as an app family: ``--wsgi-app``, ``--asgi-app``, ``--app-dir``, ``--env``,
``--path`` on the command line become an :class:`~harness.catalogue.AppFamily` that every
server of its gateway can serve.

An own app does not answer the app contract, so it is verified only by one GET of its path
(any 2xx, the body kept). Its import strings are tried in a subprocess with the environment and
paths the servers get, never in the harness's own process (the user's code may configure
logging, patch sockets, or fail at import)::

    family = own_family(wsgi="mysite.wsgi:application", asgi="mysite.asgi:application",
                        app_dir="~/src/mysite", env=["DJANGO_SETTINGS_MODULE=mysite.settings"],
                        path="/api/items")
    check_importable(family)  # UsageError: cannot import 'mysite.wsgi:application': ...
"""

from __future__ import annotations

import argparse
import os
import re
import socket
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from harness.catalogue import REPO_DIR, AppFamily, Gateway
from harness.checks import DEFAULT_TIMEOUT_S, Check, VerifyReport
from harness.errors import UsageError
from harness.httpget import NO_ANSWER, fetch

OWN_FAMILY_NAME = "own"
DEFAULT_PATH = "/"
# Importing a large app (Django with its apps, a model loaded at import) can take a while on a
# busy machine; past this the import is taken as hung.
IMPORT_TIMEOUT_S = 60.0
# ``package.module:attribute`` (the attribute may be dotted), as uvicorn, gunicorn, granian,
# hypercorn and daphne all accept it.
IMPORT_STRING_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
ENV_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ERROR_MARK = "harness-import-error: "

# Run in a fresh interpreter: import the module, resolve the attribute, check it is callable.
# Only the first line of the exception is reported (a Django ImproperlyConfigured, a
# ModuleNotFoundError); the app's own output goes where it would go.
_IMPORT_PROBE = f"""
import importlib, sys
spec = sys.argv[1]
module_name, _, attribute = spec.partition(":")
try:
    obj = importlib.import_module(module_name)
    for part in attribute.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{{attribute}} is a {{type(obj).__name__}}, not an application")
except BaseException as exc:
    lines = str(exc).strip().splitlines()
    detail = type(exc).__name__ + (": " + lines[0].strip() if lines else "")
    sys.stderr.write("\\n{_ERROR_MARK}" + detail + "\\n")
    sys.stderr.flush()
    sys.exit(3)
"""


def parse_env(pairs: Sequence[str]) -> dict[str, str]:
    """``["K=V", ...]`` as a dict; UsageError naming the first malformed pair."""
    env: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not ENV_NAME_RE.match(name):
            raise UsageError(f"--env: expected NAME=VALUE (NAME letters, digits and _), "
                             f"got {pair!r}")
        env[name] = value
    return env


def _check_import_string(flag: str, spec: str) -> str:
    spec = spec.strip()
    if not IMPORT_STRING_RE.match(spec):
        raise UsageError(f"{flag}: expected an import string like 'mysite.wsgi:application' "
                         f"(module:attribute), got {spec!r}")
    return spec


def own_family(*, wsgi: str | None, asgi: str | None, app_dir: str | None,
               env: Sequence[str] = (), path: str = DEFAULT_PATH,
               name: str = OWN_FAMILY_NAME) -> AppFamily:
    """The family for the user's app; UsageError (one line) for bad input.

    ``app_dir`` (default: the current directory, as uvicorn's ``--app-dir``) goes first on the
    servers' PYTHONPATH, made absolute because servers run from the harness's folder.
    """
    if not wsgi and not asgi:
        raise UsageError("own app: give --wsgi-app or --asgi-app (or both), e.g. "
                         "--wsgi-app mysite.wsgi:application")
    modules: dict[Gateway, str] = {}
    if wsgi:
        modules["wsgi"] = _check_import_string("--wsgi-app", wsgi)
    if asgi:
        modules["asgi"] = _check_import_string("--asgi-app", asgi)
    folder = Path(app_dir).expanduser() if app_dir is not None else Path.cwd()
    if not folder.is_dir():
        raise UsageError(f"--app-dir: no such directory: {app_dir}")
    if not path.startswith("/"):
        raise UsageError(f"--path: expected a path starting with '/', got {path!r}")
    specs = ", ".join(f"{gateway} {spec}" for gateway, spec in modules.items())
    return AppFamily(name=name, modules=modules, env=parse_env(env),
                     paths=(str(folder.resolve()),), description=f"your app: {specs}",
                     websocket=False, check_path=path)


def _probe_environment(family: AppFamily) -> dict[str, str]:
    # What the local backend gives a server: the family's folders first on PYTHONPATH, then the
    # harness's folder, then the caller's; the family's variables on top.
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [*family.paths, str(REPO_DIR), *filter(None, [os.environ.get("PYTHONPATH")])])
    env.update(family.env)
    return env


def check_importable(family: AppFamily, *, timeout_s: float = IMPORT_TIMEOUT_S) -> None:
    """Import each of the family's apps in a subprocess, as a server would; UsageError with
    ``cannot import '<spec>': <Exception>: <first line>`` for the first that fails."""
    env = _probe_environment(family)
    for spec in family.modules.values():
        try:
            done = subprocess.run([sys.executable, "-c", _IMPORT_PROBE, spec], cwd=REPO_DIR,
                                  env=env, stdin=subprocess.DEVNULL,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise UsageError(f"cannot import {spec!r}: no result within {timeout_s:g} s "
                             "(does importing it block?)") from None
        if done.returncode == 0:
            continue
        stderr = done.stderr.decode(errors="replace")
        reason = next((line.removeprefix(_ERROR_MARK).strip()
                       for line in reversed(stderr.splitlines())
                       if line.startswith(_ERROR_MARK)), None)
        if reason is None:
            reason = f"the interpreter exited with code {done.returncode}"
        raise UsageError(f"cannot import {spec!r}: {reason}")


@dataclass(frozen=True, kw_only=True)
class PathCheck:
    """What verifying an own app found: the one-check report, and the body it answered."""

    report: VerifyReport
    status: int | None
    body: bytes | None


def verify_path(base_url: str, path: str, *,
                timeout_s: float = DEFAULT_TIMEOUT_S) -> PathCheck:
    """GET ``path`` once: the check passes on any 2xx. The body is returned, so a measurement
    can tell a changed answer from the verified one."""
    name = "own_path"
    try:
        answer = fetch(base_url.rstrip("/") + path, timeout_s=timeout_s,
                       headers=[("Accept", "*/*")])
    except NO_ANSWER as exc:
        reason = "timed out" if isinstance(exc, socket.timeout) else f"{type(exc).__name__}: {exc}"
        check = Check(name=name, ok=False,
                      detail=f"GET {path}: no answer within {timeout_s:g} s ({reason})")
        return PathCheck(report=VerifyReport(checks=(check,)), status=None, body=None)
    ok = 200 <= answer.status < 300
    body = answer.body
    shown = repr(body[:80]) + ("..." if len(body) > 80 else "")
    detail = (f"GET {path}: {answer.status}, {len(body)} bytes in {answer.elapsed_ms:.0f} ms"
              if ok else f"GET {path}: expected a 2xx status, got {answer.status} {shown}")
    check = Check(name=name, ok=ok, detail=detail)
    return PathCheck(report=VerifyReport(checks=(check,)), status=answer.status,
                     body=body if ok else None)


def family_from_args(args: argparse.Namespace, default: str | None) -> str | AppFamily | None:
    """``--app NAME``, or the user's own app from ``--wsgi-app``/``--asgi-app`` (checked to
    import, in a subprocess, before anything starts); ``default`` when neither is given."""
    own = args.wsgi_app or args.asgi_app
    if not own:
        if args.app_dir or args.env or args.path:
            raise UsageError("--app-dir, --env and --path describe your own app: expected "
                             "--wsgi-app or --asgi-app with them")
        return args.app or default
    if args.app:
        raise UsageError(f"--app {args.app} and --wsgi-app/--asgi-app: expected one or the "
                         "other (a family of the catalogue, or your own app)")
    family = own_family(wsgi=args.wsgi_app, asgi=args.asgi_app, app_dir=args.app_dir,
                        env=args.env or [], path=args.path or DEFAULT_PATH)
    check_importable(family)
    return family

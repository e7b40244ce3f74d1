"""harness compose write | check: the Compose files kept in step with the catalogue, and whether
``--backend compose`` can work here (engine, Compose tool, the servers' image)."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from harness.commands import options

EXIT_STALE = 1
HELP = "Compose files kept in step with the catalogue; engine check"


def add_parser(subparsers: options.Subparsers) -> options.Parser:
    compose = subparsers.add_parser("compose", help=HELP)
    actions = compose.add_subparsers(dest="action", required=True, metavar="ACTION",
                                     parser_class=options.Parser)
    actions.add_parser(
        "write", help="regenerate compose/docker-compose.yml and .dockerignore from the catalogue")
    check_parser = actions.add_parser(
        "check", help="files in step with the catalogue; engine, Compose tool and the servers' "
                      "image (built if needed)")
    check_parser.add_argument("--files-only", action="store_true",
                              help="only compare the files (no engine needed)")
    return compose


def _rel(path: Path) -> str:
    from harness.catalogue import REPO_DIR

    try:
        return str(path.relative_to(REPO_DIR))
    except ValueError:
        return str(path)


def write() -> int:
    from harness import compose_file

    changed = compose_file.write_files()
    for path in changed:
        print(f"wrote {_rel(path)}")
    if not changed:
        print("compose files already match the catalogue")
    return 0


def check(*, engine: bool) -> int:
    from harness import compose_file
    from harness.backends.compose import ComposeBackend, docker_host

    stale = compose_file.stale_files()
    for path in stale:
        print(f"{_rel(path)} differs from the catalogue: run 'harness compose write'",
              file=sys.stderr)
    if not stale:
        print("compose files match the catalogue")
    if engine:
        started = time.monotonic()
        with ComposeBackend() as backend:  # check(): engine, Compose tool, image (UsageError)
            info = backend.describe()
            how = "built" if backend.image_built else "cached"
            print(f"engine {info['engine'].get('version')} at DOCKER_HOST={docker_host()}, "
                  f"{info.get('compose')}; image {backend.image} ({how}, base "
                  f"{backend.base_image}) in {time.monotonic() - started:.0f}s")
            versions = backend.image_versions()
            print("servers in the image: " + ", ".join(
                f"{name} {versions[name]}" for name in sorted(versions)
                if name in {"gunicorn", "uwsgi", "uvicorn", "hypercorn", "daphne", "granian",
                            "gevent"}))
    return EXIT_STALE if stale else 0


def main(args: argparse.Namespace) -> int:
    if args.action == "write":
        return write()
    return check(engine=not args.files_only)

"""What machine, versions and settings produced a result (recorded in run.json).

Like pyperf's metadata: facts that change a figure, read cheaply; environment variables from an
allow-list only, never the whole environment.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import psutil

REPO_DIR = Path(__file__).resolve().parent.parent
GIT_TIMEOUT_S = 5.0

# Every distribution whose version can move a figure: servers, their parsers and loops, the
# generator's parts, and the analysis stack.
VERSIONED_DISTRIBUTIONS = (
    "harness", "gunicorn", "gunicorn-h1c", "uwsgi", "uvicorn", "uvicorn-worker", "hypercorn",
    "daphne", "granian", "gevent", "greenlet", "twisted", "h11", "httptools", "uvloop",
    "websockets", "wsproto", "aiohttp", "urllib3", "hdrhistogram", "psutil", "rich", "pandas",
    "matplotlib", "scipy", "numpy", "docker",
)

# Variables that change how Python or the servers behave; nothing else is copied.
ENV_ALLOW_LIST = (
    "PYTHONHASHSEED", "PYTHONOPTIMIZE", "PYTHONMALLOC", "PYTHONDEVMODE", "PYTHONASYNCIODEBUG",
    "PYTHON_GIL", "OMP_NUM_THREADS", "MALLOC_ARENA_MAX", "GEVENT_LOOP", "UV_THREADPOOL_SIZE",
    "HARNESS_BASE_IMAGE", "CI",
)


def _read_first(path: str) -> str | None:
    try:
        return Path(path).read_text(encoding="utf-8").strip() or None
    except OSError:
        return None


def cpu_model() -> str:
    cpuinfo = _read_first("/proc/cpuinfo") or ""
    for line in cpuinfo.splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def versions() -> dict[str, str]:
    found: dict[str, str] = {}
    for name in VERSIONED_DISTRIBUTIONS:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found


def git_commit() -> str | None:
    """The harness's commit, with ``-dirty`` when the work tree differs from it."""
    try:
        head = subprocess.run(["git", "-C", str(REPO_DIR), "rev-parse", "HEAD"],
                              capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
        dirty = subprocess.run(["git", "-C", str(REPO_DIR), "status", "--porcelain",
                                "--untracked-files=no"],
                               capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return head.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def collect() -> dict[str, Any]:
    """A snapshot of the machine and software, for run.json."""
    freq = psutil.cpu_freq()
    return {
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_available": sorted(os.sched_getaffinity(0)),
        "cpu_governor": _read_first("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor"),
        "cpu_max_mhz": round(freq.max) if freq and freq.max else None,
        "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": sys.version.split()[0],
        "python_implementation": platform.python_implementation(),
        "load_average_at_start": [round(x, 2) for x in os.getloadavg()],
        "versions": versions(),
        "git_commit": git_commit(),
        "env": {k: os.environ[k] for k in ENV_ALLOW_LIST if k in os.environ},
    }

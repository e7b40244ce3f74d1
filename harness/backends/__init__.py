"""How a target is started and watched, chosen by name: ``local`` (pinned processes, the
default) or ``compose`` (containers through Docker Compose).

A new backend is one module with a :class:`harness.backends.base.Backend` subclass, plus one
entry in :data:`BACKENDS`.
"""

from __future__ import annotations

from harness.backends.base import Backend
from harness.registry import Registry

DEFAULT_BACKEND = "local"

BACKENDS: Registry[type[Backend]] = Registry("backend", {
    "local": "harness.backends.local:LocalBackend",
    "compose": "harness.backends.compose.backend:ComposeBackend",
})


def get_backend(name: str = DEFAULT_BACKEND) -> Backend:
    """A new backend instance by name; UsageError for an unknown name."""
    return BACKENDS.get(name)()

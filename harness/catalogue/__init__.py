"""Servers and apps as data: name -> gateway, command, capabilities and a documented preset.

A new server is one ``Server`` entry in ``SERVERS`` (catalogue/servers.py); a new app family is
one entry in ``APPS`` (catalogue/apps.py). Each server's worker/thread preset for N CPUs follows
that server's own documentation, carries a note citing the rule, is recorded with every result,
and can be overridden.

>>> target = make_target(get_server("gunicorn-sync"), app="raw", cpus=1)
>>> target.preset.workers
3
"""

from harness.catalogue.apps import (
    APPS,
)
from harness.catalogue.servers import (
    SERVERS,
)
from harness.catalogue.targets import (
    MissingPackageError,
    Target,
    get_app,
    get_server,
    installed_version,
    listen_backlog,
    make_target,
    missing_distributions,
    preset_for,
    render_command,
    require_installed,
    supports,
)
from harness.catalogue.types import (
    GATEWAYS,
    HOST,
    LISTEN_BACKLOG,
    LONG_LIVED,
    REPO_DIR,
    THREADS_ARGS,
    AppFamily,
    DbDriver,
    Gateway,
    LongLived,
    Preset,
    PresetRule,
    Server,
)

__all__ = [
    "APPS",
    "GATEWAYS",
    "HOST",
    "LISTEN_BACKLOG",
    "LONG_LIVED",
    "REPO_DIR",
    "SERVERS",
    "THREADS_ARGS",
    "AppFamily",
    "DbDriver",
    "Gateway",
    "LongLived",
    "MissingPackageError",
    "Preset",
    "PresetRule",
    "Server",
    "Target",
    "get_app",
    "get_server",
    "installed_version",
    "listen_backlog",
    "make_target",
    "missing_distributions",
    "preset_for",
    "render_command",
    "require_installed",
    "supports",
]

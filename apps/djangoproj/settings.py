"""Django settings trimmed as a production deployment of a JSON API would be.

DEBUG off (no debug pages, no query log), no middleware (nothing runs around a view but the
URL resolver: no sessions, CSRF, security or common middleware, whose headers would break the
contract's exact header list), no contrib apps, no i18n. Only errors are logged, to stderr, so a
failing view shows in the server's output.

The database (the contract's ``/db``, ``/queries``, ``/fortunes``, ``/db/sleep``) is configured
only when ``HARNESS_DB_URL`` is set: PostgreSQL through psycopg 3 with Django's own connection
pool (``OPTIONS["pool"]``, Django 5.1+), ``HARNESS_DB_POOL`` connections per worker process, and
``CONN_MAX_AGE = 0`` as Django's docs ask under ASGI ("When using ASGI, persistent connections
should be disabled. Instead, use your database backend's built-in connection pooling", ref/
databases, "Persistent connections"); the same for WSGI, so the gateway is the only change.
Without it ``DATABASES`` stays empty and every other route works as without a database. The
one template engine is there for ``/fortunes`` (autoescape on, Django's default).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

from apps import dbcontract

# Not a secret: the project signs nothing (no sessions, no CSRF), but Django refuses to start
# without one.
SECRET_KEY = "harness-benchmark-app-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

# Only the models of the contract's tables (no migrations, nothing managed).
INSTALLED_APPS: list[str] = ["apps.djangoproj.db.apps.DbConfig"]
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "apps.djangoproj.urls"
TEMPLATES: list[dict[str, Any]] = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [Path(__file__).resolve().parent / "templates"],
    "APP_DIRS": False,
    "OPTIONS": {},  # no context processors; DEBUG off: the cached loader
}]


def database_settings(url: str, pool: int) -> dict[str, Any]:
    """``DATABASES["default"]`` for a libpq URL ``postgresql://user[:password]@host[:port]/db``
    (its query parameters, e.g. ``sslmode``, become connection options)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise ValueError(f"{dbcontract.DB_URL_ENV} must be a postgresql:// URL, got {url!r}")
    user = unquote(parts.username or "")
    options: dict[str, Any] = dict(parse_qsl(parts.query))
    options["pool"] = {"min_size": pool, "max_size": pool}
    return {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": unquote(parts.path.lstrip("/")) or user or "postgres",
        "USER": user,
        "PASSWORD": unquote(parts.password or ""),
        "HOST": parts.hostname or "",
        "PORT": str(parts.port or ""),
        "CONN_MAX_AGE": 0,  # required with the pool: a connection goes back after each request
        "OPTIONS": options,
    }


_db_url = dbcontract.db_url()
DATABASES: dict[str, Any] = (
    {"default": database_settings(_db_url, dbcontract.pool_size())} if _db_url else {})

WSGI_APPLICATION = "apps.djangoproj.wsgi.application"

USE_I18N = False
USE_TZ = True
DEFAULT_CHARSET = "utf-8"

LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"stderr": {"class": "logging.StreamHandler", "level": "ERROR"}},
    "loggers": {"django": {"handlers": ["stderr"], "level": "ERROR", "propagate": False}},
}

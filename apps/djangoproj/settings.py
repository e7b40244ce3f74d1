"""Django settings trimmed as a production deployment of a JSON API would be.

DEBUG off (no debug pages, no query log), no middleware (nothing runs around a view but the
URL resolver: no sessions, CSRF, security or common middleware, whose headers would break the
contract's exact header list), no contrib apps, no database, no templates, no i18n. Only errors
are logged, to stderr, so a failing view shows in the server's output.
"""

from __future__ import annotations

from typing import Any

# Not a secret: the project signs nothing (no sessions, no CSRF), but Django refuses to start
# without one.
SECRET_KEY = "harness-benchmark-app-not-a-secret"
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost", "[::1]"]

INSTALLED_APPS: list[str] = []
MIDDLEWARE: list[str] = []
ROOT_URLCONF = "apps.djangoproj.urls"
TEMPLATES: list[dict[str, Any]] = []
DATABASES: dict[str, Any] = {}

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

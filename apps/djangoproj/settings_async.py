"""The same project with async views (family ``django-async``): only the URLconf differs."""

from __future__ import annotations

from apps.djangoproj.settings import *  # noqa: F403

ROOT_URLCONF = "apps.djangoproj.urls_async"

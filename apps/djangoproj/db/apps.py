"""The app config of the contract's tables."""

from __future__ import annotations

from django.apps import AppConfig


class DbConfig(AppConfig):  # type: ignore[misc]  # Django is untyped here
    name = "apps.djangoproj.db"
    label = "harness_db"
    verbose_name = "Benchmark tables"

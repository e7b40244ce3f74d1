"""TechEmpower's ``world`` and ``fortune`` tables (apps/dbcontract.py makes and seeds them).

``managed = False``: Django neither creates nor migrates them; the harness's database service
does, with ``dbcontract.SCHEMA_SQL``.
"""

from __future__ import annotations

from django.db import models


class World(models.Model):  # type: ignore[misc]  # Django is untyped here
    id = models.IntegerField(primary_key=True)
    randomnumber = models.IntegerField()

    class Meta:
        managed = False
        db_table = "world"


class Fortune(models.Model):  # type: ignore[misc]
    id = models.IntegerField(primary_key=True)
    message = models.CharField(max_length=2048)

    class Meta:
        managed = False
        db_table = "fortune"

"""Every app family, one ``AppFamily`` entry each: its WSGI and ASGI import strings."""

from __future__ import annotations

from apps import dbcontract
from apps.raw import common
from harness.catalogue.types import (
    LONG_LIVED,
    AppFamily,
    DbDriver,
    LongLived,
)

_DJANGO_SETTINGS = "DJANGO_SETTINGS_MODULE"
# Django 5.2 has no background-task API (django.tasks comes in 6.0): /background is its 404.
_DJANGO_LONG_LIVED: tuple[LongLived, ...] = ("stream", "upload")

# One pool per worker process, at each library's documented default size, so what is compared
# is the gateway and the driver, not a tuning (apps/README.md, "The database").
PSYCOPG = DbDriver(name="psycopg", pool=dbcontract.DEFAULT_POOL,
                   note="psycopg_pool ConnectionPool / AsyncConnectionPool, min_size = max_size "
                        "= 4 (psycopg_pool's default)")
ASYNCPG = DbDriver(name="asyncpg", pool=10,
                   note="asyncpg.create_pool, min_size = max_size = 10 (asyncpg's default)")
DJANGO_POOL = DbDriver(name="django-psycopg-pool", pool=dbcontract.DEFAULT_POOL,
                       note="Django's ORM on psycopg with OPTIONS pool min_size = max_size = 4 "
                            "and CONN_MAX_AGE 0 (Django's docs: under ASGI, no persistent "
                            "connections; use the backend's pool)")


APPS: dict[str, AppFamily] = {
    family.name: family
    for family in (
        AppFamily(name="raw", modules={"wsgi": "apps.raw.wsgi:app", "asgi": "apps.raw.asgi:app"},
                  description="no framework: the contract on the bare gateway (the baseline); "
                              "psycopg 3 on both gateways; /cpu inline",
                  groups=("drivers", "offload"), database=PSYCOPG, long_lived=LONG_LIVED),
        AppFamily(name="raw-asyncpg", modules={"asgi": "apps.raw.asgi:app"},
                  env={dbcontract.DB_DRIVER_ENV: "asyncpg"},
                  description="the raw ASGI app with asyncpg for its database routes",
                  groups=("drivers",), distributions=("asyncpg",), database=ASYNCPG,
                  long_lived=LONG_LIVED),
        # The raw ASGI app with /cpu's work off the event loop by default (apps/README.md,
        # "CPU work offloaded"); compared with raw, whose /cpu runs on the loop.
        AppFamily(name="raw-thread", modules={"asgi": "apps.raw.asgi:app"},
                  env={common.CPU_OFFLOAD_ENV: "thread"},
                  description="the raw ASGI app with /cpu run on the event loop's default "
                              "thread pool (run_in_executor(None, ...))",
                  groups=("offload",), database=PSYCOPG, long_lived=LONG_LIVED),
        AppFamily(name="raw-process", modules={"asgi": "apps.raw.asgi:app"},
                  env={common.CPU_OFFLOAD_ENV: "process"},
                  description="the raw ASGI app with /cpu run in a process pool of one "
                              "process per worker, made at lifespan startup (on first use "
                              "where the server sends no lifespan)",
                  groups=("offload",), database=PSYCOPG, long_lived=LONG_LIVED),
        # One Django project (apps/djangoproj); the settings module picks the views.
        AppFamily(name="django",
                  modules={"wsgi": "apps.djangoproj.wsgi:application",
                           "asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings"},
                  description="Django, sync views: from wsgi.py, and from asgi.py (each view "
                              "run through sync_to_async, in a thread of its request's own)",
                  groups=("django",), distributions=("django", "asgiref"),
                  database=DJANGO_POOL, long_lived=_DJANGO_LONG_LIVED),
        AppFamily(name="django-async",
                  modules={"asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings_async"},
                  description="Django, async views from asgi.py (aiohttp for /io, the ORM's "
                              "a-methods for the database)",
                  groups=("django",), distributions=("django", "asgiref"),
                  database=DJANGO_POOL, long_lived=_DJANGO_LONG_LIVED),
        AppFamily(name="flask", modules={"wsgi": "apps.flask_app.wsgi:app"},
                  description="Flask, sync views", groups=("flask-quart", "flask-fastapi"),
                  distributions=("flask", "werkzeug"), database=PSYCOPG,
                  long_lived=LONG_LIVED),
        AppFamily(name="quart", modules={"asgi": "apps.quart_app.asgi:app"},
                  description="Quart, Flask's route code with async views",
                  groups=("flask-quart",), distributions=("quart", "werkzeug"),
                  long_lived=LONG_LIVED),
        AppFamily(name="fastapi", modules={"asgi": "apps.fastapi_app.asgi:app"},
                  description="FastAPI, async def path operations (the usual move from Flask)",
                  groups=("flask-fastapi",), distributions=("fastapi", "starlette"),
                  database=PSYCOPG, long_lived=LONG_LIVED),
        AppFamily(name="starlette", modules={"asgi": "apps.starlette_app.asgi:app"},
                  description="Starlette, async endpoints (the toolkit under FastAPI)",
                  groups=("starlette-pyramid",), distributions=("starlette",),
                  long_lived=LONG_LIVED),
        AppFamily(name="pyramid", modules={"wsgi": "apps.pyramid_app.wsgi:app"},
                  description="Pyramid, TechEmpower's setup: no debug or reload, orjson "
                              "renderer", groups=("starlette-pyramid",),
                  distributions=("pyramid", "webob", "orjson"), long_lived=LONG_LIVED),
    )
}

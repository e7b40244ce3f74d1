"""Every app family, one ``AppFamily`` entry each: its WSGI and ASGI import strings."""

from __future__ import annotations

from harness.catalogue.types import (
    AppFamily,
)

_DJANGO_SETTINGS = "DJANGO_SETTINGS_MODULE"


APPS: dict[str, AppFamily] = {
    family.name: family
    for family in (
        AppFamily(name="raw", modules={"wsgi": "apps.raw.wsgi:app", "asgi": "apps.raw.asgi:app"},
                  description="no framework: the contract on the bare gateway (the baseline)"),
        # One Django project (apps/djangoproj); the settings module picks the views.
        AppFamily(name="django",
                  modules={"wsgi": "apps.djangoproj.wsgi:application",
                           "asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings"},
                  description="Django, sync views: from wsgi.py, and from asgi.py (each view "
                              "run through sync_to_async, one thread per process)",
                  groups=("django",), distributions=("django", "asgiref")),
        AppFamily(name="django-async",
                  modules={"asgi": "apps.djangoproj.asgi:application"},
                  env={_DJANGO_SETTINGS: "apps.djangoproj.settings_async"},
                  description="Django, async views from asgi.py (aiohttp for /io)",
                  groups=("django",), distributions=("django", "asgiref")),
        AppFamily(name="flask", modules={"wsgi": "apps.flask_app.wsgi:app"},
                  description="Flask, sync views", groups=("flask-quart", "flask-fastapi"),
                  distributions=("flask", "werkzeug")),
        AppFamily(name="quart", modules={"asgi": "apps.quart_app.asgi:app"},
                  description="Quart, Flask's route code with async views",
                  groups=("flask-quart",), distributions=("quart", "werkzeug")),
        AppFamily(name="fastapi", modules={"asgi": "apps.fastapi_app.asgi:app"},
                  description="FastAPI, async def path operations (the usual move from Flask)",
                  groups=("flask-fastapi",), distributions=("fastapi", "starlette")),
        AppFamily(name="starlette", modules={"asgi": "apps.starlette_app.asgi:app"},
                  description="Starlette, async endpoints (the toolkit under FastAPI)",
                  groups=("starlette-pyramid",), distributions=("starlette",)),
        AppFamily(name="pyramid", modules={"wsgi": "apps.pyramid_app.wsgi:app"},
                  description="Pyramid, TechEmpower's setup: no debug or reload, orjson "
                              "renderer", groups=("starlette-pyramid",),
                  distributions=("pyramid", "webob", "orjson")),
    )
}

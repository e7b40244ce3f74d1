"""
ASGI config for djangoproj project.

It exposes the ASGI callable as a module-level variable named ``application``.

For more information on this file, see
https://docs.djangoproject.com/en/5.2/howto/deployment/asgi/

As ``startproject`` writes it, plus a small router: Django's ASGI handler serves HTTP only, so
WebSocket and lifespan scopes go to the raw ASGI app (the echo of /ws/echo, and the aiohttp
session the async views use for /io, made at startup and closed at shutdown; not the raw app's
database pool: the ORM has its own) — the way a project routes WebSockets to a consumer beside
Django with Channels' ``ProtocolTypeRouter``.
"""

import os

from django.core.asgi import get_asgi_application

from apps.raw import asgi as raw_asgi

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apps.djangoproj.settings")

django_application = get_asgi_application()


async def application(scope: raw_asgi.Scope, receive: raw_asgi.Receive,
                      send: raw_asgi.Send) -> None:
    if scope["type"] == "http":
        await django_application(scope, receive, send)
    elif scope["type"] == "lifespan":
        # The aiohttp session only: the ORM has its own pool (settings.DATABASES).
        await raw_asgi._lifespan(receive, send, database=False)
    else:
        await raw_asgi.app(scope, receive, send)

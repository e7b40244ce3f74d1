"""One Django project serving the app contract three ways (see apps/README.md, "Framework
families"): sync views from ``wsgi.py`` and from ``asgi.py`` (``settings``), async views from
``asgi.py`` (``settings_async``)."""

"""harness: compare Python gateway models (WSGI vs ASGI) and their servers under load."""

__version__ = "0.1.0"

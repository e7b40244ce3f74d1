"""Starlette family (ASGI): the toolkit FastAPI is built on, with nothing on top."""

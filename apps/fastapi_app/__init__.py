"""FastAPI family (ASGI): async def path operations, the usual destination of a Flask app."""

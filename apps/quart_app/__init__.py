"""Quart family (ASGI): apps/flask_app's route code with async views."""

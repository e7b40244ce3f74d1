"""Pyramid family (WSGI), set up as TechEmpower's Pyramid entry is."""

"""The error kinds a trial counts, in the order trials.csv lists them: one set for every
generator (the built-in's ``accounting``, Locust's listener through ``drivers/locust_book``) and
every protocol (a WebSocket failure maps onto one of them, ``wsconn.BOOK_KIND``).

This module imports nothing: the Locust listener's book loads it by path, where importing it
by name would run harness.loadgen's ``__init__`` (uvloop, numpy) inside Locust.
"""

ERROR_KINDS = ("connect", "io", "timeout", "status", "body")

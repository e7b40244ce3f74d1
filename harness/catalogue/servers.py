"""Every server under test, one ``Server`` entry each, with its documented preset."""

from __future__ import annotations

from harness.catalogue.types import (
    PresetRule,
    Server,
)

# WebSocket: every server runs the same protocol as the harness client (no pings, no
# compression). "Off" for pings is an interval longer than any run where a flag takes only a
# number: uvicorn's --ws-ping-interval 0 would ping without pause with --ws websockets.
_NO_PING_S = 86400


_UVICORN_WS_ARGS = ("--ws-ping-interval", str(_NO_PING_S), "--ws-per-message-deflate", "false")


_UVICORN_WS_SETTINGS = (
    f"pings off: --ws-ping-interval {_NO_PING_S} (uvicorn's default pings every 20 s)",
    "permessage-deflate off: --ws-per-message-deflate false (moot: the harness client offers "
    "none)",
)


_GUNICORN_RULE = ("gunicorn docs (design, 'How Many Workers?'): (2 x $num_cores) + 1 workers "
                  "to start with")


SERVERS: dict[str, Server] = {
    server.name: server
    for server in (
        Server(
            name="gunicorn-sync", gateway="wsgi", websocket=False, distribution="gunicorn",
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "sync", "{app}"),
            preset=PresetRule(workers_per_cpu=2, workers_plus=1, note=_GUNICORN_RULE),
            description="pre-fork, one request per worker at a time, no keep-alive",
        ),
        Server(
            name="gunicorn-gthread", gateway="wsgi", websocket=False, distribution="gunicorn",
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "gthread", "{threads_args}",
                     "{app}"),
            threads_args=("--threads", "{threads}"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_per_cpu=2,
                note=_GUNICORN_RULE + "; settings 'threads': 'generally in the 2-4 x "
                "$(NUM_CORES) range' (the low end: every thread of every worker shares the "
                "CPUs)"),
            description="pre-fork, a thread pool per worker, keep-alive",
        ),
        Server(
            name="gunicorn-gevent", gateway="wsgi", websocket=False, distribution="gunicorn",
            extra_distributions=("gevent",),
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "gevent", "{threads_args}",
                     "{app}"),
            threads_args=("--worker-connections", "{threads}"),
            threads_meaning="greenlets per worker (worker_connections)",
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_fixed=1000,
                note=_GUNICORN_RULE + "; settings 'worker_connections': default 1000 "
                "simultaneous clients per worker"),
            description="pre-fork, greenlets per worker (monkey-patched blocking I/O)",
        ),
        Server(
            name="uwsgi", gateway="wsgi", websocket=False, distribution="uwsgi",
            # --http-socket: the worker speaks HTTP itself (--http would add a router process);
            # --die-on-term: TERM stops uWSGI 2.0 instead of reloading it; --lazy-apps: load
            # the app in each worker after fork, like gunicorn, so no pooled client is shared.
            command=("{bindir}/uwsgi", "--http-socket", "{host}:{port}", "--master",
                     "--die-on-term", "--disable-logging", "--need-app", "--lazy-apps",
                     "--strict", "--listen", "{backlog}", "--pythonpath", "{root}", "--module",
                     "{app}",
                     "--processes", "{workers}", "{threads_args}"),
            threads_args=("--threads", "{threads}"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1, threads_fixed=2,
                note="uWSGI docs ('Things to know'): 'There is no magic rule for setting the "
                "number of processes or threads'; quickstart shape --processes N --threads 2, "
                "with N = (2 x cores) + 1 as for the other pre-fork servers"),
            description="pre-fork master + processes x threads, HTTP parsed in C",
        ),
        Server(
            name="granian-wsgi", gateway="wsgi", websocket=False, distribution="granian",
            command=("{python}", "-m", "granian", "--interface", "wsgi", "--host", "{host}",
                     "--port", "{port}", "--backlog", "{backlog}", "--workers", "{workers}",
                     "--no-access-log",
                     "{threads_args}", "{app}"),
            threads_args=("--blocking-threads", "{threads}"),
            threads_meaning="blocking threads per worker (None: Granian's default, "
                            "backpressure / 2)",
            preset=PresetRule(
                workers_per_cpu=1,
                note="Granian README ('Processes and threads'): 'matching the amount of CPU "
                "cores for the workers is generally the best starting point'; 'the default "
                "number of blocking threads should work properly with the majority of "
                "applications'"),
            description="Rust (hyper) HTTP, Python app on blocking threads",
        ),
        Server(
            name="uvicorn", gateway="asgi", websocket=True, distribution="uvicorn",
            extra_distributions=("httptools", "uvloop"),
            command=("{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}",
                     "--backlog", "{backlog}",
                     "--workers", "{workers}", "--loop", "uvloop", "--http", "httptools",
                     "--ws", "websockets", *_UVICORN_WS_ARGS, "--no-access-log", "{app}"),
            websocket_settings=_UVICORN_WS_SETTINGS,
            preset=PresetRule(
                workers_per_cpu=1,
                note="uvicorn docs (deployment): one event loop per process, --workers for "
                "more cores; workers = cores"),
            description="event loop: httptools parser on uvloop",
        ),
        Server(
            name="uvicorn-h11", gateway="asgi", websocket=True, distribution="uvicorn",
            extra_distributions=("h11", "wsproto"),
            command=("{python}", "-m", "uvicorn", "--host", "{host}", "--port", "{port}",
                     "--backlog", "{backlog}",
                     "--workers", "{workers}", "--loop", "asyncio", "--http", "h11",
                     "--ws", "wsproto", *_UVICORN_WS_ARGS, "--no-access-log", "{app}"),
            websocket_settings=_UVICORN_WS_SETTINGS,
            preset=PresetRule(
                workers_per_cpu=1,
                note="uvicorn docs (deployment): one event loop per process, --workers for "
                "more cores; workers = cores"),
            description="event loop: pure-Python h11/wsproto on the asyncio loop",
        ),
        Server(
            name="gunicorn-uvicorn", gateway="asgi", websocket=True, distribution="gunicorn",
            extra_distributions=("uvicorn-worker", "uvicorn"),
            # uvicorn_worker.UvicornWorker, with access_log=False through its CONFIG_KWARGS
            # hook: gunicorn's "no access log" still formats every access line otherwise.
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class",
                     "harness.backends.gunicorn_workers.QuietUvicornWorker", "{app}"),
            # gunicorn has no flag for them: the worker class's CONFIG_KWARGS sets them
            websocket_settings=(
                f"pings off: ws_ping_interval {_NO_PING_S} in the worker class's CONFIG_KWARGS "
                "(uvicorn's default pings every 20 s)",
                "permessage-deflate off: ws_per_message_deflate False in CONFIG_KWARGS (moot: "
                "the harness client offers none)"),
            preset=PresetRule(
                workers_per_cpu=2, workers_plus=1,
                note=_GUNICORN_RULE + " (gunicorn is the process manager here; "
                "uvicorn-worker docs: 'gunicorn example:app -w 4 -k "
                "uvicorn_worker.UvicornWorker')"),
            description="gunicorn master, uvicorn event-loop workers (uvicorn-worker)",
        ),
        Server(
            name="gunicorn-asgi", gateway="asgi", websocket=True, distribution="gunicorn",
            extra_distributions=("uvloop",),
            # gunicorn's own -k asgi worker in a subclass that only passes --backlog on (as shipped
            # it listens with asyncio's 100); its HTTP parser is pure Python, as for every gunicorn
            # entry, since gunicorn[fast]'s C parser would change them all.
            command=("{python}", "-m", "gunicorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class",
                     "harness.backends.gunicorn_asgi.BacklogASGIWorker", "--asgi-loop", "uvloop",
                     "{app}"),
            websocket_settings=(
                "pings: none (gunicorn's asgi worker sends none; it only answers the client's)",
                "permessage-deflate: not supported (the worker negotiates no extension)"),
            preset=PresetRule(
                workers_per_cpu=1,
                note="gunicorn docs (ASGI Worker, 'Performance Tips'): 'Tune worker count based "
                "on CPU cores: --workers $(nproc)' and 'Use uvloop' (--asgi-loop uvloop); "
                "workers = cores, not the (2 x $num_cores) + 1 of its WSGI workers"),
            description="gunicorn master, gunicorn's own asyncio ASGI workers (-k asgi) on uvloop",
        ),
        Server(
            name="hypercorn", gateway="asgi", websocket=True, distribution="hypercorn",
            extra_distributions=("uvloop",),
            command=("{python}", "-m", "hypercorn", "--bind", "{host}:{port}", "--backlog",
                     "{backlog}",
                     "--workers", "{workers}", "--worker-class", "uvloop", "{app}"),
            websocket_settings=(
                "pings off: Hypercorn's default (websocket_ping_interval unset; its flag "
                "takes only a number)",
                "permessage-deflate: accepted when offered (moot: the harness client offers "
                "none)"),
            preset=PresetRule(
                workers_per_cpu=1,
                note="Hypercorn docs give no rule (default --workers 1); one event loop per "
                "core, as for uvicorn; workers = cores"),
            description="event loop: h11/h2/wsproto on uvloop, master + worker processes",
        ),
        Server(
            name="daphne", gateway="asgi", websocket=True, distribution="daphne",
            # -v 0: verbosity 1 (the default) writes an access log line to stdout
            command=("{python}", "-m", "daphne", "-e",
                     "tcp:port={port}:interface={host}:backlog={backlog}", "-v", "0",
                     "--ping-interval", str(_NO_PING_S), "{app}"),
            websocket_settings=(
                f"pings off: --ping-interval {_NO_PING_S} (by default daphne pings a "
                "connection idle for 20 s)",
                "permessage-deflate: never accepted (autobahn's default)"),
            preset=PresetRule(
                workers_per_cpu=0, workers_plus=1,
                note="Daphne is single-process (no workers option): it uses one CPU whatever "
                "the budget; its docs scale out with several daphne processes behind a "
                "load balancer"),
            description="Twisted event loop, one process",
        ),
        Server(
            name="granian-asgi", gateway="asgi", websocket=True, distribution="granian",
            command=("{python}", "-m", "granian", "--interface", "asgi", "--host", "{host}",
                     "--port", "{port}", "--backlog", "{backlog}", "--workers", "{workers}",
                     "--no-access-log", "--ws",
                     "{threads_args}", "{app}"),
            threads_args=("--runtime-threads", "{threads}"),
            websocket_settings=(
                "WebSocket on: --ws (Granian's default, set explicitly)",
                "pings: none (Granian sends none)",
                "permessage-deflate: not supported"),
            threads_meaning="Rust runtime threads per worker (None: Granian's default, 1)",
            preset=PresetRule(
                workers_per_cpu=1,
                note="Granian README ('Processes and threads'): 'matching the amount of CPU "
                "cores for the workers is generally the best starting point'; 'the default "
                "number of threads is fine for the vast majority of applications'"),
            description="Rust (hyper) HTTP, Python app on an asyncio (uvloop) loop",
        ),
    )
}

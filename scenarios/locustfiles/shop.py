"""A shop's traffic mix for ``harness run --locustfile scenarios/locustfiles/shop.py``.

Each Locust user is one client in a closed loop (``wait_time = constant(0)``: the next request
goes out when the answer is in), so the scenario's ``--concurrency`` levels are numbers of
concurrent shoppers. Per visit: mostly the front page, often the catalogue, sometimes a page
that waits 50 ms on I/O, now and then a search that computes (the app contract's endpoints,
apps/README.md). The harness's listener records every request's latency per ``name`` and in
total; a request the locustfile marks failed (``response.failure``) counts as a wrong body.
"""

from __future__ import annotations

from locust import FastHttpUser, constant, task

IO_MS = 50
CPU_N = 1000  # about 1 ms of pure Python (the cpu_bound scenario asks n = 5000: ~4 ms)


class Shopper(FastHttpUser):
    wait_time = constant(0)
    # an answer slower than this is a timeout (the harness counts it as one)
    network_timeout = connection_timeout = 5.0

    @task(10)
    def front_page(self) -> None:
        self.client.get("/hello")

    @task(5)
    def catalogue(self) -> None:
        self.client.get("/json")

    @task(2)
    def checkout(self) -> None:
        # mode=sleep: no upstream needed, whatever the scenario (io_bound's upstream mode
        # needs the upstream delay service the harness starts for it)
        self.client.get(f"/io?ms={IO_MS}&mode=sleep", name="/io")

    @task(1)
    def search(self) -> None:
        with self.client.get(f"/cpu?n={CPU_N}", name="/cpu", catch_response=True) as response:
            if b'"result"' not in (response.content or b""):
                response.failure("no result in the /cpu answer")

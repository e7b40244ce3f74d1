"""The Locust user of a plain scenario (no --locustfile): the scenario's one request, again and
again, the next one as soon as the answer is in (a closed loop: N users = N concurrent clients).

Its request comes from ``--harness-config`` (see harness.drivers.locust_listener), so a worker
on another machine needs only this file and the listener. It runs inside Locust: it imports
locust and the standard library only.
"""

from __future__ import annotations

import json
import os
from typing import Any

from locust import FastHttpUser, constant, task
from locust.env import Environment

CONFIG_ENV = "HARNESS_LOCUST_CONFIG"
CHECK_BODY_KEY = "harness_check_body"  # the listener checks the body of these requests


class ScenarioUser(FastHttpUser):
    """One client of the scenario's closed loop."""

    wait_time = constant(0)

    def __init__(self, environment: Environment) -> None:
        text = getattr(environment.parsed_options, "harness_config", "") or \
            os.environ.get(CONFIG_ENV, "")
        config: dict[str, Any] = json.loads(text)
        # read by FastHttpUser.__init__: a request that takes longer is a timeout
        self.network_timeout = self.connection_timeout = float(config["timeout_s"])
        super().__init__(environment)
        self._method: str = config["method"]
        self._path: str = config["path"]
        self._name: str = config["name"]
        self._headers: dict[str, str] = dict(config["headers"])
        self._body: bytes | None = bytes.fromhex(config["body"]) or None

    @task
    def scenario_request(self) -> None:
        # the payload goes out as given: bytes too, though the stubs say str
        self.client.request(self._method, self._path, name=self._name,
                            data=self._body,  # type: ignore[arg-type]
                            headers=self._headers, context={CHECK_BODY_KEY: True})

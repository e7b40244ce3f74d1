"""Load models by name. A new one is a module with a LoadModel subclass plus one entry here."""

from __future__ import annotations

from harness.loadgen.models.base import LoadModel, WorkerPlan
from harness.registry import Registry

LOAD_MODELS: Registry[type[LoadModel]] = Registry("load model", {
    "closed": "harness.loadgen.models.closed:ClosedLoop",
    "open": "harness.loadgen.models.open:OpenLoop",
    "closed-mix": "harness.loadgen.models.mix:ClosedMix",
    "open-mix": "harness.loadgen.models.mix:OpenMix",
    "ws-closed": "harness.loadgen.models.ws:WsClosedLoop",
    "ws-open": "harness.loadgen.models.ws:WsOpenLoop",
    "ws-broadcast": "harness.loadgen.models.ws_fanout:WsBroadcast",
    "ws-idle": "harness.loadgen.models.ws_fanout:WsIdle",
})

__all__ = ["LOAD_MODELS", "LoadModel", "WorkerPlan"]

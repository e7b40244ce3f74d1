"""Load generators behind one interface, chosen by name: ``builtin`` (harness.loadgen, the
default) and ``locust``.

A driver turns a :class:`harness.loadgen.LoadSpec` into a :class:`harness.loadgen.LoadResult`
(HDR histograms, per-second series, errors by kind, saturation), so the runner, the result files
and the report never know which generator produced a trial. A new driver is one module with a
:class:`Driver` implementation plus one entry in :data:`DRIVERS`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from harness.registry import Registry

if TYPE_CHECKING:  # the generator is imported by the drivers that use it, not by --help
    from harness.loadgen import LoadResult, LoadSpec

DEFAULT_DRIVER = "builtin"


class Driver(Protocol):
    """Measures one load against a live target."""

    name: str

    def measure(self, spec: LoadSpec) -> LoadResult:
        """Run ``spec`` to completion (blocking). UsageError for a target that cannot be
        reached; RuntimeError when the generator itself failed."""
        ...

    def describe(self) -> dict[str, Any]:
        """What run.json records of the driver (name, version, settings)."""
        ...

    def supports(self, spec: LoadSpec) -> str | None:
        """None when the driver can run ``spec`` honestly; otherwise why not (the level is
        then recorded as unsupported by this driver, never approximated)."""
        ...


DRIVERS: Registry[type[Driver]] = Registry("driver", {
    "builtin": "harness.drivers.builtin:BuiltinDriver",
    "locust": "harness.drivers.locust:LocustDriver",
})


def get_driver(name: str = DEFAULT_DRIVER, **options: Any) -> Driver:
    """A new driver instance by name, with its own options (e.g. the locust driver's
    ``locustfile``); UsageError for an unknown name."""
    return DRIVERS.get(name)(**options)

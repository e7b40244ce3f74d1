"""CPU sets: parsing, text, and the one policy that splits the machine between the server under
test and the load generator (with the upstream delay service and the harness itself).

The policy: the server gets the upper half of the CPUs this process may use (at least one), the
generator the rest; on 2 cores the server gets CPU 1 and the generator CPU 0. ``run``, ``serve``
and ``verify`` all use it, so a server is measured on the same CPUs it was verified on.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

from harness.errors import UsageError

CpuSet = tuple[int, ...]


def parse_cpus(text: str, *, what: str = "--cpus") -> CpuSet:
    """Parse a CPU list like ``"0"``, ``"0,1"`` or ``"0-3"`` (taskset's syntax), sorted.

    >>> parse_cpus("3,0-1")
    (0, 1, 3)
    """
    cpus: list[int] = []
    try:
        for part in text.split(","):
            part = part.strip()
            if not part:
                continue
            if "-" in part:
                low, high = (int(x) for x in part.split("-", 1))
                if high < low:
                    raise ValueError(part)
                cpus.extend(range(low, high + 1))
            else:
                cpus.append(int(part))
    except ValueError:
        raise UsageError(
            f"{what}: expected a CPU list like '0', '0,1' or '0-3', got {text!r}"
        ) from None
    if not cpus or any(c < 0 for c in cpus):
        raise UsageError(f"{what}: expected a CPU list like '0', '0,1' or '0-3', got {text!r}")
    return tuple(sorted(set(cpus)))


def cpus_text(cpus: Sequence[int]) -> str:
    """``(1, 0)`` -> ``"0,1"``: the form taskset, cpuset and the result files take."""
    return ",".join(str(c) for c in sorted(set(cpus)))


def available_cpus() -> CpuSet:
    """The CPUs this process may run on."""
    return tuple(sorted(os.sched_getaffinity(0)))


def check_online(cpus: Sequence[int], *, what: str = "CPU set") -> CpuSet:
    """``cpus`` sorted, or UsageError when one is not a CPU of this machine.

    Checked against the machine, not this process's affinity: the harness may have pinned
    itself to the generator's CPUs before it starts a server on the others.
    """
    online = range(os.cpu_count() or 1)
    wanted = tuple(sorted(set(cpus)))
    missing = [c for c in wanted if c not in online]
    if not wanted or missing:
        raise UsageError(f"{what} {list(cpus)}: expected CPUs from 0 to {len(online) - 1}")
    return wanted


def check_usable(cpus: Sequence[int], *, what: str = "--cpus") -> CpuSet:
    """``cpus`` sorted, or UsageError when this process may not run on one of them (for
    pinning the generator or the upstream, which inherit this process's affinity)."""
    if not cpus:
        raise UsageError(f"{what} is empty; expected a CPU list like '0' or '0-1'")
    available = available_cpus()
    missing = sorted(set(cpus) - set(available))
    if missing:
        raise UsageError(f"{what} names CPU {missing[0]}, which this process cannot use; "
                         f"expected some of {list(available)}")
    return tuple(sorted(set(cpus)))


@dataclass(frozen=True, kw_only=True)
class CpuPlan:
    """Disjoint CPU sets: the server under test, and the generator (+ upstream + harness)."""

    server: CpuSet
    loadgen: CpuSet

    def to_dict(self) -> dict[str, list[int]]:
        return {"server": list(self.server), "loadgen": list(self.loadgen)}


def allocate_cpus(available: Sequence[int] | None = None, *,
                  server: Sequence[int] | None = None,
                  loadgen: Sequence[int] | None = None) -> CpuPlan:
    """The policy (see the module docstring), with the user's choices checked and applied."""
    avail = sorted(set(available if available is not None else available_cpus()))
    for name, cpus in (("--server-cpus", server), ("--loadgen-cpus", loadgen)):
        missing = sorted(set(cpus or ()) - set(avail))
        if missing:
            raise UsageError(f"{name}: CPU {missing[0]} is not available to this process: "
                             f"expected CPUs from {avail}")
    if server is None and loadgen is None:
        if len(avail) < 2:
            raise UsageError("only one CPU is available: the server and the load generator need "
                             "disjoint CPUs (give --server-cpus and --loadgen-cpus to share "
                             "one on purpose)")
        half = len(avail) // 2
        return CpuPlan(server=tuple(avail[half:]), loadgen=tuple(avail[:half]))
    if server is None:
        server = [c for c in avail if c not in set(loadgen or ())]
    if loadgen is None:
        loadgen = [c for c in avail if c not in set(server)]
    if not server or not loadgen:
        raise UsageError("no CPU left for the "
                         f"{'server' if not server else 'load generator'}: expected disjoint "
                         "--server-cpus and --loadgen-cpus")
    overlap = sorted(set(server) & set(loadgen))
    if overlap:
        raise UsageError(f"--server-cpus and --loadgen-cpus share CPU {overlap[0]}: expected "
                         "disjoint sets, so the generator does not steal the server's time")
    return CpuPlan(server=tuple(sorted(set(server))), loadgen=tuple(sorted(set(loadgen))))


def allocate_for_server(server: Sequence[int] | None,
                        available: Sequence[int] | None = None) -> CpuPlan:
    """For ``serve`` and ``verify``: the policy, or the user's server CPUs and every other CPU
    for the upstream (all of them on a single-CPU machine, where nothing else is possible)."""
    avail = sorted(set(available if available is not None else available_cpus()))
    if server is not None:
        wanted = check_online(server, what="--cpus") if available is None \
            else tuple(sorted(set(server)))
        rest = tuple(c for c in avail if c not in set(wanted))
        return CpuPlan(server=wanted, loadgen=rest or tuple(avail))
    if len(avail) < 2:
        return CpuPlan(server=tuple(avail), loadgen=tuple(avail))
    return allocate_cpus(avail)

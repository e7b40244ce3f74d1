"""What verifying a live target found: one :class:`Check` per thing checked, and the
:class:`VerifyReport` of them all.

Both kinds of verification report this way: the app contract (:mod:`harness.verify`) and a
user's own app, whose one check is that its path answers 2xx (:mod:`harness.ownapp`). This
module imports neither, so they import it and each other one way only (verify -> ownapp).
"""

from __future__ import annotations

from dataclasses import dataclass

# The bound on each request of a verification, unless the caller gives another.
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True, kw_only=True)
class Check:
    """One contract check: its stable name, whether it passed, and what was seen or expected."""

    name: str
    ok: bool
    detail: str
    # Passed, but something an expert would want to know (a server that omits Date).
    warning: bool = False


@dataclass(frozen=True, kw_only=True)
class VerifyReport:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(check.ok for check in self.checks)

    @property
    def failures(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if not check.ok)

    @property
    def warnings(self) -> tuple[Check, ...]:
        return tuple(check for check in self.checks if check.ok and check.warning)

    def summary(self) -> str:
        """One line: how many passed, and each failure's name and detail."""
        if self.ok:
            notes = "".join(f"; warning {c.name}: {c.detail}" for c in self.warnings)
            return f"all {len(self.checks)} checks passed{notes}"
        failed = "; ".join(f"{c.name}: {c.detail}" for c in self.failures)
        return f"{len(self.failures)} of {len(self.checks)} checks failed: {failed}"

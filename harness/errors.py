"""Errors the CLI turns into a one-line message and an exit code, never a traceback."""


class UsageError(Exception):
    """Bad input from the user: a malformed scenario, an unknown server, an unreachable URL.

    The CLI prints ``harness: error: <message>`` and exits with code 2. The message names what
    is wrong and what was expected.
    """


class TargetError(Exception):
    """A server under test failed to start, to become ready, or died.

    Raised by backends; the runner records the reason against the target and goes on.
    """


class UnreachableError(UsageError):
    """The load's target accepts no connection (refused, unresolvable, timed out).

    Bad input when the user gave the URL; during a run, a server that stopped answering since
    its last trial, which fails that trial and not the run.
    """


class GeneratorError(RuntimeError):
    """A load generator process failed or did not report in time; the trial is not measured."""

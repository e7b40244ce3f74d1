"""Name -> implementation, resolved lazily from an import string (uvicorn's registry style).

Backends, drivers and load models are each one small registry: a new implementation is one
module plus one entry, and an optional dependency is imported only when its name is chosen.

>>> BACKENDS = Registry("backend", {"local": "harness.backends.local:LocalBackend"})
>>> BACKENDS.names()
('local',)
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Mapping
from typing import Any, Generic, TypeVar

from harness.errors import UsageError

T = TypeVar("T")


def import_from_string(spec: str) -> Any:
    """``"package.module:attribute"`` -> the attribute."""
    module_name, sep, attribute = spec.partition(":")
    if not sep or not module_name or not attribute:
        raise ValueError(f"import string {spec!r}: expected 'module:attribute'")
    module = importlib.import_module(module_name)
    value = module
    for part in attribute.split("."):
        value = getattr(value, part)
    return value


def did_you_mean(name: str, choices: Mapping[str, object] | tuple[str, ...] | list[str]) -> str:
    """`` (did you mean 'x'?)`` when one of ``choices`` is close to ``name``, else ``""``."""
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Generic[T]):
    """Implementations of one seam by name. ``register`` adds one (a plugin, or a test's fake)."""

    def __init__(self, what: str, entries: Mapping[str, str]) -> None:
        self.what = what
        self._entries: dict[str, str | T] = dict(entries)

    def names(self) -> tuple[str, ...]:
        return tuple(self._entries)

    def register(self, name: str, implementation: str | T) -> None:
        self._entries[name] = implementation

    def unregister(self, name: str) -> None:
        self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The implementation named ``name``; UsageError listing the known names otherwise."""
        try:
            entry = self._entries[name]
        except KeyError:
            raise UsageError(f"unknown {self.what} {name!r}{did_you_mean(name, self.names())}: "
                             f"expected one of {', '.join(self.names())}") from None
        if isinstance(entry, str):
            loaded: T = import_from_string(entry)
            self._entries[name] = loaded
            return loaded
        return entry

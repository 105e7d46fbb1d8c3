"""Which classes stored data may rebuild, and how a class named by the data is found.

A class is named by `(module, qualname)`. It may be rebuilt only if that pair (or, for a nested
class, `(module, last part of qualname)`, the form LangGraph uses) is allowed: the default
allowlist below, plus what `with_allowlist` or `allowed=` added. Only then is it looked up, in
this order: classes passed as objects, the defaults, classes this process has written, and
attributes of an *already imported* module. A module named by the data is never imported.
"""

from __future__ import annotations

import functools
import importlib
import sys
from collections.abc import Iterable, Mapping
from typing import Any

from ._classes import SEEN
from ._errors import DisallowedTypeError, TypeNotFoundError

__all__ = ["Key", "Resolver", "default_classes", "normalize"]

Key = tuple[str, str]

# (module, names) of classes allowed by default. The modules are fixed here, so importing them
# is safe; a missing optional package (langgraph itself) is skipped.
_DEFAULT_SOURCES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("langchain_core.documents", ("Document",)),
    ("langgraph.types", ("Send", "Interrupt", "Command", "Overwrite", "TimeoutPolicy")),
    ("langgraph.types", ("StateSnapshot", "PregelTask")),
    ("langgraph.store.base", ("Item",)),
    ("langgraph.checkpoint.serde.types", ("_DeltaSnapshot",)),
)


@functools.lru_cache(maxsize=1)
def default_classes() -> Mapping[Key, type]:
    """The classes every serializer may rebuild: all LangChain message classes (and chunks),
    LangChain's `Document`, and LangGraph's own stored types."""
    found: dict[Key, type] = {}

    def add(cls: Any) -> None:
        if isinstance(cls, type):
            found[(cls.__module__, cls.__qualname__)] = cls

    messages = importlib.import_module("langchain_core.messages")
    base = messages.BaseMessage
    for name in getattr(messages, "__all__", ()):
        cls = getattr(messages, name, None)
        if isinstance(cls, type) and issubclass(cls, base):
            add(cls)
    for module_name, names in _DEFAULT_SOURCES:
        try:
            module = importlib.import_module(module_name)
        except ImportError:  # langgraph (the graph library) is optional for this package
            continue
        for name in names:
            add(getattr(module, name, None))
    return found


def normalize(entries: Iterable[Any]) -> tuple[frozenset[Key], dict[Key, type]]:
    """Split allowlist entries into `(module, name)` keys and classes given as objects.

    Raises:
        TypeError: An entry is neither a class nor a `(module, name)` pair of strings.
    """
    keys: set[Key] = set()
    classes: dict[Key, type] = {}
    for entry in entries:
        if isinstance(entry, type):
            # Also under __name__: the form LangGraph (and JsonPlusSerializer data) uses for
            # a nested class. Given as an object, the name cannot mean another class.
            for key in {(entry.__module__, entry.__qualname__), (entry.__module__, entry.__name__)}:
                classes[key] = entry
                keys.add(key)
        elif (
            isinstance(entry, tuple)
            and len(entry) == 2
            and isinstance(entry[0], str)
            and isinstance(entry[1], str)
        ):
            keys.add((entry[0], entry[1]))
        else:
            raise TypeError(
                f"allowlist entries are classes or (module, name) tuples, not {entry!r}"
            )
    return frozenset(keys), classes


def _attribute_path(module: str, qualname: str) -> type | None:
    mod = sys.modules.get(module)  # imported already, or not at all
    if mod is None or "<locals>" in qualname:
        return None
    obj: Any = mod
    for part in qualname.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    # Re-exports and aliases must not smuggle in another class under an allowed name.
    if isinstance(obj, type) and obj.__module__ == module and obj.__qualname__ == qualname:
        return obj
    return None


class Resolver:
    """Answers "may this class be rebuilt?" and finds it. Immutable once built."""

    __slots__ = ("_classes", "_keys", "keys")

    def __init__(self, keys: frozenset[Key], classes: Mapping[Key, type]) -> None:
        self.keys = keys  # what the user added to the defaults
        self._classes = dict(classes)
        self._keys: frozenset[Key] | None = None  # defaults + user keys, built on first use

    def allows(self, module: str, qualname: str) -> bool:
        """Whether `(module, qualname)` is on the allowlist."""
        keys = self._keys
        if keys is None:
            keys = self._keys = frozenset(default_classes()) | self.keys
        if (module, qualname) in keys:
            return True
        # LangGraph registers schema classes as (module, __name__); a nested class's qualname
        # is longer ("Outer.Inner", "test.<locals>.State").
        head, _, name = qualname.rpartition(".")
        return bool(head) and (module, name) in keys

    def lookup(self, module: str, qualname: str) -> type:
        """The allowed class `module.qualname`.

        Raises:
            DisallowedTypeError: The class is not on the allowlist.
            TypeNotFoundError: It is allowed but not present in this process.
        """
        if not self.allows(module, qualname):
            raise DisallowedTypeError(module, qualname)
        key = (module, qualname)
        cls = (
            self._classes.get(key)
            or default_classes().get(key)
            or _attribute_path(module, qualname)  # the module's class now, after a reload too
            or SEEN.get(f"{module}:{qualname}")
        )
        if cls is None:
            reason = (
                f"module {module!r} is not imported"
                if module not in sys.modules
                else f"module {module!r} has no class {qualname!r}"
            )
            raise TypeNotFoundError(module, qualname, reason)
        return cls

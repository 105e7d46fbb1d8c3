"""Have LangGraph hand a graph's state-schema types to our savers when it compiles a graph.

LangGraph computes the types of a graph's schemas and calls `checkpointer.with_allowlist(...)`
with them, but only when `LANGGRAPH_STRICT_MSGPACK=true` was set before LangGraph was imported
(`langgraph._internal._serde.STRICT_MSGPACK_ENABLED`). Our serializer rebuilds only allowlisted
types, so without that hand-off a user's own pydantic models, dataclasses and enums would not
load. Turning the hand-off on changes nothing else: LangGraph's serializer reads its own,
separate flag to decide whether it is strict, and a permissive `JsonPlusSerializer` answers
`with_allowlist` with itself.
"""

from __future__ import annotations

import logging
import types
from typing import Any, get_args, get_origin

from .serde._errors import langgraph_version

__all__ = ["enable_schema_allowlists"]

logger = logging.getLogger(__name__)
_on: bool | None = None
"""Whether the hand-off is on; None until the first call decided it (once per process)."""


def enable_schema_allowlists() -> bool:
    """Turn on LangGraph's compile-time schema hand-off; True when it is on.

    Safe to call often: only the first call does anything. On a LangGraph without the hand-off
    (before 1.0.10) it logs a warning, once per process: a graph whose state holds types of
    the application's own would write its checkpoints and fail to read them back.
    """
    global _on
    if _on is None:
        _on = _turn_on()
    return _on


def _turn_on() -> bool:
    version = langgraph_version()
    if version is None:  # LangGraph is not installed: no graph will be compiled
        return False
    try:
        from langgraph._internal import _serde
    except ImportError:  # LangGraph before 1.0.10 has no such module
        return _no_hand_off(version)
    if not hasattr(_serde, "STRICT_MSGPACK_ENABLED"):
        return _no_hand_off(version)
    _serde.STRICT_MSGPACK_ENABLED = True
    _walk_generic_aliases(_serde)
    return True


def _no_hand_off(version: str) -> bool:
    """Say that LangGraph `version` will not register a graph's types."""
    logger.warning(
        "LangGraph %s does not hand a compiled graph's state types to its checkpointer "
        "(LangGraph 1.0.10 and later do), so checkpoints holding your own pydantic models, "
        "dataclasses or enums will not load: upgrade LangGraph, or allow the types with "
        "MsgpackSerializer(allowed=[...]) or saver.with_allowlist([...])",
        version,
    )
    return False


def _walk_generic_aliases(serde: Any) -> None:
    """Make LangGraph's schema walk step into `collections.abc.Sequence[T]`, `Mapping[K, V]`,
    `typing.Sequence[T]` and every other alias of a generic class, as it does into `list[T]`
    and `dict[K, V]` (`Annotated`, `Union` and `Literal` it handles itself).

    It handles the builtin containers' aliases only: the types inside `Sequence[Customer]`
    were not allowlisted (Python 3.11+), or, on Python 3.10, where `isinstance(Sequence[T],
    type)` is true, the walk tested the alias with `issubclass` and compiling the graph
    failed with "issubclass() arg 1 must be a class". Each argument of such an alias is
    walked now.
    """
    walk = getattr(serde, "_collect_from_type", None)
    if walk is None or getattr(walk, "_checkpointers_guard", False):
        return

    def guarded(typ: Any, allowlist: Any, seen: Any, seen_ids: Any) -> None:
        if isinstance(typ, types.GenericAlias) or isinstance(get_origin(typ), type):
            for arg in get_args(typ):
                guarded(arg, allowlist, seen, seen_ids)
            return
        walk(typ, allowlist, seen, seen_ids)

    guarded._checkpointers_guard = True  # type: ignore[attr-defined]
    serde._collect_from_type = guarded

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

__all__ = ["enable_schema_allowlists"]

logger = logging.getLogger(__name__)
_done = False


def enable_schema_allowlists() -> bool:
    """Turn on LangGraph's compile-time schema hand-off; True when it is on.

    Safe to call often: only the first call does anything.
    """
    global _done
    if _done:
        return True
    try:
        from langgraph._internal import _serde
    except ImportError:  # LangGraph is not installed: no graph will be compiled
        return False
    if not hasattr(_serde, "STRICT_MSGPACK_ENABLED"):
        logger.warning(
            "this LangGraph version has no schema hand-off flag; pass your state types with "
            "MsgpackSerializer(allowed=[...]) or saver.with_allowlist([...])"
        )
        return False
    _serde.STRICT_MSGPACK_ENABLED = True
    _done = True
    return True

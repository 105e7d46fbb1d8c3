"""Run a graph scenario twice, on the saver under test and on LangGraph's `InMemorySaver`.

LangGraph's own in-memory saver is the reference: whatever a graph stores and reads back
through it is what a user expects from any saver. A scenario is an `async def` taking a
`Harness`; it runs graphs on `r.saver` and returns what it observed. `assert_same_as_reference`
runs it on the target's saver and on a fresh `InMemorySaver` in the same flavor and compares
the two observations after `plain()` turned them into plain data.

Checkpoint ids, task ids and interrupt ids differ between any two runs (they come from the
clock or hash a checkpoint id), so `plain()` replaces each with a label numbered in order of
first appearance: two runs that store the same shape get the same labels. Channel versions
keep their counter and drop their random part; `created_at` and `ts` are dropped.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import pydantic
from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Interrupt, PregelTask, StateSnapshot

from .harness import Harness

Scenario = Callable[[Harness], Awaitable[Any]]

# A UUID (checkpoint and task ids) or 32 hex digits (interrupt ids).
_ID = re.compile(
    r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|(?<![0-9a-f])[0-9a-f]{32}(?![0-9a-f])"
)
_VERSION = re.compile(r"^(\d{32})\.")
_DROPPED = {"created_at", "ts"}


class Labels:
    """Gives each id seen a stable label: `#0`, `#1`, ... in order of first appearance."""

    def __init__(self) -> None:
        self._labels: dict[str, str] = {}

    def __call__(self, match: re.Match[str]) -> str:
        return self._labels.setdefault(match.group(0), f"#{len(self._labels)}")


def plain(value: Any, labels: Labels | None = None) -> Any:
    """`value` as plain, comparable data with run-specific ids replaced by labels."""
    labels = labels or Labels()

    def walk(v: Any) -> Any:
        if isinstance(v, str):
            version = _VERSION.match(v)
            if version:
                return f"v{int(version.group(1))}"
            return _ID.sub(labels, v)
        if v is None or isinstance(v, (bool, int, float, bytes)):
            return v
        if isinstance(v, (datetime, date, time, timedelta, Decimal, UUID)):
            return {type(v).__name__: repr(v)}
        if isinstance(v, StateSnapshot):
            return {"snapshot": {k: walk(x) for k, x in v._asdict().items() if k not in _DROPPED}}
        if isinstance(v, PregelTask):
            fields = v._asdict()
            fields["error"] = repr(v.error) if v.error is not None else None
            return {"task": {k: walk(x) for k, x in fields.items()}}
        if isinstance(v, Interrupt):
            return {"interrupt": walk(v.value), "id": walk(v.id)}
        if isinstance(v, BaseMessage):
            return {type(v).__name__: walk(v.model_dump())}
        if isinstance(v, pydantic.BaseModel):
            return {type(v).__name__: walk(v.model_dump())}
        if dataclasses.is_dataclass(v) and not isinstance(v, type):
            return {type(v).__name__: walk(dataclasses.asdict(v))}
        if isinstance(v, dict):
            return {_key(walk(k)): walk(x) for k, x in v.items() if not _dropped(k)}
        if isinstance(v, list):
            return [walk(x) for x in v]
        if isinstance(v, tuple) and type(v) is not tuple:  # a NamedTuple
            return {type(v).__name__: [walk(x) for x in v]}
        if isinstance(v, tuple):
            return {"tuple": [walk(x) for x in v]}
        if isinstance(v, (set, frozenset)):
            return {type(v).__name__: sorted((walk(x) for x in v), key=repr)}
        if isinstance(v, BaseException):
            return repr(v)
        return {type(v).__name__: walk(getattr(v, "__dict__", repr(v)))}

    return walk(value)


def _dropped(key: Any) -> bool:
    """Keys that say nothing about what was stored.

    `InMemorySaver.get_tuple` of a config that names a checkpoint hands back that config
    itself, with whatever runtime keys LangGraph put in it (`__pregel_checkpointer`, the
    saver object); the savers of this package return a clean config.
    """
    return key in _DROPPED or (isinstance(key, str) and key.startswith("__pregel_"))


def _key(k: Any) -> Any:
    """A plain dict key: a tuple key walks to a list, which is not hashable."""
    return repr(k) if isinstance(k, (list, dict)) else k


def _thread_config(config: RunnableConfig) -> RunnableConfig:
    return {"configurable": {"thread_id": config["configurable"]["thread_id"]}}


async def stored(r: Harness, config: RunnableConfig) -> list[dict[str, Any]]:
    """Every checkpoint of the thread, in every namespace, oldest first, as the saver keeps it.

    Ordered by checkpoint id (creation time), so both runs list them in the same order;
    pending writes are sorted, since the order of writes of parallel tasks is not part of
    the contract (LangGraph orders them itself when it applies them).
    """
    tuples = await r.list(_thread_config(config))
    tuples.sort(key=lambda t: t.config["configurable"]["checkpoint_id"])
    found = []
    for t in tuples:
        cp = t.checkpoint
        found.append(
            {
                "config": t.config,
                "parent": t.parent_config,
                "metadata": t.metadata,
                "values": cp["channel_values"],
                "versions": cp["channel_versions"],
                "seen": cp["versions_seen"],
                "updated": sorted(cp.get("updated_channels") or []),
                "writes": sorted(t.pending_writes, key=_write_order),
            }
        )
    return found


def _write_order(write: tuple[str, str, Any]) -> tuple[str, str]:
    """A pending write's place among its checkpoint's: by channel and value, never by task id.

    `plain()` labels task ids in order of first appearance, so writes in the saver's order
    would give two runs different labels for the same tasks whenever the savers order writes
    differently (one by task path and id, one as they came), and the task ids are random.
    """
    _task_id, channel, value = write
    return channel, repr(plain(value))


def _sorted_writes(observed: Any) -> Any:
    """Sort, after labelling, every `writes` list of `stored()` rows within `observed`."""
    if isinstance(observed, dict):
        return {
            k: sorted(v, key=repr) if k == "writes" and isinstance(v, list) else _sorted_writes(v)
            for k, v in observed.items()
        }
    if isinstance(observed, list):
        return [_sorted_writes(x) for x in observed]
    return observed


async def assert_same_as_reference(h: Harness, scenario: Scenario) -> Any:
    """Run `scenario` on `h.saver` and on an `InMemorySaver`; their observations must match.

    Returns the plain observation of the saver under test, for further checks.
    """
    ours = _sorted_writes(plain(await scenario(h)))
    reference = Harness(h.target, h.flavor, InMemorySaver())  # type: ignore[arg-type]
    expected = _sorted_writes(plain(await scenario(reference)))
    differences = _differences(ours, expected)
    assert not differences, "differs from InMemorySaver at:\n" + "\n".join(differences[:8])
    return ours


def _differences(ours: Any, expected: Any, path: str = "") -> list[str]:
    """Where two plain observations differ: `path: ours != reference`, innermost first."""
    if isinstance(ours, dict) and list(ours) == ["tuple"] and isinstance(expected, list):
        # The reference's serializer (msgpack through `JsonPlusSerializer`) gives a tuple back
        # as a list; this package's serializer keeps it a tuple, as the graph wrote it
        # (LangGraph writes interrupts as a tuple). Only that direction is accepted.
        ours = ours["tuple"]
    if isinstance(ours, dict) and isinstance(expected, dict):
        found = []
        for key in [*expected, *(k for k in ours if k not in expected)]:
            if key not in ours or key not in expected:
                found.append(f"{path}.{key}: {ours.get(key)!r} != {expected.get(key)!r}")
            else:
                found.extend(_differences(ours[key], expected[key], f"{path}.{key}"))
        return found
    if isinstance(ours, list) and isinstance(expected, list) and len(ours) == len(expected):
        return [
            d
            for i, (a, b) in enumerate(zip(ours, expected, strict=True))
            for d in _differences(a, b, f"{path}[{i}]")
        ]
    # Strict at the leaves: 1, 1.0 and True are equal in Python, not in what a saver returns.
    same = type(ours) is type(expected) and ours == expected
    return [] if same else [f"{path}: {ours!r} != {expected!r}"]

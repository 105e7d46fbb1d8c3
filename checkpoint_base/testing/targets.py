"""The registry of backend targets: one place that says how to open each backend for tests.

A target opens a fresh, isolated saver (a temporary file, a fresh schema, a fresh key
prefix) in the sync flavor, the async flavor, or both. The conformance suite runs every test
on every target x flavor; the benchmark harness measures the same targets.
"""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import (
    AbstractAsyncContextManager,
    AbstractContextManager,
    asynccontextmanager,
    contextmanager,
)
from dataclasses import dataclass, field
from typing import Any

from .._backend import Capabilities
from .._memory import MemorySaver
from .._saver import CheckpointSaver

__all__ = ["TARGET_MODULES", "Target", "all_targets"]

SyncOpener = Callable[[], AbstractContextManager[CheckpointSaver]]
AsyncOpener = Callable[[], AbstractAsyncContextManager[CheckpointSaver]]
OfficialOpener = Callable[[], AbstractContextManager[Any]]
AsyncOfficialOpener = Callable[[], AbstractAsyncContextManager[Any]]


@dataclass(frozen=True)
class Target:
    """One way to run a backend in tests and benchmarks.

    Attributes:
        name: Test id prefix, e.g. "postgres-pool" (ids read `name-sync`, `name-async`).
        backend: The backend family: "memory", "sqlite", "postgres", "redis".
        capabilities: The backend's declared capabilities (for capability markers).
        open_sync: Opens an isolated sync saver with its schema set up, or None.
        open_async: Opens an isolated async saver with its schema set up, or None.
        official_sync: Opens the official LangGraph saver of the same database (benchmarks).
        official_async: Async twin of `official_sync`.
        url: A URL `connect()` accepts for this target, when there is one (CLI, migration).
        xfail: Test name -> reason, for known gaps (strict xfails).
    """

    name: str
    backend: str
    capabilities: Capabilities
    open_sync: SyncOpener | None = None
    open_async: AsyncOpener | None = None
    official_sync: OfficialOpener | None = None
    official_async: AsyncOfficialOpener | None = None
    url: Callable[[], str] | None = None
    xfail: dict[str, str] = field(default_factory=dict)


# One module per backend; each defines `targets() -> list[Target]`.
TARGET_MODULES = [
    "checkpoint_base.testing.targets",
    "checkpoint_sqlite._testing",
    "checkpoint_postgres._testing",
    "checkpoint_redis._testing",
]


def targets() -> list[Target]:
    """The memory backend's targets."""

    @contextmanager
    def open_sync() -> Iterator[CheckpointSaver]:
        with MemorySaver() as saver:
            yield saver

    @asynccontextmanager
    async def open_async() -> AsyncIterator[CheckpointSaver]:
        async with MemorySaver() as saver:
            yield saver

    @contextmanager
    def official() -> Iterator[Any]:
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()

    @asynccontextmanager
    async def official_async() -> AsyncIterator[Any]:
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()

    return [
        Target(
            name="memory",
            backend="memory",
            capabilities=MemorySaver().backend.capabilities,
            open_sync=open_sync,
            open_async=open_async,
            official_sync=official,
            official_async=official_async,
            url=lambda: "memory://",
        )
    ]


def all_targets(only: Callable[[Target], bool] | None = None) -> list[Target]:
    """Every registered target, in registry order.

    A module that fails to import is an error, never a silent skip.
    """
    found: list[Target] = []
    for name in TARGET_MODULES:
        module = importlib.import_module(name)
        found.extend(t for t in module.targets() if only is None or only(t))
    return found

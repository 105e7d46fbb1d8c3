"""Handles: one opened subject (a saver or a raw-driver floor) behind one small interface.

Workloads are written once against `Handle`. A sync subject's `async` methods call the
blocking method directly (the benchmark's event loop runs nothing else meanwhile, so the
only added cost is one coroutine step, well under a microsecond); an async subject awaits
its native async method. The `*_sync` methods are for the concurrency workload's threads.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from langchain_core.runnables import RunnableConfig

from ._graph import PutCall, WritesCall, for_thread, fresh_checkpoint

__all__ = ["Handle", "SaverHandle"]


class Handle(ABC):
    """One opened subject of one flavor.

    Attributes:
        sync: True for the sync flavor (blocking calls), False for the async flavor.
    """

    sync: bool

    @abstractmethod
    def prepare_put(self, thread_id: str, call: PutCall) -> Any:
        """Arguments for `put`, built outside the timed region."""

    @abstractmethod
    def prepare_writes(self, thread_id: str, call: WritesCall) -> Any:
        """Arguments for `put_writes`, built outside the timed region."""

    @abstractmethod
    def put_sync(self, args: Any) -> None:
        """Store one checkpoint (sync flavor only)."""

    @abstractmethod
    async def put(self, args: Any) -> None:
        """Store one checkpoint."""

    @abstractmethod
    async def put_writes(self, args: Any) -> None:
        """Store one task's writes."""

    @abstractmethod
    async def get(self, thread_id: str, checkpoint_id: str | None) -> bool:
        """Read the latest checkpoint (or the one named); True when found."""

    @abstractmethod
    async def list(self, thread_id: str, limit: int | None, step: int | None) -> int:
        """List newest first (at most `limit`, only metadata step `step`); the count read."""

    @abstractmethod
    async def delete(self, thread_id: str) -> None:
        """Delete a whole thread."""

    async def writers(self, n: int) -> list[Handle]:
        """Handles for `n` concurrent writers: a saver shares itself (and its pool)."""
        return [self] * n

    async def storage_bytes(self) -> int | None:
        """Bytes this subject's isolated store holds, or None when it cannot be measured."""
        return None

    async def aclose(self) -> None:  # noqa: B027 - most handles own nothing to release
        """Release what the handle opened itself."""


def _config(thread_id: str, checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


class SaverHandle(Handle):
    """A LangGraph checkpointer (ours or an official one), driven through its public API."""

    def __init__(self, saver: Any, *, sync: bool) -> None:
        self.saver = saver
        self.sync = sync

    def prepare_put(self, thread_id: str, call: PutCall) -> Any:
        return (
            for_thread(call.config, thread_id),
            fresh_checkpoint(call.checkpoint),
            dict(call.metadata),
            dict(call.new_versions),
        )

    def prepare_writes(self, thread_id: str, call: WritesCall) -> Any:
        return (for_thread(call.config, thread_id), list(call.writes), call.task_id, call.task_path)

    def put_sync(self, args: Any) -> None:
        self.saver.put(*args)

    async def put(self, args: Any) -> None:
        if self.sync:
            self.saver.put(*args)
        else:
            await self.saver.aput(*args)

    async def put_writes(self, args: Any) -> None:
        if self.sync:
            self.saver.put_writes(*args)
        else:
            await self.saver.aput_writes(*args)

    async def get(self, thread_id: str, checkpoint_id: str | None) -> bool:
        config = _config(thread_id, checkpoint_id)
        if self.sync:
            return self.saver.get_tuple(config) is not None
        return await self.saver.aget_tuple(config) is not None

    async def list(self, thread_id: str, limit: int | None, step: int | None) -> int:
        where = {"step": step} if step is not None else None
        config = _config(thread_id)
        if self.sync:
            return sum(1 for _ in self.saver.list(config, filter=where, limit=limit))
        count = 0
        async for _ in self.saver.alist(config, filter=where, limit=limit):
            count += 1
        return count

    async def delete(self, thread_id: str) -> None:
        if self.sync:
            self.saver.delete_thread(thread_id)
        else:
            await self.saver.adelete_thread(thread_id)

    async def storage_bytes(self) -> int | None:
        from ._storage import saver_storage_bytes

        return await saver_storage_bytes(self.saver)

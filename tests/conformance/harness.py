"""A harness that lets each conformance test be written once for both flavors.

Test bodies are `async def` and call `await h.put(...)`, `await h.list(...)`; the harness
calls the saver's sync method for the `sync` flavor and its `a*` twin for `async`.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple

from checkpoint_base import CheckpointSaver, Compaction
from checkpoint_base.testing.targets import Target


class Harness:
    """One opened saver of one target, in one flavor."""

    def __init__(self, target: Target, flavor: str, saver: CheckpointSaver) -> None:
        self.target = target
        self.flavor = flavor
        self.saver = saver

    @property
    def is_async(self) -> bool:
        return self.flavor == "async"

    async def put(
        self, config: RunnableConfig, checkpoint: Any, metadata: Any, new_versions: Any
    ) -> RunnableConfig:
        if self.is_async:
            return await self.saver.aput(config, checkpoint, metadata, new_versions)
        return self.saver.put(config, checkpoint, metadata, new_versions)

    async def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        if self.is_async:
            await self.saver.aput_writes(config, writes, task_id, task_path)
        else:
            self.saver.put_writes(config, writes, task_id, task_path)

    async def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        if self.is_async:
            return await self.saver.aget_tuple(config)
        return self.saver.get_tuple(config)

    async def list(
        self, config: RunnableConfig | None, **kwargs: Any
    ) -> builtins.list[CheckpointTuple]:
        if self.is_async:
            return [t async for t in self.saver.alist(config, **kwargs)]
        return list(self.saver.list(config, **kwargs))

    async def delete_thread(self, thread_id: str) -> None:
        if self.is_async:
            await self.saver.adelete_thread(thread_id)
        else:
            self.saver.delete_thread(thread_id)

    async def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        if self.is_async:
            await self.saver.adelete_for_runs(run_ids)
        else:
            self.saver.delete_for_runs(run_ids)

    async def copy_thread(self, source: str, target: str) -> None:
        if self.is_async:
            await self.saver.acopy_thread(source, target)
        else:
            self.saver.copy_thread(source, target)

    async def prune(self, thread_ids: Sequence[str], strategy: str = "keep_latest") -> None:
        if self.is_async:
            await self.saver.aprune(thread_ids, strategy=strategy)
        else:
            self.saver.prune(thread_ids, strategy=strategy)

    async def delete_idle_threads(self, idle: Any, *, dry_run: bool = False) -> list[str]:
        if self.is_async:
            return await self.saver.adelete_idle_threads(idle, dry_run=dry_run)
        return self.saver.delete_idle_threads(idle, dry_run=dry_run)

    async def claim(self, name: str, holder: str, seconds: float) -> bool:
        """`Backend.claim` through the saver's executor of this flavor."""
        plan = self.saver.backend.claim(name, holder, seconds)
        if self.is_async:
            return await self.saver._arun(plan)
        return self.saver._run(plan)

    async def compact(self, *, full: bool = False) -> Compaction:
        if self.is_async:
            return await self.saver.acompact(full=full)
        return self.saver.compact(full=full)

    async def delta_history(self, config: RunnableConfig, channels: Sequence[str]) -> Any:
        if self.is_async:
            return await self.saver.aget_delta_channel_history(config=config, channels=channels)
        return self.saver.get_delta_channel_history(config=config, channels=channels)

    # -- graphs ------------------------------------------------------------------------------

    async def invoke(self, graph: Any, value: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        if self.is_async:
            return await graph.ainvoke(value, config, **kwargs)
        return graph.invoke(value, config, **kwargs)

    async def get_state(self, graph: Any, config: RunnableConfig, **kwargs: Any) -> Any:
        if self.is_async:
            return await graph.aget_state(config, **kwargs)
        return graph.get_state(config, **kwargs)

    async def state_history(
        self, graph: Any, config: RunnableConfig, **kwargs: Any
    ) -> builtins.list[Any]:
        if self.is_async:
            return [s async for s in graph.aget_state_history(config, **kwargs)]
        return list(graph.get_state_history(config, **kwargs))

    async def update_state(
        self, graph: Any, config: RunnableConfig, values: Any, **kwargs: Any
    ) -> Any:
        if self.is_async:
            return await graph.aupdate_state(config, values, **kwargs)
        return graph.update_state(config, values, **kwargs)

    async def bulk_update_state(self, graph: Any, config: RunnableConfig, supersteps: Any) -> Any:
        if self.is_async:
            return await graph.abulk_update_state(config, supersteps)
        return graph.bulk_update_state(config, supersteps)

    async def stream(
        self, graph: Any, value: Any, config: RunnableConfig, **kwargs: Any
    ) -> builtins.list[Any]:
        if self.is_async:
            return [chunk async for chunk in graph.astream(value, config, **kwargs)]
        return list(graph.stream(value, config, **kwargs))

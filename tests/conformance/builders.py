"""Small builders of checkpoints and configs for the storage-level conformance tests."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any
from uuid import uuid4

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6

_steps = itertools.count()


def new_thread() -> str:
    return f"t-{uuid4()}"


def config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


def checkpoint(
    values: dict[str, Any] | None = None,
    versions: dict[str, Any] | None = None,
    **extra: Any,
) -> Checkpoint:
    values = values or {}
    return Checkpoint(
        v=1,
        id=str(uuid6(clock_seq=next(_steps))),
        ts=datetime.now(timezone.utc).isoformat(),
        channel_values=values,
        channel_versions=versions if versions is not None else dict.fromkeys(values, 1),
        versions_seen=extra.pop("versions_seen", {}),
        pending_sends=[],  # type: ignore[typeddict-unknown-key]
        updated_channels=None,
    )


def cid(cfg: RunnableConfig) -> str:
    return str(cfg["configurable"]["checkpoint_id"])


async def chain(
    h: Any, thread_id: str, n: int, ns: str = "", **metadata: Any
) -> list[RunnableConfig]:
    """Put `n` checkpoints, each the parent of the next; returns their configs, oldest first."""
    configs: list[RunnableConfig] = []
    parent: str | None = None
    for step in range(n):
        stored = await h.put(
            config(thread_id, ns, parent),
            checkpoint({"step": step}, {"step": step + 1}),
            {"source": "loop", "step": step, **metadata},
            {"step": step + 1},
        )
        configs.append(stored)
        parent = cid(stored)
    return configs

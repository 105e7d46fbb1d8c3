"""What the backends' storage-full tests share: a put and a put_writes refused whole."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig

from checkpoint_base import StorageFullError

from .conformance.builders import checkpoint

Check = Callable[[StorageFullError], None]


def refused_when_full(saver: Any, parent: RunnableConfig, big: str, check: Check) -> None:
    """On a full storage, a put after `parent` whose channel `b` holds `big`, and a
    put_writes of `big`, each raise a `StorageFullError`, which `check` reads."""
    with pytest.raises(StorageFullError) as raised:
        saver.put(parent, checkpoint({"b": big}, {"b": 2}), {"step": 1}, {"b": 2})
    check(raised.value)
    with pytest.raises(StorageFullError) as raised:
        saver.put_writes(parent, [("b", big)], "task-1")
    check(raised.value)


async def arefused_when_full(saver: Any, parent: RunnableConfig, big: str, check: Check) -> None:
    """`refused_when_full` on an async saver."""
    with pytest.raises(StorageFullError) as raised:
        await saver.aput(parent, checkpoint({"b": big}, {"b": 2}), {"step": 1}, {"b": 2})
    check(raised.value)
    with pytest.raises(StorageFullError) as raised:
        await saver.aput_writes(parent, [("b", big)], "task-1")
    check(raised.value)

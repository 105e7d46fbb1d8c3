"""Sync and async flavors: a sync call on an async-only saver never deadlocks."""

from __future__ import annotations

import asyncio
import time

import pytest

from checkpoint_base import SyncCallInEventLoopError

from .builders import checkpoint, config, new_thread
from .harness import Harness


async def test_sync_call_from_the_saver_loop_fails_fast(h: Harness) -> None:
    if not h.is_async:
        pytest.skip("only async-only savers hand sync calls to their event loop")
    if h.saver._executor is not None:
        pytest.skip("this async saver also has a sync executor: sync calls are native")
    tid = new_thread()
    await h.saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    started = time.monotonic()
    with pytest.raises(SyncCallInEventLoopError, match="async"):
        h.saver.get_tuple(config(tid))
    with pytest.raises(SyncCallInEventLoopError):
        list(h.saver.list(config(tid)))
    assert time.monotonic() - started < 1.0
    # From another thread, the sync API works: the call is handed to the saver's loop.
    got = await asyncio.to_thread(h.saver.get_tuple, config(tid))
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    listed = await asyncio.to_thread(lambda: list(h.saver.list(config(tid))))
    assert len(listed) == 1


async def test_both_flavors_see_the_same_storage(h: Harness) -> None:
    tid = new_thread()
    stored = await h.put(config(tid), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
    if h.is_async:
        got = await h.saver.aget_tuple(stored)
    else:
        got = h.saver.get_tuple(stored)
    assert got is not None and got.metadata == {"step": 1}

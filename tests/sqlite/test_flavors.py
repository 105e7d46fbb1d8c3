"""The async saver: a sync call from inside its own event loop fails at once, never deadlocks."""

from __future__ import annotations

import asyncio
import time

import aiosqlite
import pytest

from checkpoint_base import SyncCallInEventLoopError
from checkpoint_sqlite import AsyncSqliteSaver
from tests.conformance.builders import checkpoint, config, new_thread


async def _sync_calls_fail_fast(saver: AsyncSqliteSaver) -> None:
    tid = new_thread()
    stored = await saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    started = time.monotonic()
    with pytest.raises(SyncCallInEventLoopError):
        saver.get_tuple(stored)
    with pytest.raises(SyncCallInEventLoopError):
        saver.put(config(tid), checkpoint({"a": 2}), {}, {"a": 2})
    with pytest.raises(SyncCallInEventLoopError):
        next(iter(saver.list(config(tid))))
    with pytest.raises(SyncCallInEventLoopError):
        saver.put_writes(stored, [("a", 1)], "task")
    assert time.monotonic() - started < 1.0
    # The refused calls changed nothing, and the saver still works.
    listed = [t async for t in saver.alist(config(tid))]
    assert len(listed) == 1 and listed[0].pending_writes == []
    # From another thread the sync API is handed to the saver's loop.
    got = await asyncio.to_thread(saver.get_tuple, stored)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


@pytest.mark.parametrize("where", ["file", "memory"])
async def test_sync_call_on_async_saver_in_its_loop_raises(db_path: str, where: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(
        db_path if where == "file" else ":memory:"
    ) as saver:
        await _sync_calls_fail_fast(saver)


async def test_sync_call_on_async_saver_of_a_given_connection_raises(db_path: str) -> None:
    async with aiosqlite.connect(db_path) as conn:
        await _sync_calls_fail_fast(AsyncSqliteSaver(conn))

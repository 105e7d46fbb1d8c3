"""An async saver on `:memory:` (`AsyncMemoryExecutor`): gets and puts run on the event
loop's thread, other plans on the executor's thread, one plan at a time."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Generator
from typing import Any

import pytest

import checkpoint_sqlite._aexecutor as aexecutor_module
from checkpoint_base import StorageError
from checkpoint_sqlite import AsyncSqliteSaver
from checkpoint_sqlite._requests import Query
from tests.conformance.builders import checkpoint, config

# About a second of work for SQLite: a plan that is still running when the test cancels it.
_SLOW = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 3000000)"
    " SELECT count(*) FROM c"
)


@pytest.fixture
def threads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The thread of every plan the executor runs."""
    seen: list[int] = []
    run_on = aexecutor_module.sync_run_on

    def recorded(conn: Any, plan: Any) -> Any:
        seen.append(threading.get_ident())
        return run_on(conn, plan)

    monkeypatch.setattr(aexecutor_module, "sync_run_on", recorded)
    return seen


async def test_gets_and_puts_run_on_the_loop_and_lists_on_a_thread(threads: list[int]) -> None:
    loop_thread = threading.get_ident()
    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        assert isinstance(saver._aexecutor, aexecutor_module.AsyncMemoryExecutor)
        threads.clear()
        stored = await saver.aput(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
        await saver.aput_writes(stored, [("a", 2)], "task")
        got = await saver.aget_tuple(config("t"))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        assert got.pending_writes == [("task", "a", 2)]
        assert threads == [loop_thread] * 3
        threads.clear()
        listed = [t async for t in saver.alist(config("t"))]
        assert [t.metadata["step"] for t in listed] == [1]
        assert threads and loop_thread not in threads


async def test_a_cancelled_plan_keeps_the_database_until_it_ends() -> None:
    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        await saver.aput(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
        executor = saver._aexecutor
        assert isinstance(executor, aexecutor_module.AsyncMemoryExecutor)

        def slow() -> Generator[Any, Any, Any]:
            rows = yield Query(_SLOW)
            return rows

        task = asyncio.create_task(executor.run(slow()))
        await asyncio.sleep(0.05)  # on the thread by now
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert executor._lock.locked()  # the connection is still in use on the thread
        got = await saver.aget_tuple(config("t"))  # waits for the plan, then reads
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        assert not executor._lock.locked()


async def test_a_closed_memory_saver_says_so() -> None:
    async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
        await saver.aput(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
    with pytest.raises(StorageError, match="closed"):
        await saver.aget_tuple(config("t"))
    with pytest.raises(StorageError, match="closed"):
        [t async for t in saver.alist(config("t"))]

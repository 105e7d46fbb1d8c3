"""The async saver's pool: bounded connections, concurrent writers, cancelled calls.

With `synchronous="normal"` a put that nothing makes wait runs on the event loop's thread
(`AsyncPooledExecutor.run_quick`), not on the pool; these tests use `"full"`, where every
write takes a pooled connection's thread, to load the pool.
"""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import types
from typing import Any

import aiosqlite
import pytest

from checkpoint_sqlite import AsyncSqliteSaver, _aexecutor, _apool
from tests.conformance.builders import checkpoint, config


async def test_concurrent_calls_share_a_bounded_pool(db_path: str) -> None:
    saver = await AsyncSqliteSaver.open(db_path, max_connections=2, max_idle=1, synchronous="full")
    try:
        await saver.asetup()
        executor = saver._aexecutor
        peak = 0

        async def write(i: int) -> None:
            nonlocal peak
            stored = await saver.aput(config(f"t{i}"), checkpoint({"i": i}), {"i": i}, {"i": 1})
            peak = max(peak, executor._count)
            got = await saver.aget_tuple(stored)
            assert got is not None and got.checkpoint["channel_values"] == {"i": i}

        await asyncio.gather(*(write(i) for i in range(40)))
        assert 1 <= peak <= 2
        assert len([t async for t in saver.alist(None)]) == 40
    finally:
        await saver.aclose()
    assert executor._count == 0


async def test_cancelled_puts_leave_nothing_half_done(db_path: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        big = "x" * 200_000
        tasks = [
            asyncio.create_task(
                saver.aput(config(f"c{i}"), checkpoint({"a": big, "b": i}), {}, {"a": 1, "b": 1})
            )
            for i in range(20)
        ]
        await asyncio.sleep(0)
        for task in tasks[::2]:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        assert any(task.cancelled() for task in tasks[::2])  # some were stopped mid-call
        # Whatever landed landed whole, and the saver (and its pool) still works.
        for tup in [t async for t in saver.alist(None)]:
            assert tup.checkpoint["channel_values"]["a"] == big
        stored = await saver.aput(config("after"), checkpoint({"a": 1}), {}, {"a": 1})
        assert await saver.aget_tuple(stored) is not None
        for task in tasks[1::2]:
            assert task.done() and not task.cancelled()


async def test_puts_on_the_loop_run_whole_before_a_cancel_can_land(db_path: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        big = "x" * 200_000
        tasks = [
            asyncio.create_task(
                saver.aput(config(f"c{i}"), checkpoint({"a": big, "b": i}), {}, {"a": 1, "b": 1})
            )
            for i in range(20)
        ]
        await asyncio.sleep(0)  # each task ran its put to the end: nothing made it wait
        assert not any(task.cancel() for task in tasks)
        await asyncio.gather(*tasks)
        listed = [t async for t in saver.alist(None)]
        assert sorted(t.checkpoint["channel_values"]["b"] for t in listed) == list(range(20))
        assert all(t.checkpoint["channel_values"]["a"] == big for t in listed)


def test_a_loop_left_mid_call_leaves_the_pool_whole(db_path: str) -> None:
    """A loop left with a call still holding a pooled connection (its task pending, the loop
    stopped or closed) does not give that connection back. The saver, moved to the next
    loop, must not count it: with `max_connections=1` every later call on the pool waited
    forever. Should the old loop run the call to its end after all, the connection closes."""
    first = asyncio.new_event_loop()
    saver = first.run_until_complete(AsyncSqliteSaver.open(db_path, max_connections=1))
    first.run_until_complete(saver.asetup())
    first.run_until_complete(saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1}))
    blocker = sqlite3.connect(db_path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # the delete waits for this lock on the pool's connection
    pending = first.create_task(saver.adelete_thread("t"))
    first.run_until_complete(asyncio.sleep(0.3))
    assert not pending.done()

    async def next_loop() -> list[str]:
        # `alist` runs on the pool: a read, which the blocker's lock does not stop.
        return [t.config["configurable"]["thread_id"] async for t in saver.alist(None)]

    try:
        assert asyncio.run(asyncio.wait_for(next_loop(), 10)) == ["t"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
        pending.cancel()  # the first loop again: the call ends, its connection is closed
        first.run_until_complete(asyncio.gather(pending, return_exceptions=True))
        first.close()
    assert pending.cancelled()
    asyncio.run(saver.aclose())
    assert saver._aexecutor._count == 0


def _closed(conn: sqlite3.Connection) -> bool:
    try:
        conn.total_changes  # noqa: B018 - raises on a closed connection
    except sqlite3.ProgrammingError as exc:
        return "closed" in str(exc)  # another refusal is not the answer looked for
    return False


async def test_a_connection_opened_for_a_cancelled_call_is_closed(
    db_path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call cancelled while the pool opens a connection for it: aiosqlite's thread goes on
    opening that connection, and it is closed once open (the pool does not count it), not
    left to the garbage collector (which Python 3.13 warns about)."""
    opened: list[sqlite3.Connection] = []
    entered, release = threading.Event(), threading.Event()

    def connect(path: str, **kwargs: Any) -> aiosqlite.Connection:
        def connector() -> sqlite3.Connection:
            entered.set()
            release.wait(10)
            conn = sqlite3.connect(path, check_same_thread=False, **kwargs)
            opened.append(conn)  # kept alive here: only an explicit close closes it
            return conn

        return aiosqlite.Connection(connector, 64)

    driver = types.SimpleNamespace(
        connect=connect, Error=aiosqlite.Error, OperationalError=aiosqlite.OperationalError
    )
    saver = await AsyncSqliteSaver.open(db_path, max_idle=0, synchronous="full")
    try:
        await saver.asetup()
        executor = saver._aexecutor
        assert isinstance(executor, _apool.AsyncPooledExecutor) and executor._idle == []
        monkeypatch.setattr(_aexecutor, "_driver", lambda: driver)
        call = asyncio.ensure_future(saver.adelete_thread("nobody"))  # takes a pooled one
        assert await asyncio.to_thread(entered.wait, 10)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        release.set()
        for _ in range(500):  # closed once aiosqlite's thread has opened it
            if opened and _closed(opened[0]):
                break
            await asyncio.sleep(0.01)
        assert len(opened) == 1 and _closed(opened[0])
        assert executor._count == 0
        await saver.adelete_thread("nobody")  # the pool opens another one and goes on
        assert len(opened) == 2 and executor._count == 0  # max_idle=0: closed after use
        assert _closed(opened[1])
    finally:
        await saver.aclose()

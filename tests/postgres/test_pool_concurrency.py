"""Concurrent writers through one saver on a pool: every write lands, and none waits for
another (no saver-wide lock)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._aexecutor import _finish, _Resumed
from tests.conformance.builders import checkpoint, cid, config

from .conftest import CONN_KWARGS, unique

WRITERS = 8
STEPS = 12


@pytest.fixture
def pool_saver(pg_url: str, schema: str) -> Iterator[PostgresSaver]:
    pool = ConnectionPool(pg_url, min_size=WRITERS, max_size=WRITERS, kwargs=CONN_KWARGS)
    with pool, PostgresSaver(pool, schema=schema) as saver:
        saver.setup()
        yield saver


def _write_thread(saver: PostgresSaver, thread: str, shared: str, writer: int) -> None:
    parent: str | None = None
    for step in range(STEPS):
        stored = saver.put(
            config(thread, checkpoint_id=parent),
            checkpoint({"v": [writer, step]}, {"v": step + 1}),
            {"step": step, "writer": writer},
            {"v": step + 1},
        )
        saver.put_writes(stored, [("v", step), ("log", f"w{writer}")], f"task-{step}")
        parent = cid(stored)
        # Every writer also adds its own checkpoints to one shared thread.
        saver.put(
            config(shared, ns=f"w{writer}"),
            checkpoint({"v": step}, {"v": step + 1}),
            {"step": step, "writer": writer},
            {"v": step + 1},
        )


def _check(saver: PostgresSaver, threads: list[str], shared: str) -> None:
    for writer, thread in enumerate(threads):
        history = list(saver.list(config(thread)))
        assert [t.metadata["step"] for t in history] == list(range(STEPS))[::-1]
        for t in history:
            step = t.metadata["step"]
            assert t.checkpoint["channel_values"] == {"v": [writer, step]}
            assert t.pending_writes == [
                (f"task-{step}", "v", step),
                (f"task-{step}", "log", f"w{writer}"),
            ]
        parents = [t.parent_config for t in history]
        assert parents[-1] is None
        assert [cid(p) for p in parents[:-1] if p] == [cid(t.config) for t in history[1:]]
    shared_rows = list(saver.list({"configurable": {"thread_id": shared}}))
    assert len(shared_rows) == WRITERS * STEPS
    assert {t.config["configurable"]["checkpoint_ns"] for t in shared_rows} == {
        f"w{w}" for w in range(WRITERS)
    }


def test_eight_sync_writers(pool_saver: PostgresSaver) -> None:
    threads = [unique(f"w{w}") for w in range(WRITERS)]
    shared = unique("shared")
    with ThreadPoolExecutor(WRITERS) as executor:
        futures = [
            executor.submit(_write_thread, pool_saver, threads[w], shared, w)
            for w in range(WRITERS)
        ]
        for future in futures:
            future.result()
    _check(pool_saver, threads, shared)


async def test_eight_async_writers(pg_url: str, schema: str) -> None:
    pool = AsyncConnectionPool(
        pg_url, min_size=WRITERS, max_size=WRITERS, kwargs=CONN_KWARGS, open=False
    )
    async with pool, AsyncPostgresSaver(pool, schema=schema) as saver:
        await saver.asetup()
        shared = unique("shared")
        threads = [unique(f"w{w}") for w in range(WRITERS)]

        async def write(writer: int) -> None:
            parent: str | None = None
            for step in range(STEPS):
                stored = await saver.aput(
                    config(threads[writer], checkpoint_id=parent),
                    checkpoint({"v": [writer, step]}, {"v": step + 1}),
                    {"step": step, "writer": writer},
                    {"v": step + 1},
                )
                await saver.aput_writes(
                    stored, [("v", step), ("log", f"w{writer}")], f"task-{step}"
                )
                parent = cid(stored)
                await saver.aput(
                    config(shared, ns=f"w{writer}"),
                    checkpoint({"v": step}, {"v": step + 1}),
                    {"step": step, "writer": writer},
                    {"v": step + 1},
                )

        await asyncio.gather(*(write(w) for w in range(WRITERS)))
        # Read back through a sync saver on the same schema.
        with PostgresSaver(pg_url, schema=schema) as reader:
            _check(reader, threads, shared)


def _wait_for_lock_wait(pg_url: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    with psycopg.connect(pg_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            row = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            ).fetchone()
            if row and row[0] > 0:
                return
            time.sleep(0.02)
    raise AssertionError("the blocked put never reached the database")


def test_a_blocked_writer_does_not_block_the_others(
    pool_saver: PostgresSaver, pg_url: str, schema: str
) -> None:
    """Hold a row lock on one thread's checkpoint: a put to it waits in the database, while
    puts to other threads, from other callers of the same saver, go through."""
    blocked_thread, free_thread = unique("blocked"), unique("free")
    first = pool_saver.put(config(blocked_thread), checkpoint({"v": 0}), {}, {"v": 1})
    locker = psycopg.connect(pg_url, autocommit=False)
    try:
        locker.execute(
            sql.SQL(
                "SELECT 1 FROM {}.checkpoints WHERE thread_id = %s AND checkpoint_id = %s FOR UPDATE"
            ).format(sql.Identifier(schema)),
            (blocked_thread, cid(first)),
        )
        started = threading.Event()

        def blocked_put() -> None:
            started.set()
            # The same checkpoint id: an upsert of the locked row, which must wait.
            pool_saver.put(
                config(blocked_thread),
                {**checkpoint({"v": 1}, {"v": 2}), "id": cid(first)},
                {"late": True},
                {"v": 2},
            )

        with ThreadPoolExecutor(1) as executor:
            waiting = executor.submit(blocked_put)
            started.wait(5)
            _wait_for_lock_wait(pg_url)  # the put is inside the database, stuck on the lock
            for step in range(5):  # all complete while the other caller is stuck
                pool_saver.put(config(free_thread), checkpoint({"v": step}), {}, {"v": 1})
            assert not waiting.done()
            locker.commit()
            waiting.result(timeout=30)
    finally:
        locker.close()
    got = pool_saver.get_tuple(config(blocked_thread))
    assert got is not None and got.metadata.get("late") is True
    assert len(list(pool_saver.list(config(free_thread)))) == 5


async def test_a_call_cancelled_while_it_returns_its_connection_still_returns_it(
    pg_url: str, schema: str
) -> None:
    """psycopg_pool's `putconn` waits for the pool's lock to put the connection back: a
    cancellation that landed there dropped the connection, and the pool counted it as taken
    for ever (the cancellation suite's leak check caught it once, under load). The saver
    starts the return itself and, when it has to wait, finishes it on a task of its own,
    which the caller's cancellation cannot reach: the call has its answer (or is cancelled)
    and every connection comes back."""
    pool = AsyncConnectionPool(pg_url, min_size=2, max_size=2, kwargs=CONN_KWARGS, open=False)
    async with pool, AsyncPostgresSaver(pool, schema=schema) as saver:
        await saver.asetup()
        stored = await saver.aput(config(unique()), checkpoint({"v": 1}), {}, {"v": 1})
        got, go, returning = asyncio.Event(), asyncio.Event(), asyncio.Event()
        take, put_back = pool.getconn, pool.putconn

        async def getconn(timeout: float | None = None) -> object:
            conn = await take(timeout)
            got.set()
            await go.wait()  # until the test holds the pool's lock
            return conn

        async def putconn(conn: object) -> None:
            returning.set()
            await put_back(conn)  # type: ignore[arg-type]

        pool.getconn, pool.putconn = getconn, putconn  # type: ignore[method-assign,assignment]
        call = asyncio.ensure_future(saver.aget_tuple(stored))
        await asyncio.wait_for(got.wait(), 10)
        async with pool._lock:  # the pool is busy: putconn waits for its lock
            go.set()
            await asyncio.wait_for(returning.wait(), 10)
            await asyncio.sleep(0.05)  # it waits in there, holding the connection
            call.cancel()
            await asyncio.sleep(0.05)
        pool.getconn, pool.putconn = take, put_back  # type: ignore[method-assign]
        with contextlib.suppress(asyncio.CancelledError):
            assert await call is not None  # it had its answer before the cancellation
        for _ in range(100):
            stats = pool.get_stats()
            if stats["pool_size"] == stats["pool_available"]:
                break
            await asyncio.sleep(0.02)
        stats = pool.get_stats()
        assert stats["pool_size"] == stats["pool_available"] == 2, stats
        assert await saver.aget_tuple(stored) is not None


async def test_a_call_returns_its_connection_before_it_returns(pg_url: str, schema: str) -> None:
    """With the pool's lock free, the connection is back in the pool when the call returns,
    not a loop iteration later: a writer's next call finds it there instead of waiting (all
    connections taken, 16 writers on 16 connections lost a fifth of their throughput)."""
    pool = AsyncConnectionPool(pg_url, min_size=1, max_size=1, kwargs=CONN_KWARGS, open=False)
    async with pool, AsyncPostgresSaver(pool, schema=schema) as saver:
        await saver.asetup()
        stored = await saver.aput(config(unique()), checkpoint({"v": 1}), {}, {"v": 1})
        for call in (
            saver.aget_tuple(stored),
            saver.aput(stored, checkpoint({"v": 2}, {"v": 2}), {}, {"v": 2}),
            saver.aput_writes(stored, [("v", 3)], "task"),
        ):
            await call
            stats = pool.get_stats()
            assert stats["pool_available"] == stats["pool_size"] == 1, stats
        got = await saver.aget_tuple(config(stored["configurable"]["thread_id"]))
        assert got is not None and got.checkpoint["channel_values"] == {"v": 2}


async def test_the_rest_of_a_started_return_runs_as_await_would_run_it() -> None:
    """`_Resumed` hands its task what the started coroutine waits on, sends back what the
    task gets, and forwards a cancellation: the rest runs as if awaited from the start."""
    loop = asyncio.get_running_loop()
    seen: list[object] = []

    async def job() -> None:
        seen.append("first step")
        await asyncio.sleep(0)  # a bare yield
        answer = loop.create_future()
        loop.call_later(0.01, answer.set_result, 42)
        seen.append(await answer)  # a future, and its result sent back
        try:
            await asyncio.sleep(30)
        except asyncio.CancelledError:
            seen.append("cancelled")
            raise

    started = job()
    waits_on = started.send(None)
    assert seen == ["first step"]
    task = loop.create_task(_finish(_Resumed(started, waits_on)))
    for _ in range(200):
        if len(seen) == 2:
            break
        await asyncio.sleep(0.01)
    assert seen == ["first step", 42]
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert seen == ["first step", 42, "cancelled"]

"""Async savers never block their event loop (the policy of LangGraph's `langgraph dev`).

LangGraph's development server runs graphs under blockbuster, which raises `BlockingError`
for a blocking call made on the event loop's thread: a sqlite3 statement, a blocking socket
read, a wait on a lock another thread holds, file I/O. An agent graph and the saver's other
operations run here on every async target under blockbuster. The async SQLite saver runs
small operations on the loop's thread when nothing can make them wait (`run_quick`); refused
there, it sends them to its threads.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest
from blockbuster import BlockingError, blockbuster_ctx

from benchmarks._graph import build_agent_graph, turn_input
from checkpoint_base import CheckpointSaver, aconnect
from checkpoint_sqlite import AsyncSqliteSaver

from .builders import new_thread
from .conftest import TARGETS

ASYNC = [pytest.param(t, id=t.name) for t in TARGETS if t.open_async is not None]
BY_URL = [pytest.param(t, id=t.name) for t in TARGETS if t.open_async and t.url is not None]


async def _exercise(saver: CheckpointSaver) -> None:
    graph = build_agent_graph(payload=64).compile(checkpointer=saver)
    thread, copy = new_thread(), new_thread()
    cfg: Any = {"configurable": {"thread_id": thread}}
    for turn in range(3):
        await graph.ainvoke(turn_input(64, turn), cfg)
    state = await graph.aget_state(cfg)
    history = [s async for s in graph.aget_state_history(cfg)]
    listed = [t async for t in saver.alist(cfg, limit=3)]
    await saver.acopy_thread(thread, copy)
    await saver.aprune([copy], strategy="keep_latest")
    copied = [t async for t in saver.alist({"configurable": {"thread_id": copy}})]
    await saver.adelete_thread(thread)
    assert len(state.values["messages"]) == 12  # four a turn
    assert len(history) == 3 * 5  # input, agent, tools, agent and its end, each turn
    assert len(listed) == 3 and len(copied) == 1
    assert await saver.aget_tuple(cfg) is None


@pytest.mark.parametrize("target", ASYNC)
async def test_a_graph_runs_on_an_async_saver_under_blockbuster(target: Any) -> None:
    async with target.open_async() as saver:
        with blockbuster_ctx():
            await _exercise(saver)


@pytest.mark.parametrize("target", BY_URL)
async def test_aconnect_opens_a_saver_under_blockbuster(target: Any) -> None:
    # Finding the backend reads package metadata (file system calls, made on a thread), and
    # redis-py 8.1 reads its version there for every connection unless given it.
    if target.backend == "redis":
        from redis.utils import get_lib_version

        clear = getattr(get_lib_version, "cache_clear", None)  # 8.2 keeps what it read
        if clear is not None:
            clear()  # as in a process that has not connected yet
    url = target.url()
    with blockbuster_ctx():
        async with aconnect(url) as saver:
            await _exercise(saver)


async def test_blockbuster_refuses_a_sqlite3_call_on_the_loop() -> None:
    # What the test above relies on: a quick plan on the loop's thread is refused.
    import sqlite3

    conn = sqlite3.connect(":memory:")
    try:
        with blockbuster_ctx(), pytest.raises(BlockingError):
            conn.execute("SELECT 1")
    finally:
        conn.close()


@pytest.mark.parametrize("where", ["file", ":memory:"])
async def test_an_async_sqlite_saver_opened_under_blockbuster_sends_calls_to_threads(
    tmp_path: Path, where: str, caplog: pytest.LogCaptureFixture
) -> None:
    path = str(tmp_path / "checkpoints.db") if where == "file" else ":memory:"
    with caplog.at_level(logging.INFO, logger="checkpoint_sqlite"), blockbuster_ctx():
        async with AsyncSqliteSaver.from_conn_string(path) as saver:
            await _exercise(saver)
    said = [r.getMessage() for r in caplog.records if r.name == "checkpoint_sqlite"]
    assert len(said) == 1 and "runs on a thread" in said[0] and "BlockingError" in said[0]


@pytest.mark.parametrize("where", ["file", ":memory:"])
async def test_a_sqlite_saver_already_running_calls_on_the_loop_moves_them_to_threads(
    tmp_path: Path, where: str
) -> None:
    # The saver's quick connection exists (it served calls on the loop's thread) before the
    # checker starts: its first refused call, not its opening, sends the calls to threads.
    path = str(tmp_path / "checkpoints.db") if where == "file" else ":memory:"
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        graph = build_agent_graph(payload=64).compile(checkpointer=saver)
        await graph.ainvoke(turn_input(64, 0), {"configurable": {"thread_id": new_thread()}})
        with blockbuster_ctx():
            await _exercise(saver)

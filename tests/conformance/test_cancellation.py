"""Cancellation safety of every async saver.

LangGraph runs are cancelled all the time (`asyncio.timeout` around `ainvoke`, a client that
disconnects). A cancelled `aput`, `aput_writes`, `aget_tuple`, `alist`, `adelete_thread`,
`aprune` or `acopy_thread` must leave every checkpoint whole or absent (never a checkpoint
without its blobs, never half the writes of one `put_writes`), must not poison the saver
(the next calls, and concurrent ones, get correct answers; no connection stays mid-reply,
mid-transaction or checked out), and must not make `aclose()` hang.

Each operation is cancelled at every one of its suspension points in turn (`_cancel_at`
counts the points of the task's own coroutine), and again after k turns of the event loop
for k = 0, 1, 2, ... (where a reply may already be in and is then thrown away), until the
operation finishes before the cancellation lands. A backend that finishes a write on
another thread although its caller was cancelled (SQLite) is right to leave it whole: the
checks accept whole or absent, never partial.

Only the async flavor is collected: the sync flavor has nothing to cancel.
"""

from __future__ import annotations

import asyncio
import inspect
import operator
import random
import re
import sys
import types
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import CheckpointTuple
from langgraph.graph import END, START, StateGraph

from checkpoint_base import CheckpointSaver

from .builders import checkpoint, cid, config, new_thread
from .conftest import PARAMS
from .harness import Harness

ASYNC_PARAMS = [p for p in PARAMS if p.values[0][1] == "async"]  # type: ignore[index]

MAX_POINTS = 200
"""Most cancellation points tried per operation: none of ours has that many."""
TURNS = sorted({*range(8), *(int(1.3**i) for i in range(8, 21))})
"""Loop turns to let an operation run before it is cancelled: each count up to 7, then
sparser up to 190, so that a slower machine (an operation taking more turns) does not
multiply the attempts. The sweep stops at the first count the operation finishes within."""
OP_TIMEOUT = 10.0
"""Seconds any single operation may take before the test calls it hung."""
_timeout: Any = getattr(asyncio, "timeout", None)
"""`asyncio.timeout`, from Python 3.11."""
BIG = "x" * (70 * 1024)
"""A value past Redis's inline limit, so a put also sends blobs beside its script."""


@pytest.fixture(params=ASYNC_PARAMS)
async def h(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    target, flavor = request.param
    assert flavor == "async" and target.open_async is not None
    async with target.open_async() as saver:
        yield Harness(target, flavor, saver)


# -- cancelling at a chosen point -------------------------------------------------------------


@types.coroutine
def _cancel_at(
    coro: Coroutine[Any, Any, Any], point: int, seen: list[int]
) -> Generator[Any, Any, Any]:
    """Run `coro`, cancelling the task at its `point`-th suspension (1-based).

    The task cancels itself just before it suspends there, so asyncio cancels the very future
    the operation awaits at that point. `seen[0]` counts the suspensions that happened;
    `seen[1]` tells whether the cancellation met Python 3.11's `asyncio.wait_for`.
    """
    value: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                request = coro.send(value) if error is None else coro.throw(error)
            except StopIteration as stop:
                return stop.value
            seen[0] += 1
            if seen[0] == point:
                task = asyncio.current_task()
                assert task is not None
                task.cancel()
                seen[1] = _in_old_wait_for(coro)
            try:
                value, error = (yield request), None
            except GeneratorExit:
                raise
            except BaseException as exc:
                value, error = None, exc
    finally:
        coro.close()


def _in_old_wait_for(coro: Any) -> bool:
    """Whether `coro` is suspended inside `asyncio.wait_for` of Python 3.11 or older, which
    returns the result instead of raising when the cancellation meets a finished operation
    (CPython gh-86296, fixed in 3.12). redis-py sends on a new connection through it."""
    if sys.version_info >= (3, 12):
        return False
    wait_for = asyncio.wait_for.__code__
    while coro is not None:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "gi_frame", None)
        frame = frame or getattr(coro, "ag_frame", None)
        if frame is not None and frame.f_code is wait_for:
            return True
        awaited = getattr(coro, "cr_await", None) or getattr(coro, "gi_yieldfrom", None)
        awaited = awaited or getattr(coro, "ag_await", None)
        if (
            frame is not None
            and not inspect.iscoroutine(awaited)
            and not inspect.isgenerator(awaited)
        ):
            # Awaiting an async generator's `__anext__`: the generator is a local there.
            gens = [v for v in frame.f_locals.values() if inspect.isasyncgen(v) and v.ag_running]
            awaited = gens[0] if gens else None
        coro = awaited
    return False


async def _settle(task: asyncio.Task[Any], what: str) -> bool:
    """Wait for `task`; True if it ended cancelled. A hang or an error fails the test."""
    done, _ = await asyncio.wait({task}, timeout=OP_TIMEOUT)
    if not done:
        task.cancel()
        pytest.fail(f"{what} still running {OP_TIMEOUT}s after it was cancelled")
    if task.cancelled():
        return True
    task.result()  # raises the operation's error, if any
    return False


Op = Callable[[], Coroutine[Any, Any, Any]]
Check = Callable[[int], Awaitable[None]]


async def sweep(name: str, op: Op, check: Check) -> int:
    """Cancel `op()` at each suspension point, then after each count of loop turns.

    `check(i)` runs after every attempt `i` (cancelled or not) and asserts the state is
    whole and the saver works. Returns the operation's number of suspension points.
    """
    attempt = 0
    points = 0
    for point in range(1, MAX_POINTS + 1):
        seen: list[Any] = [0, False]
        task = asyncio.ensure_future(_cancel_at(op(), point, seen))
        cancelled = await _settle(task, f"{name} cancelled at suspension {point}")
        if seen[0] >= point and not seen[1]:
            assert cancelled, f"{name} swallowed a cancellation at suspension {point}"
        await check(attempt)
        attempt += 1
        if seen[0] < point:  # ran to its end before reaching this point
            points = seen[0]
            break
    else:
        pytest.fail(f"{name} has more than {MAX_POINTS} suspension points")
    for turns in TURNS:
        task = asyncio.ensure_future(op())
        for _ in range(turns):
            await asyncio.sleep(0)
            if task.done():
                break
        requested = task.cancel()
        cancelled = await _settle(task, f"{name} cancelled after {turns} loop turns")
        if requested and turns == 0:
            assert cancelled, f"{name} ran although cancelled before it started"
        await check(attempt)
        attempt += 1
        if not requested:
            break
    return points


def _whole_thread(tid: str) -> RunnableConfig:
    """Lists every namespace of the thread."""
    return {"configurable": {"thread_id": tid}}


def _some_points(h: Harness, points: int) -> None:
    """A network backend awaits its server: the sweep must have cancelled it mid-way (the
    memory backend, and SQLite's quick path on the loop's thread, never suspend)."""
    if h.target.backend in ("postgres", "redis"):
        assert points >= 1


async def _collect(saver: CheckpointSaver, cfg: RunnableConfig | None) -> list[CheckpointTuple]:
    return [t async for t in saver.alist(cfg)]


# -- what a whole checkpoint is --------------------------------------------------------------


def _snap(t: CheckpointTuple) -> tuple[Any, ...]:
    """Everything a reader sees of a checkpoint, without its thread id."""
    parent = t.parent_config["configurable"]["checkpoint_id"] if t.parent_config else None
    return (
        t.config["configurable"]["checkpoint_ns"],
        t.checkpoint["id"],
        t.checkpoint["channel_values"],
        t.checkpoint["channel_versions"],
        t.metadata,
        parent,
        sorted(t.pending_writes or [], key=lambda w: (w[0], w[1])),
    )


def _values(step: int, tag: str) -> dict[str, Any]:
    return {"big": BIG + tag, "small": [step, tag], "text": f"{tag}-{step}"}


async def _build(saver: CheckpointSaver, tid: str, tag: str, steps: int = 3) -> dict[str, Any]:
    """A thread of `steps` root checkpoints and one in a child namespace, each with writes of
    two tasks; returns `_snap` of each by checkpoint id, read back after every write landed."""
    parent: str | None = None
    for step in range(steps):
        values = _values(step, tag)
        versions = {"big": "1", "small": str(step + 1), "text": str(step + 1)}
        new_versions = (
            versions if step == 0 else {"small": versions["small"], "text": versions["text"]}
        )
        cp = checkpoint(values, versions)
        stored = await saver.aput(
            config(tid, "", parent), cp, {"step": step, "tag": tag}, new_versions
        )
        for task in ("t1", "t2"):
            await saver.aput_writes(stored, [("small", f"{task}-{step}"), ("text", tag)], task)
        parent = cid(stored)
    child = await saver.aput(
        config(tid, "child:1"), checkpoint({"c": tag}), {"step": 0, "tag": tag}, {"c": 1}
    )
    await saver.aput_writes(child, [("c", "w")], "tc")
    rows = await _collect(saver, _whole_thread(tid))
    # Only channels whose version changed were written with the later checkpoints: the
    # values read back must still be the whole state of each.
    root = [r for r in rows if r.config["configurable"]["checkpoint_ns"] == ""]
    assert [r.metadata["step"] for r in root] == list(reversed(range(steps)))
    for r in root:
        assert r.checkpoint["channel_values"] == _values(r.metadata["step"], tag)
        assert len(r.pending_writes or []) == 4
    assert len(rows) == steps + 1
    return {r.checkpoint["id"]: _snap(r) for r in rows}


async def _assert_each_whole(
    saver: CheckpointSaver, tid: str, expected: dict[str, Any], what: str, by_get: bool = True
) -> list[str]:
    """Every checkpoint of the thread is one of `expected`, in full, as listed (and as each
    is read alone, with `by_get`); returns their ids."""
    rows = await asyncio.wait_for(_collect(saver, _whole_thread(tid)), OP_TIMEOUT)
    for r in rows:
        snap = _snap(r)
        assert snap == expected.get(r.checkpoint["id"]), f"{what}: partial checkpoint {snap[:2]}"
        if not by_get:
            continue
        got = await asyncio.wait_for(saver.aget_tuple(r.config), OP_TIMEOUT)
        assert got is not None and _snap(got) == snap, f"{what}: get disagrees with list"
    return [r.checkpoint["id"] for r in rows]


async def _other_writes(saver: CheckpointSaver) -> None:
    """Writes of another thread, a few at once. A write that a cancelled call left behind in
    a queue, a batch or a buffer would land with them, after its caller saw it cancelled."""
    tid = new_thread()
    first = await saver.aput(config(tid), checkpoint({"n": 0}), {}, {"n": 1})
    await asyncio.wait_for(
        asyncio.gather(
            saver.aput(config(tid, "", cid(first)), checkpoint({"n": 1}), {}, {"n": 2}),
            saver.aput_writes(first, [("n", 1)], "other"),
            saver.aput(config(new_thread()), checkpoint({"n": 2}), {}, {"n": 1}),
        ),
        OP_TIMEOUT,
    )


def _assert_no_open_transaction(saver: CheckpointSaver) -> None:
    """A saver's single PostgreSQL connection is idle between calls: left in a transaction
    (a BEGIN whose caller was cancelled), every later plan would run inside it and never
    commit."""
    conn = getattr(saver._aexecutor, "_conn", None)  # type: ignore[attr-defined]
    pgconn = getattr(conn, "pgconn", None)
    if pgconn is not None:
        assert pgconn.transaction_status == 0, f"connection left {pgconn.transaction_status!r}"


class _Refs:
    """Two threads nobody cancels anything on: each check reads both, so a reply left behind
    by a cancelled call and handed to the next caller would show as the wrong thread's data."""

    def __init__(self, saver: CheckpointSaver) -> None:
        self.saver = saver
        self.threads: dict[str, dict[str, Any]] = {}

    async def make(self) -> _Refs:
        for tag in ("ref-a", "ref-b"):
            tid = new_thread()
            self.threads[tid] = await _build(self.saver, tid, tag, steps=1)
        return self

    async def check(self, alone: bool = True) -> None:
        """Both threads read back right, one after the other and both at once; `alone`:
        nothing else runs on the saver meanwhile, so its connection must be idle."""

        async def one(tid: str) -> None:
            latest = await self.saver.aget_tuple(config(tid))
            assert latest is not None and _snap(latest) == self.threads[tid][cid(latest.config)]
            child = await self.saver.aget_tuple(config(tid, "child:1"))
            assert child is not None and _snap(child) == self.threads[tid][cid(child.config)]

        if alone:
            _assert_no_open_transaction(self.saver)
        for tid in self.threads:
            await asyncio.wait_for(one(tid), OP_TIMEOUT)
        await asyncio.wait_for(asyncio.gather(*(one(t) for t in self.threads)), OP_TIMEOUT)


# -- one test per operation ------------------------------------------------------------------


async def test_cancelled_put_is_whole_or_absent(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    tid = new_thread()
    base = await saver.aput(config(tid), checkpoint({"small": 0}), {"step": -1}, {"small": 1})
    puts: list[tuple[RunnableConfig, Any, dict[str, Any], dict[str, Any]]] = []

    def op() -> Coroutine[Any, Any, Any]:
        n = len(puts)
        values = _values(n, f"put{n}")
        versions = {k: f"{n + 2:032}.{k}" for k in values}
        cp = checkpoint(values, versions)
        puts.append((config(tid, "", cid(base)), cp, {"step": n}, versions))
        return saver.aput(*puts[-1])

    async def check(i: int) -> None:
        cfg, cp, metadata, versions = puts[i]
        stored = config(tid, "", cp["id"])
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        if got is not None:
            assert got.checkpoint["channel_values"] == cp["channel_values"], "blobs missing"
            assert got.checkpoint["channel_versions"] == cp["channel_versions"]
            assert got.metadata == metadata and cid(got.parent_config or {}) == cid(base)
        # Whole or absent, and settled: it does not land later, after the caller moved on.
        await _other_writes(saver)
        again = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert (again is None) == (got is None), "the cancelled put landed after it was cancelled"
        # LangGraph puts it again when the run resumes: that must store it whole.
        assert await asyncio.wait_for(saver.aput(cfg, cp, metadata, versions), OP_TIMEOUT) == stored
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert got is not None and got.checkpoint["channel_values"] == cp["channel_values"]
        await refs.check()

    _some_points(h, await sweep("aput", op, check))
    rows = await _collect(saver, config(tid))
    assert len(rows) == len(puts) + 1


async def test_cancelled_put_writes_is_whole_or_absent(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    tid = new_thread()
    stored = await saver.aput(
        config(tid), checkpoint({"small": 0}, {"small": 1}), {"step": 0}, {"small": 1}
    )
    tasks: list[tuple[str, list[tuple[str, Any]]]] = []

    def op() -> Coroutine[Any, Any, Any]:
        n = len(tasks)
        writes: list[tuple[str, Any]] = [("small", n), ("text", f"w{n}"), ("big", BIG + str(n))]
        tasks.append((f"task-{n}", writes))
        return saver.aput_writes(stored, writes, f"task-{n}")

    async def check(i: int) -> None:
        task_id, writes = tasks[i]
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert got is not None
        mine = [(c, v) for t, c, v in got.pending_writes or [] if t == task_id]
        assert mine in ([], writes), f"half the writes of one put_writes: {len(mine)} of 3"
        await _other_writes(saver)
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert got is not None
        again = [(c, v) for t, c, v in got.pending_writes or [] if t == task_id]
        assert again == mine, "the cancelled put_writes landed after it was cancelled"
        await asyncio.wait_for(saver.aput_writes(stored, writes, task_id), OP_TIMEOUT)
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert got is not None
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for t, c, v in got.pending_writes or []:
            by_task.setdefault(t, []).append((c, v))
        assert by_task == {t: w for t, w in tasks[: i + 1]}
        await refs.check()

    _some_points(h, await sweep("aput_writes", op, check))


async def test_cancelled_writes_among_concurrent_ones_settle(h: Harness) -> None:
    """Writers that queue behind one another (SQLite's group commit, a pool's waiters):
    cancel every other one, or all but the first, after k loop turns. Those that finish are
    there; each cancelled one is whole or absent, and stays so however the saver is used next
    (a write left queued would be committed by the next writer)."""
    saver = h.saver
    refs = await _Refs(saver).make()
    tid = new_thread()
    stored = await saver.aput(config(tid), checkpoint({"n": 0}), {}, {"n": 1})
    for turns in range(0, 12, 2):
        for spare in ("odd", "first"):
            await _concurrent_round(saver, stored, f"{turns}-{spare}", turns, spare)
            await refs.check()


async def _concurrent_round(
    saver: CheckpointSaver, stored: RunnableConfig, tag: str, turns: int, spare: str
) -> None:
    puts = [(new_thread(), checkpoint(_values(n, tag))) for n in range(6)]
    tasks = [
        asyncio.ensure_future(saver.aput(config(t), cp, {}, dict(cp["channel_versions"])))
        for t, cp in puts
    ] + [
        asyncio.ensure_future(saver.aput_writes(stored, [("a", n), ("b", n)], f"{tag}-{n}"))
        for n in range(6)
    ]
    for _ in range(turns):
        await asyncio.sleep(0)
    chosen = [n % 2 == 1 if spare == "odd" else n > 0 for n in range(len(tasks))]
    cancelled = {n for n, task in enumerate(tasks) if chosen[n] and task.cancel()}
    _, pending = await asyncio.wait(tasks, timeout=OP_TIMEOUT)
    assert not pending, f"{len(pending)} writes hung"
    for n, task in enumerate(tasks):
        if n not in cancelled:
            task.result()

    async def seen() -> list[bool]:
        there = []
        for t, cp in puts:
            got = await saver.aget_tuple(config(t))
            assert got is None or got.checkpoint["channel_values"] == cp["channel_values"]
            there.append(got is not None)
        got = await saver.aget_tuple(stored)
        assert got is not None
        by_task: dict[str, list[tuple[str, Any]]] = {}
        for task_id, channel, value in got.pending_writes or []:
            by_task.setdefault(task_id, []).append((channel, value))
        for n in range(6):
            mine = by_task.get(f"{tag}-{n}", [])
            assert mine in ([], [("a", n), ("b", n)]), "half a put_writes"
            there.append(bool(mine))
        return there

    first = await asyncio.wait_for(seen(), OP_TIMEOUT)
    assert all(first[n] for n in range(len(tasks)) if n not in cancelled)
    await _other_writes(saver)
    assert await asyncio.wait_for(seen(), OP_TIMEOUT) == first, "a cancelled write landed late"


async def test_cancelled_reads_leave_nothing_behind(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    tid = new_thread()
    expected = await _build(saver, tid, "read")
    latest = max(k for k, v in expected.items() if v[0] == "")

    async def check(i: int) -> None:
        await refs.check()
        got = await asyncio.wait_for(saver.aget_tuple(config(tid)), OP_TIMEOUT)
        assert got is not None and _snap(got) == expected[latest]

    _some_points(h, await sweep("aget_tuple", lambda: saver.aget_tuple(config(tid)), check))
    _some_points(h, await sweep("alist", lambda: _collect(saver, config(tid)), check))

    async def list_all() -> None:
        # A listing across threads, stopped after its first row, then closed. (The generator
        # is a local: `_in_old_wait_for` finds it there.)
        rows = saver.alist(None, limit=3)
        try:
            async for _ in rows:
                break
        finally:
            await rows.aclose()  # type: ignore[attr-defined]

    await sweep("alist(None)", list_all, check)


async def test_cancelled_setup(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()

    async def check(i: int) -> None:
        await refs.check()
        tid = new_thread()
        cp = checkpoint({"n": i})
        stored = await asyncio.wait_for(saver.aput(config(tid), cp, {}, {"n": 1}), OP_TIMEOUT)
        got = await asyncio.wait_for(saver.aget_tuple(stored), OP_TIMEOUT)
        assert got is not None and got.checkpoint["channel_values"] == {"n": i}

    await sweep("asetup", saver.asetup, check)


async def test_cancelled_delete_thread(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    threads: list[tuple[str, dict[str, Any]]] = []

    def op() -> Coroutine[Any, Any, Any]:
        return saver.adelete_thread(threads[-1][0])

    async def check(i: int) -> None:
        tid, expected = threads[-1]
        await _assert_each_whole(saver, tid, expected, "adelete_thread cancelled")
        await asyncio.wait_for(saver.adelete_thread(tid), OP_TIMEOUT)
        assert await _collect(saver, _whole_thread(tid)) == []
        await refs.check()
        threads.append(await _fresh())

    async def _fresh() -> tuple[str, dict[str, Any]]:
        tid = new_thread()
        return tid, await _build(saver, tid, "del", steps=2)

    threads.append(await _fresh())
    _some_points(h, await sweep("adelete_thread", op, check))


async def test_cancelled_prune(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    threads: list[tuple[str, dict[str, Any]]] = []

    async def fresh() -> tuple[str, dict[str, Any]]:
        tid = new_thread()
        return tid, await _build(saver, tid, "prune")

    def op() -> Coroutine[Any, Any, Any]:
        return saver.aprune([threads[-1][0]])

    async def check(i: int) -> None:
        tid, expected = threads[-1]
        heads = {max(k for k, v in expected.items() if v[0] == ns) for ns in ("", "child:1")}
        kept = await _assert_each_whole(saver, tid, expected, "aprune cancelled")
        assert heads <= set(kept), "prune lost a namespace's latest checkpoint"
        await asyncio.wait_for(saver.aprune([tid]), OP_TIMEOUT)
        assert set(await _assert_each_whole(saver, tid, expected, "aprune", False)) == heads
        await refs.check()
        threads.append(await fresh())

    threads.append(await fresh())
    _some_points(h, await sweep("aprune", op, check))


async def test_cancelled_copy_thread(h: Harness) -> None:
    saver = h.saver
    refs = await _Refs(saver).make()
    source = new_thread()
    expected = await _build(saver, source, "copy")
    targets: list[str] = []

    def op() -> Coroutine[Any, Any, Any]:
        targets.append(new_thread())
        return saver.acopy_thread(source, targets[-1])

    async def check(i: int) -> None:
        target = targets[i]
        await _assert_each_whole(saver, target, expected, "acopy_thread cancelled")
        await asyncio.wait_for(saver.acopy_thread(source, target), OP_TIMEOUT)
        copied = await _assert_each_whole(saver, target, expected, "acopy_thread", by_get=False)
        assert set(copied) == set(expected)
        await refs.check()
        await saver.adelete_thread(target)

    _some_points(h, await sweep("acopy_thread", op, check))
    assert set(await _assert_each_whole(saver, source, expected, "source")) == set(expected)


# -- many cancellations at once: nothing leaks, nothing hangs ----------------------------------


def _checked_out(saver: CheckpointSaver) -> int | None:
    """Connections taken from the saver's pool and not given back, where the executor's
    pool is one this test knows (an unbounded pool would hide a leak from the hang check);
    None for any other executor."""
    executor: Any = saver._aexecutor  # type: ignore[attr-defined]
    lane = getattr(executor, "_lane", None)
    if lane is not None:  # Redis: a lane keeps connections it took, all others are back
        return len(lane.pool._in_use_connections) - len(lane._idle)
    pool = getattr(executor, "_pool", None)
    if pool is not None and hasattr(pool, "get_stats"):  # psycopg_pool
        stats = pool.get_stats()
        return int(stats.get("pool_size", 0) - stats.get("pool_available", 0))
    if hasattr(executor, "_count") and hasattr(executor, "_idle"):  # SQLite's pool
        return int(executor._count - len(executor._idle))
    return None


async def test_no_leak_after_many_cancellations(h: Harness) -> None:
    """Cancel a few hundred operations mid-flight, many at once, while others run: then the
    same saver serves more concurrent callers than its pool holds, and closes promptly."""
    assert h.target.open_async is not None
    opened = h.target.open_async()
    saver = await opened.__aenter__()
    try:
        refs = await _Refs(saver).make()
        tid = new_thread()
        stored = await saver.aput(config(tid), checkpoint({"small": 1}), {"step": 0}, {"small": 1})
        rng = random.Random(1234)

        def some_op(n: int) -> Coroutine[Any, Any, Any]:
            kind = n % 5
            if kind == 0:
                cp = checkpoint({"small": n, "big": BIG}, {"small": n + 2, "big": n + 2})
                return saver.aput(
                    config(tid, "", cid(stored)), cp, {}, {"small": n + 2, "big": n + 2}
                )
            if kind == 1:
                return saver.aput_writes(stored, [("small", n), ("text", n)], f"leak-{n}")
            if kind == 2:
                return saver.aget_tuple(config(next(iter(refs.threads))))
            if kind == 3:
                return _collect(saver, config(tid))
            return refs.check(alone=False)

        for round_ in range(12):
            tasks = [asyncio.ensure_future(some_op(round_ * 20 + n)) for n in range(20)]
            survivors = tasks[::4]  # these run to their end, beside the cancelled ones
            for _ in range(rng.randrange(0, 40)):
                await asyncio.sleep(0)
            for task in tasks:
                if task not in survivors:
                    task.cancel()
            done, pending = await asyncio.wait(tasks, timeout=OP_TIMEOUT)
            assert not pending, f"round {round_}: {len(pending)} operations hung"
            for task in survivors:
                task.result()
            for task in done:
                if not task.cancelled():
                    task.result()

        # More concurrent callers than any pool of the targets holds (PostgreSQL's is 16):
        # a connection leaked by a cancelled call would make some of them wait for ever.
        async def put_and_read(n: int) -> None:
            t = new_thread()
            got = await saver.aput(config(t), checkpoint({"n": n}), {"n": n}, {"n": 1})
            back = await saver.aget_tuple(got)
            assert back is not None and back.checkpoint["channel_values"] == {"n": n}

        await asyncio.wait_for(
            asyncio.gather(*(put_and_read(n) for n in range(40)), refs.check(alone=False)), 20
        )
        # Every connection is back in its pool. A pool returns one in the background, and
        # replaces one a cancellation left mid-query by connecting anew (psycopg_pool counts
        # it until connected): up to 10 s for that on a loaded machine; a leak never ends.
        for _ in range(500):
            if not _checked_out(saver):
                break
            await asyncio.sleep(0.02)
        assert not _checked_out(saver), "connections still checked out after every call ended"
        latest = await saver.aget_tuple(stored)
        assert latest is not None
        writes: dict[str, list[Any]] = {}
        for task_id, channel, value in latest.pending_writes or []:
            writes.setdefault(task_id, []).append((channel, value))
        for task_id, got_writes in writes.items():
            n = int(task_id.split("-")[1])
            assert got_writes == [("small", n), ("text", n)], "half a put_writes"
    finally:
        # Leave one cancelled operation of each kind just finished, then close: no hang.
        tasks = [asyncio.ensure_future(some_op(n)) for n in range(5)]
        await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=OP_TIMEOUT)
        await asyncio.wait_for(opened.__aexit__(None, None, None), OP_TIMEOUT)


# -- a real graph under asyncio.timeout ------------------------------------------------------


class _State(TypedDict):
    log: Annotated[list[str], operator.add]


def _graph(runs: dict[str, int]) -> StateGraph[Any]:
    def make(name: str) -> Any:
        async def node(state: _State) -> dict[str, list[str]]:
            runs[name] = runs.get(name, 0) + 1
            for _ in range(3):
                await asyncio.sleep(0)
            return {"log": [f"{name}{runs[name]}"]}

        return node

    builder = StateGraph(_State)
    previous = START
    for name in ("a", "b", "c", "d"):
        builder.add_node(name, make(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


@pytest.mark.parametrize("durability", ["async", "sync"])
async def test_graph_cut_by_timeout_resumes_to_the_right_state(h: Harness, durability: str) -> None:
    runs: dict[str, int] = {}
    graph = _graph(runs).compile(checkpointer=h.saver)
    loop = asyncio.get_running_loop()
    full = OP_TIMEOUT
    for _ in range(3):  # the quickest of three runs: the first one also opens connections
        start = loop.time()
        await graph.ainvoke(
            {"log": ["in"]}, {"configurable": {"thread_id": new_thread()}}, durability=durability
        )  # type: ignore[arg-type]
        full = min(full, loop.time() - start)
    timed_out = 0
    for i in range(16):
        cfg: RunnableConfig = {"configurable": {"thread_id": new_thread()}}
        before = asyncio.all_tasks()
        run = graph.ainvoke({"log": ["in"]}, cfg, durability=durability)  # type: ignore[arg-type]
        try:
            if _timeout is None:  # Python 3.10
                await asyncio.wait_for(run, full * i / 16)
            else:
                async with _timeout(full * i / 16):
                    await run
        except asyncio.TimeoutError:
            timed_out += 1
        # A timeout that lands while LangGraph waits for its background puts (durability
        # "async") leaves them running, uncancelled, on their own tasks: LangGraph's doing,
        # not the saver's. Let them end before the thread is read.
        if orphans := asyncio.all_tasks() - before - {asyncio.current_task()}:
            await asyncio.wait(orphans, timeout=OP_TIMEOUT)
        # Resume the thread where the saver left it: from its input when nothing was saved.
        # (Not by `state.next`: a step whose tasks all saved their writes shows no next.)
        saved = await asyncio.wait_for(h.saver.aget_tuple(cfg), OP_TIMEOUT)
        resume = {"log": ["in"]} if saved is None else None
        await asyncio.wait_for(graph.ainvoke(resume, cfg, durability=durability), OP_TIMEOUT)  # type: ignore[arg-type]
        state = await graph.aget_state(cfg)
        assert not state.next
        assert [re.sub(r"\d+$", "", s) for s in state.values["log"]] == ["in", "a", "b", "c", "d"]
        # Every checkpoint of the history reads back whole: its log leads to the final one.
        final = state.values["log"]
        history = [s async for s in graph.aget_state_history(cfg)]
        assert history and history[0].values == state.values
        for snap in history:
            log = snap.values.get("log", [])
            assert final[: len(log)] == log, f"{log} is not how {final} began"
    assert timed_out >= 4, "the timeouts should cut most runs short"

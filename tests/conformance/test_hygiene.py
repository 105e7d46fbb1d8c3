"""Process, event loop and thread hygiene: fork, successive event loops, many threads, and
savers that are never closed.

A saver used in a parent and then in a forked child (gunicorn `--preload`, Celery prefork)
must work in the child on connections of its own, and neither the child's work nor its exit
may touch the parent's connections.
"""

from __future__ import annotations

import asyncio
import gc
import json
import os
import select
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from checkpoint_base import CheckpointerError, CheckpointSaver, ConfigError, connect
from checkpoint_base.testing.targets import Target

from .builders import checkpoint, cid, config, new_thread
from .conftest import TARGETS
from .harness import Harness


def _rounds(saver: CheckpointSaver, tid: str, n: int, tag: str) -> list[str]:
    """`n` puts, each read back, on thread `tid`; returns the checkpoint ids stored."""
    ids: list[str] = []
    for i in range(n):
        version = {"v": f"{tag}-{i}"}  # a channel version of its own: a blob of its own
        stored = saver.put(
            config(tid), checkpoint({"v": f"{tag}{i}"}, version), {"step": i}, version
        )
        got = saver.get_tuple(stored)
        assert got is not None, (tag, i)
        assert got.checkpoint["channel_values"] == {"v": f"{tag}{i}"}, (tag, i, got)
        ids.append(cid(stored))
    return ids


def _in_child(work: Callable[[], Any], timeout: float = 20.0) -> tuple[int, Any, Callable[[], Any]]:
    """Fork; the child runs `work` and reports its result (or error) as JSON through a pipe,
    then leaves with `os._exit`. Returns (pid, None, wait): `wait()` reads the report and
    reaps the child."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        code = 0
        try:
            os.close(read)
            try:
                report: Any = {"ok": work()}
            except BaseException as exc:
                report = {"error": f"{type(exc).__name__}: {exc}"}
                code = 1
            os.write(write, json.dumps(report).encode())
            os.close(write)
        finally:
            os._exit(code)
    os.close(write)

    def wait() -> Any:
        chunks = []
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([read], [], [], left)[0]:
                os.kill(pid, 9)
                os.waitpid(pid, 0)
                os.close(read)
                raise AssertionError("the forked child hung")
            chunk = os.read(read, 65536)
            if not chunk:
                break
            chunks.append(chunk)
        os.close(read)
        _, status = os.waitpid(pid, 0)
        report = json.loads(b"".join(chunks) or b"null")
        assert report is not None and "error" not in report, report
        assert os.waitstatus_to_exitcode(status) == 0, status
        return report["ok"]

    return pid, None, wait


def _fork_target(h: Harness) -> None:
    if h.is_async:
        pytest.skip("fork: a sync saver's story (an event loop does not survive a fork)")
    if not h.target.capabilities.multi_process:
        pytest.skip(f"{h.target.name}: storage of one process")
    if not hasattr(os, "fork"):
        pytest.skip("no os.fork on this platform")


# Targets whose saver was handed a pool the saver cannot reopen: a forked child fails at
# once, naming the fix, and never touches the parent's connections.
_REFUSED_IN_CHILD = {"postgres-pool": "Open the pool in each process after the fork"}


def _child_work(h: Harness, work: Callable[[], Any]) -> Callable[[], Any]:
    """`work`, or for a target that refuses in a forked child, the refusal's message
    (checked to be the clear error, raised at once)."""
    refused = _REFUSED_IN_CHILD.get(h.target.name)
    if refused is None:
        return work

    def expect_refusal() -> str:
        from checkpoint_base import StorageError

        started = time.monotonic()
        with pytest.raises(StorageError, match=refused):
            work()
        assert time.monotonic() - started < 2.0
        return "refused"

    return expect_refusal


async def test_forked_child_uses_the_saver_beside_its_parent(h: Harness) -> None:
    """The parent uses the saver, forks, and both write and read at once; the child's
    writes are visible to the parent, and the parent's connections still work."""
    _fork_target(h)
    saver = h.saver
    parent_tid, child_tid = new_thread(), new_thread()
    _rounds(saver, parent_tid, 3, "before")  # the parent's connections are in use

    _, _, wait = _in_child(_child_work(h, lambda: _rounds(saver, child_tid, 30, "child")))
    parent_ids = _rounds(saver, parent_tid, 30, "parent")
    child_ids = wait()

    if child_ids == "refused":
        assert list(saver.list(config(child_tid))) == []
    else:
        assert [cid(t.config) for t in saver.list(config(child_tid))] == child_ids[::-1]
    listed = [cid(t.config) for t in saver.list(config(parent_tid))]
    assert listed[:30] == parent_ids[::-1] and len(listed) == 33
    _rounds(saver, parent_tid, 3, "after")


async def test_forked_child_closing_the_saver_leaves_the_parent_alone(h: Harness) -> None:
    """A child that closes the saver it inherited (an `atexit` hook, a `with` block left in
    the child), having used it or not, closes only what it opened itself: the parent's
    connections keep working."""
    _fork_target(h)
    saver = h.saver
    tid = new_thread()
    _rounds(saver, tid, 3, "before")

    def used_then_closed() -> str:
        _rounds(saver, new_thread(), 3, "child")
        saver.close()
        return "closed"

    def closed() -> str:
        saver.close()
        return "closed"

    for work in (_child_work(h, used_then_closed), closed):
        _, _, wait = _in_child(work)
        assert wait() in ("closed", "refused")
        ids = _rounds(saver, tid, 10, "after")
        assert [cid(t.config) for t in saver.list(config(tid), limit=10)] == ids[::-1]


def _threads_ok(saver: CheckpointSaver, workers: int, each: int) -> None:
    errors: list[BaseException] = []
    tids = [new_thread() for _ in range(4)]

    def worker(n: int) -> None:
        try:
            tid = tids[n % len(tids)]
            for i in range(each):
                version = {"v": f"{n}-{i}"}
                stored = saver.put(
                    config(tid), checkpoint({"v": f"{n}-{i}"}, version), {"w": n, "i": i}, version
                )
                got = saver.get_tuple(stored)
                assert got is not None and got.checkpoint["channel_values"] == {"v": f"{n}-{i}"}
                saver.put_writes(stored, [("v", n), ("x", i)], f"task-{n}-{i}")
                found = saver.list(config(tid), filter={"w": n, "i": i})
                assert [t.config for t in found] == [stored]
                if i == each - 1 and n % 4 == 3:
                    saver.delete_thread(f"gone-{n}")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads), "a worker hung"
    assert not errors, errors[:3]
    total = sum(len(list(saver.list(config(tid)))) for tid in tids)
    assert total == workers * each


async def test_sixteen_threads_share_a_sync_saver(h: Harness) -> None:
    if h.is_async:
        pytest.skip("the sync flavor's threads")
    _threads_ok(h.saver, 16, 5)


# -- event loops -----------------------------------------------------------------------------

ASYNC_TARGETS = [
    pytest.param(target, id=target.name) for target in TARGETS if target.open_async is not None
]

# Targets whose async saver was handed a pool it cannot reopen on another loop: a plan there
# fails at once, naming the fix.
_REFUSED_ON_ANOTHER_LOOP = {"postgres-pool": "opened on another event loop"}


async def _async_rounds(saver: CheckpointSaver, tid: str, tag: str) -> list[str]:
    """A put and a get, then 12 of each at once on threads of their own (pools grow, locks
    are contended); returns the values read back."""
    version = {"v": tag}
    stored = await saver.aput(config(tid), checkpoint({"v": tag}, version), {}, version)
    got = await saver.aget_tuple(stored)
    assert got is not None and got.checkpoint["channel_values"] == {"v": tag}

    async def one(k: int) -> str:
        version = {"v": f"{tag}-{k}"}
        sub = f"{tid}-{k}"
        await saver.aput(config(sub), checkpoint({"v": f"{tag}-{k}"}, version), {}, version)
        found = await saver.aget_tuple(config(sub))
        assert found is not None
        return str(found.checkpoint["channel_values"]["v"])

    values = await asyncio.gather(*(one(k) for k in range(12)))
    assert values == [f"{tag}-{k}" for k in range(12)]
    return [str(t.checkpoint["channel_values"]["v"]) async for t in saver.alist(config(tid))]


@contextmanager
def _event_loop() -> Iterator[asyncio.AbstractEventLoop]:
    """A loop kept open between runs, as `asyncio.Runner` (Python 3.11+) keeps one, and
    closed as it closes one: the tasks still pending are cancelled and awaited first (a
    saver's own pool, left there when the saver moved on, closes then, as its guard task
    sees the cancellation)."""
    loop = asyncio.new_event_loop()
    try:
        yield loop
    finally:
        pending = asyncio.all_tasks(loop)
        if pending:
            for task in pending:
                task.cancel()
            loop.run_until_complete(asyncio.wait(pending))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.close()


@pytest.mark.parametrize("target", ASYNC_TARGETS)
def test_async_saver_moves_to_the_next_event_loop(target: Target) -> None:
    """An async saver opened under one `asyncio.run` and used under the next ones (scripts,
    a test framework's loop per test, a notebook) works on each, or fails at once with an
    error that names the cause; never an obscure error deep in a driver, never a hang."""
    assert target.open_async is not None
    opener = target.open_async()
    tid = new_thread()
    with _event_loop() as first:
        saver = first.run_until_complete(opener.__aenter__())
        try:
            assert first.run_until_complete(_async_rounds(saver, tid, "first")) == ["first"]
            refused = _REFUSED_ON_ANOTHER_LOOP.get(target.name)
            for n in range(2):  # each loop closed before the next: asyncio.run
                started = time.monotonic()
                if refused is not None:
                    with pytest.raises(ConfigError, match=refused):
                        asyncio.run(asyncio.wait_for(_async_rounds(saver, tid, f"next{n}"), 20))
                    assert time.monotonic() - started < 2.0
                    continue
                listed = asyncio.run(asyncio.wait_for(_async_rounds(saver, tid, f"next{n}"), 20))
                assert listed == [f"next{i}" for i in range(n, -1, -1)] + ["first"]
            # Back on the first loop (kept open meanwhile), every saver works again.
            back = first.run_until_complete(_async_rounds(saver, tid, "back"))
            assert back[:2] == ["back", "next1" if refused is None else "first"]
        finally:
            first.run_until_complete(asyncio.wait_for(opener.__aexit__(None, None, None), 20))
    # The pools and clients left on the loops that closed are collected here, not at a random
    # later point: their coroutines, finalized inside an import that pytest rewrote, tripped
    # CPython 3.11's "AST constructor recursion depth mismatch" and failed the whole run.
    gc.collect()


@pytest.mark.parametrize("target", ASYNC_TARGETS)
def test_async_saver_on_a_second_running_loop_fails_at_once(target: Target) -> None:
    """Used from a loop of another thread while its own loop still runs, an async saver
    raises a clear error at once: it serves one loop at a time."""
    assert target.open_async is not None
    opener = target.open_async()
    tid = new_thread()

    async def main() -> None:
        saver = await opener.__aenter__()
        try:
            version = {"v": "x"}
            await saver.aput(config(tid), checkpoint({"v": "x"}, version), {}, version)

            def elsewhere() -> None:
                with pytest.raises(ConfigError, match="another event loop, which is still"):
                    asyncio.run(saver.aget_tuple(config(tid)))

            started = time.monotonic()
            await asyncio.to_thread(elsewhere)
            assert time.monotonic() - started < 2.0
            got = await saver.aget_tuple(config(tid))  # its own loop still works
            assert got is not None and got.checkpoint["channel_values"] == {"v": "x"}
        finally:
            await opener.__aexit__(None, None, None)

    asyncio.run(asyncio.wait_for(main(), 30))


# -- closing ---------------------------------------------------------------------------------


async def test_close_while_other_threads_are_mid_call(h: Harness) -> None:
    """`close()` from one thread while others put and read: each call completes or raises
    the package's error; none hangs, none fails otherwise."""
    if h.is_async:
        pytest.skip("the sync flavor's threads")
    saver = h.saver
    tid = new_thread()
    outcomes: list[str] = []
    unexpected: list[BaseException] = []
    running = threading.Event()

    # A safety stop only: every worker runs until it meets the closed saver (on a loaded
    # machine the first calls alone can take seconds).
    deadline = time.monotonic() + 60

    def worker(n: int) -> None:
        i = 0
        while time.monotonic() < deadline:
            i += 1
            try:
                version = {"v": f"{n}-{i}"}
                saver.put(config(tid), checkpoint({"v": i}, version), {}, version)
                assert saver.get_tuple(config(tid)) is not None
                running.set()
            except CheckpointerError:
                outcomes.append("error")
                return
            except BaseException as exc:
                unexpected.append(exc)
                return
        outcomes.append("done")

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    assert running.wait(10)
    await asyncio.sleep(0.05)
    saver.close()
    for t in threads:
        t.join(20)
    assert not any(t.is_alive() for t in threads), "a call hung after close()"
    assert not unexpected, unexpected[:3]
    assert outcomes.count("error") == 8, outcomes  # every worker met the closed saver
    with pytest.raises(CheckpointerError):
        saver.get_tuple(config(tid))


_LEFT_OPEN = """
import asyncio, gc, logging, sys
from checkpoint_base import aconnect, connect
from tests.conformance.builders import checkpoint, config

# psycopg_pool logs (WARNING, to stderr when nothing is configured) each connection attempt
# that asyncio.run's final cancellation cuts; tracebacks, "Exception ignored" and hangs stay.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

url, tid = sys.argv[1], sys.argv[2]
dropped = connect(url)  # never closed, dropped and collected
dropped.put(config(tid + "-gc"), checkpoint({"v": "gc"}, {"v": "1"}), {}, {"v": "1"})
del dropped
gc.collect()
saver = connect(url)  # never closed: open at exit
saver.put(config(tid), checkpoint({"v": "sync"}, {"v": "1"}), {}, {"v": "1"})


async def main():
    asaver = await aconnect(url)  # never closed either, its loop gone at exit
    await asaver.aput(config(tid + "-a"), checkpoint({"v": "async"}, {"v": "1"}), {}, {"v": "1"})
    return asaver


kept = asyncio.run(main())
print("written", flush=True)
"""


@pytest.mark.parametrize(
    "target",
    [pytest.param(t, id=t.name) for t in TARGETS if t.url is not None and t.capabilities.durable],
)
def test_savers_left_open_at_exit(target: Target) -> None:
    """A process that writes and exits without closing its savers (one collected before,
    one sync and one async open at exit) exits at once and quietly, and what it wrote is
    there afterwards."""
    assert target.url is not None
    url, tid = target.url(), new_thread()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _LEFT_OPEN, url, tid],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "written\n", "")
    assert time.monotonic() - started < 15
    with connect(url) as saver:
        for suffix, value in (("-gc", "gc"), ("", "sync"), ("-a", "async")):
            got = saver.get_tuple(config(tid + suffix))
            assert got is not None and got.checkpoint["channel_values"] == {"v": value}

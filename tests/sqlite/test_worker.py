"""`_worker.Worker`: calls run in order on its thread; a cancelled call still ends before
its `after` runs; a forked child gets a thread of its own."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest

from checkpoint_sqlite._worker import Worker


async def test_calls_run_in_order_on_one_thread_of_their_own() -> None:
    worker = Worker("test-worker")
    seen: list[tuple[int, int]] = []

    def record(n: int) -> int:
        seen.append((n, threading.get_ident()))
        return n * 2

    results = await asyncio.gather(*(worker.call(record, n) for n in range(5)))
    worker.stop()
    assert results == [0, 2, 4, 6, 8]
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()


async def test_an_error_reaches_the_caller_and_after_runs_once_the_call_ends() -> None:
    worker = Worker("test-worker")
    order: list[str] = []

    def fails() -> None:
        raise ValueError("bad input")

    with pytest.raises(ValueError, match="bad input"):
        await worker.call(fails, after=lambda: order.append("after"))
    assert order == ["after"]

    def slow() -> str:
        time.sleep(0.2)
        order.append("slow ended")
        return "late"

    call = worker.call(slow, after=lambda: order.append("after slow"))
    call.cancel()  # the caller gives up; the call goes on
    with pytest.raises(asyncio.CancelledError):
        await call
    assert await worker.call(lambda: "next") == "next"  # runs after slow, in order
    assert order == ["after", "slow ended", "after slow"]
    worker.stop()


async def test_a_forked_child_gets_a_thread_of_its_own() -> None:
    worker = Worker("test-worker")
    assert await worker.call(os.getpid) == os.getpid()  # the parent's thread is running
    pid = os.fork()
    if pid == 0:  # the child: exit 0 only if its call is answered
        code = 1
        try:
            signal.alarm(20)  # a call left to a thread that is not there ends the child
            code = 0 if asyncio.run(_child_call(worker)) == os.getpid() else 1
        finally:
            os._exit(code)
    _, status = await asyncio.get_running_loop().run_in_executor(None, os.waitpid, pid, 0)
    worker.stop()
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


async def _child_call(worker: Worker) -> int:
    return await worker.call(os.getpid)

"""Helpers of the tests of a saver's writers in one process: threads that put at once, what
they stored, and a forked child that writes while a parent thread holds a lock."""

from __future__ import annotations

import os
import signal
import threading
import time

from checkpoint_sqlite import SqliteSaver
from tests.conformance.builders import checkpoint, config

__all__ = ["PUTS", "THREADS", "check_on_disk", "child_put_status", "put_many"]

THREADS = 8
PUTS = 25


def put_many(saver: SqliteSaver, prefix: str) -> list[BaseException]:
    """`THREADS` threads, started together, each putting a thread of `PUTS` checkpoints
    (thread id `prefix` and its number) with a write after each; the errors they met."""
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def writer(n: int) -> None:
        try:
            start.wait()
            stored = None
            for step in range(1, PUTS + 1):
                cp = checkpoint({"n": n, "step": step}, {"n": step, "step": step})
                stored = saver.put(
                    stored or config(f"{prefix}{n}"), cp, {"step": step}, {"n": step, "step": step}
                )
                saver.put_writes(stored, [("n", step)], f"task-{step}")
        except BaseException as exc:  # reported below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def check_on_disk(db_path: str, prefix: str) -> None:
    """What another saver reads back: every checkpoint and write of every writer."""
    with SqliteSaver.from_conn_string(db_path) as reader:
        for n in range(THREADS):
            history = list(reader.list(config(f"{prefix}{n}")))
            assert [t.metadata["step"] for t in history] == list(range(PUTS, 0, -1))
            for t in history:
                step = t.metadata["step"]
                assert t.checkpoint["channel_values"] == {"n": n, "step": step}
                assert t.pending_writes == [(f"task-{step}", "n", step)]


def child_put_status(saver: SqliteSaver, held: threading.Lock) -> int:
    """Fork while `held` is taken (as if a thread were in the middle of a write); the child
    puts thread "child" and exits 0 if that took under 10 s, 2 if longer, 1 if it failed.
    Returns the child's wait status."""
    held.acquire()
    try:
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                signal.alarm(20)  # a deadlock ends the child instead of the test run
                started = time.monotonic()
                saver.put(config("child"), checkpoint({"a": 2}), {}, {"a": 1})
                code = 0 if time.monotonic() - started < 10 else 2
            finally:
                os._exit(code)
        _, status = os.waitpid(pid, 0)
    finally:
        held.release()
    return status

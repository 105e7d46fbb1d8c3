"""With `synchronous="normal"` the writers of one `SqliteSaver` take turns: a whole `put` or
`put_writes` (serializing included) holds the executor's writer lock, so the threads of a
process never run their storage statements at once, a writer waits at most the saver's
`timeout` for its turn and then goes ahead without it, and a forked child gets a lock of its
own (`checkpoint_base._plan.SerialWriters`)."""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import pytest

from checkpoint_base import ConfigError, Plan
from checkpoint_sqlite import SqliteSaver
from tests.conformance.builders import checkpoint, config
from tests.sqlite._threads import check_on_disk, child_put_status, put_many


def _count_overlaps(saver: SqliteSaver) -> list[int]:
    """After this, `[most plans that ran at once]` of the saver's executor."""
    executor: Any = saver._executor
    run = executor.run
    lock = threading.Lock()
    state = {"now": 0}
    most = [0]

    def counted(plan: Plan[Any]) -> Any:
        with lock:
            state["now"] += 1
            most[0] = max(most[0], state["now"])
        try:
            time.sleep(0.0002)  # widen the window in which another writer could come in
            return run(plan)
        finally:
            with lock:
                state["now"] -= 1

    executor.run = counted
    return most


def test_the_writers_of_a_saver_take_turns(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path) as saver:
        assert saver._executor.writer_lock is not None  # type: ignore[union-attr]
        most = _count_overlaps(saver)
        assert put_many(saver, "w") == []
        assert most[0] == 1, f"{most[0]} writes of one saver ran at once"
    check_on_disk(db_path, "w")


def test_without_turns_the_same_writers_overlap(db_path: str) -> None:
    """The check above can fail: with the lock taken away, writes of the threads overlap."""
    with SqliteSaver.from_conn_string(db_path) as saver:
        saver._executor._writer_lock = None  # type: ignore[union-attr]
        most = _count_overlaps(saver)
        assert put_many(saver, "w") == []
        assert most[0] > 1
    check_on_disk(db_path, "w")


def test_full_commits_are_shared_instead(db_path: str) -> None:
    """With FULL the writers queue on the group commit, which shares commits; a lock around
    whole puts would leave it one writer at a time and nothing to share."""
    with SqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        assert saver._executor.writer_lock is None  # type: ignore[union-attr]
        assert saver._executor._group is not None  # type: ignore[union-attr]


def test_a_writer_that_waited_its_timeout_goes_ahead(db_path: str) -> None:
    """A turn that does not come within `timeout` adds no failure: the put goes ahead
    without it (SQLite's own lock makes it wait or fail, as it would have), and it leaves
    alone the lock it never took."""
    with SqliteSaver.from_conn_string(db_path, timeout=0.2) as saver:
        lock = saver._executor.writer_lock  # type: ignore[union-attr]
        assert lock is not None
        lock.acquire()  # as if another writer of the process never gave its turn back
        try:
            started = time.monotonic()
            stored = saver.put(config("late"), checkpoint({"a": 1}), {}, {"a": 1})
            saver.put_writes(stored, [("a", 2)], "task")
            waited = time.monotonic() - started
            assert lock.locked()  # still ours: the put did not release what it never held
        finally:
            lock.release()
        assert 0.35 <= waited < 5, waited  # each call waited its 0.2 s, then went ahead
        got = saver.get_tuple(config("late"))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        assert got.pending_writes == [("task", "a", 2)]
        assert not lock.locked()
        saver.put(config("after"), checkpoint({"a": 3}), {}, {"a": 1})  # turns work again
        assert not lock.locked()


def test_a_failed_put_gives_its_turn_back(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path) as saver:
        lock = saver._executor.writer_lock  # type: ignore[union-attr]
        assert lock is not None
        with pytest.raises(ConfigError, match="thread_id"):  # refused before anything is stored
            saver.put({"configurable": {}}, checkpoint({"a": 1}), {}, {"a": 1})
        assert not lock.locked()
        saver.put(config("ok"), checkpoint({"a": 1}), {}, {"a": 1})
        assert not lock.locked()


def test_a_forked_child_gets_a_writer_lock_of_its_own(db_path: str) -> None:
    """A lock held by a parent thread at the fork must not leave the child waiting (with a
    timeout of 60 s, a child that waited for its turn would take longer than the 10 s the
    child allows itself)."""
    with SqliteSaver.from_conn_string(db_path, timeout=60) as saver:
        saver.put(config("parent"), checkpoint({"a": 1}), {}, {"a": 1})
        lock = saver._executor.writer_lock  # type: ignore[union-attr]
        assert lock is not None
        status = child_put_status(saver, lock)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        got = saver.get_tuple(config("child"))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 2}

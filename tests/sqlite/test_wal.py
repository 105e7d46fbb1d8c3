"""WAL checkpoints run on the saver's own thread, never inside a caller's write, and keep the
WAL bounded; the pooled connections checkpoint only as a safety valve."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import types
from collections.abc import Callable
from typing import Any

import pytest

import checkpoint_sqlite._wal as wal_module
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver
from checkpoint_sqlite._apool import AsyncPooledExecutor
from checkpoint_sqlite._sync import PooledExecutor
from checkpoint_sqlite._wal import NOTIFY_EVERY, VALVE_PAGES, WAL_LIMIT_BYTES, WalCheckpointer
from tests.conformance.builders import checkpoint, config, new_thread

THRESHOLD = 128 * 1024
VALUE_BYTES = 32 * 1024
BURSTS = 12  # of NOTIFY_EVERY puts, ~1 MiB through the WAL each


@pytest.fixture
def small_wal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wal_module, "WAL_BYTES", THRESHOLD)


def _value(step: int) -> str:
    return f"{step:06d}" + "x" * VALUE_BYTES


def _put(step: int) -> tuple[Any, ...]:
    """A checkpoint with a new ~32 KiB value of channel `a`: its metadata, new versions."""
    return checkpoint({"a": _value(step)}, {"a": step + 1}), {"step": step}, {"a": step + 1}


def _wait_for(condition: Callable[[], bool], seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _wal_size(db_path: str) -> int:
    try:
        return os.path.getsize(db_path + "-wal")
    except FileNotFoundError:
        return 0


def _assert_started_over(peaks: list[int]) -> None:
    """The WAL started over after each burst's checkpoint: it never held much more than one
    burst, where without the thread it would hold them all (the valve is at ~16 MiB)."""
    first = peaks[0]
    assert first > THRESHOLD
    assert max(peaks) < 2 * first
    assert sum(peaks) > 5 * max(peaks)  # the bound means something: far below all of it


def test_sync_writes_leave_checkpoints_to_the_thread(db_path: str, small_wal: None) -> None:
    with SqliteSaver.from_conn_string(db_path) as saver:
        executor = saver._executor
        assert isinstance(executor, PooledExecutor)
        wal = executor._wal
        tid = new_thread()
        stored = []
        peaks = []
        for burst in range(BURSTS):
            before = wal.checkpoints
            peak = 0
            for i in range(NOTIFY_EVERY):
                stored.append(saver.put(config(tid), *_put(burst * NOTIFY_EVERY + i)))
                peak = max(peak, _wal_size(db_path))
            peaks.append(peak)
            _wait_for(lambda before=before: wal.checkpoints > before and not wal.finishing)  # type: ignore[misc]
        thread = wal._thread
        assert thread is not None and thread.name == "checkpointers-sqlite-wal"
        _assert_started_over(peaks)
        conn = executor._take()
        try:
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (VALVE_PAGES,)
        finally:
            executor._give_back(conn)
        for step, cfg in enumerate(stored):
            got = saver.get_tuple(cfg)
            assert got is not None and got.checkpoint["channel_values"] == {"a": _value(step)}
    assert not thread.is_alive()
    with contextlib.closing(sqlite3.connect(db_path)) as conn:  # all reached the file
        (count,) = conn.execute("SELECT count(*) FROM cp_checkpoints").fetchone()
    assert count == BURSTS * NOTIFY_EVERY


async def test_async_writes_leave_checkpoints_to_the_thread(db_path: str, small_wal: None) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path) as saver:
        executor = saver._aexecutor
        assert isinstance(executor, AsyncPooledExecutor)
        wal = executor._wal
        tid = new_thread()
        stored = []
        peaks = []
        for burst in range(BURSTS):
            before = wal.checkpoints
            peak = 0
            for i in range(NOTIFY_EVERY):
                stored.append(await saver.aput(config(tid), *_put(burst * NOTIFY_EVERY + i)))
                peak = max(peak, _wal_size(db_path))
            peaks.append(peak)
            _wait_for(lambda before=before: wal.checkpoints > before and not wal.finishing)  # type: ignore[misc]
        thread = wal._thread
        assert thread is not None and thread.is_alive()
        _assert_started_over(peaks)
        quick = executor._quick_conn()
        assert quick is not None
        assert quick.execute("PRAGMA wal_autocheckpoint").fetchone() == (VALVE_PAGES,)
        for step, cfg in enumerate(stored):
            got = await saver.aget_tuple(cfg)
            assert got is not None and got.checkpoint["channel_values"] == {"a": _value(step)}
    assert not thread.is_alive()


def _grow_wal(db_path: str, size: int) -> sqlite3.Connection:
    """A WAL database whose WAL holds at least `size` bytes (its writer never checkpoints)."""
    conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA wal_autocheckpoint=0")
    conn.execute("CREATE TABLE t (v BLOB)")
    while _wal_size(db_path) < size:
        conn.execute("INSERT INTO t VALUES (?)", (b"x" * 8192,))
    return conn


def _frames_left(conn: sqlite3.Connection) -> int:
    """WAL frames not yet copied into the database (a no-op checkpoint reports them)."""
    _, log, done = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
    return int(log - done)


def test_a_failed_checkpoint_is_tried_again_at_the_next_wake(
    db_path: str, small_wal: None, caplog: pytest.LogCaptureFixture
) -> None:
    writer = _grow_wal(db_path, 2 * THRESHOLD)
    attempts: list[int] = []

    def connect() -> sqlite3.Connection:
        attempts.append(1)
        if len(attempts) == 1:
            raise sqlite3.OperationalError("unable to open database file")
        return sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

    checkpointer = WalCheckpointer(db_path, connect)
    try:
        with caplog.at_level("DEBUG", logger="checkpoint_sqlite"):
            for _ in range(NOTIFY_EVERY - 1):
                checkpointer.wrote()
            assert checkpointer._thread is None  # not yet told: nothing started
            checkpointer.wrote()
            _wait_for(lambda: len(attempts) == 1)
            _wait_for(lambda: "background WAL checkpoint failed" in caplog.text)
            assert checkpointer.checkpoints == 0
            for _ in range(NOTIFY_EVERY):
                checkpointer.wrote()
            _wait_for(lambda: checkpointer.checkpoints == 1)
        assert _frames_left(writer) == 0
    finally:
        checkpointer.close()
        writer.close()
    assert len(attempts) == 2


def test_a_small_wal_is_left_alone(db_path: str, small_wal: None) -> None:
    writer = _grow_wal(db_path, THRESHOLD // 4)
    connected: list[int] = []

    def connect() -> sqlite3.Connection:
        connected.append(1)
        return sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

    checkpointer = WalCheckpointer(db_path, connect)
    try:
        for _ in range(NOTIFY_EVERY):
            checkpointer.wrote()
        thread = checkpointer._thread
        assert thread is not None
        _wait_for(lambda: not checkpointer._wake.is_set())  # it looked
        assert checkpointer.checkpoints == 0 and connected == []
        assert _frames_left(writer) == 0 or _wal_size(db_path) < THRESHOLD
    finally:
        checkpointer.close()
        writer.close()
    assert not thread.is_alive()


def test_close_waits_for_the_checkpoint_in_progress(db_path: str, small_wal: None) -> None:
    writer = _grow_wal(db_path, 2 * THRESHOLD)
    entered = threading.Event()
    release = threading.Event()

    class SlowConnection:
        def __init__(self) -> None:
            self.conn = sqlite3.connect(db_path, isolation_level=None, check_same_thread=False)

        def execute(self, sql: str) -> Any:
            entered.set()
            release.wait(10)
            return self.conn.execute(sql)

        def close(self) -> None:
            self.conn.close()

    checkpointer = WalCheckpointer(db_path, SlowConnection)  # type: ignore[arg-type]
    for _ in range(NOTIFY_EVERY):
        checkpointer.wrote()
    assert entered.wait(10)
    closer = threading.Thread(target=checkpointer.close)
    closer.start()
    time.sleep(0.05)
    assert closer.is_alive()  # still waiting for the checkpoint
    release.set()
    closer.join(10)
    assert not closer.is_alive()
    assert checkpointer.checkpoints == 1
    assert _frames_left(writer) == 0
    writer.close()


def test_with_full_sync_sqlite_checkpoints_as_usual(db_path: str) -> None:
    """With "full" a commit syncs the WAL, so SQLite's own checkpoints stay (no thread); the
    WAL's size limit is the saver's either way."""
    with SqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        executor = saver._executor
        assert isinstance(executor, PooledExecutor)
        assert executor._wal is None
        saver.put(config(new_thread()), *_put(0))
        conn = executor._take()
        try:
            assert conn.execute("PRAGMA wal_autocheckpoint").fetchone() == (1000,)
            assert conn.execute("PRAGMA journal_size_limit").fetchone() == (WAL_LIMIT_BYTES,)
        finally:
            executor._give_back(conn)


async def test_async_with_full_sync_sqlite_checkpoints_as_usual(db_path: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        executor = saver._aexecutor
        assert isinstance(executor, AsyncPooledExecutor)
        assert executor._wal is None
        await saver.aput(config(new_thread()), *_put(0))
        conn = await executor._take()
        try:
            assert await conn.execute_fetchall("PRAGMA wal_autocheckpoint") == [(1000,)]
        finally:
            await executor._give_back(conn)


def test_position_counts_the_frames_of_the_wal_s_current_run(db_path: str) -> None:
    writer = _grow_wal(db_path, 2 * THRESHOLD)
    checkpointer = WalCheckpointer(db_path, lambda: sqlite3.connect(db_path))
    try:
        position = checkpointer._position()
        assert position is not None
        salts, frames, page = position
        # Every frame holds a page plus a 24-byte header; the file starts with a 32-byte one.
        assert page == 4096
        assert frames == (_wal_size(db_path) - 32) // (page + 24)
        size = _wal_size(db_path)
        # Copied, the WAL starts over at the next write, in the same file: fewer frames of a
        # new run (new salts), old ones after them.
        assert _frames_left(writer) == 0
        writer.execute("INSERT INTO t VALUES (?)", (b"y" * 8192,))
        assert _wal_size(db_path) == size
        again = checkpointer._position()
        assert again is not None
        assert again[0] != salts and 0 < again[1] < 10
    finally:
        writer.close()
    assert WalCheckpointer(db_path + ".none", sqlite3.connect)._position() is None


def _wal_threads() -> int:
    return sum(t.name == "checkpointers-sqlite-wal" for t in threading.enumerate())


def test_writers_at_once_start_one_thread(db_path: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def slow_event() -> threading.Event:  # widens the window between "none yet" and started
        time.sleep(0.01)
        return threading.Event()

    slow = types.SimpleNamespace(Event=slow_event, Thread=threading.Thread, Lock=threading.Lock)
    monkeypatch.setattr(wal_module, "threading", slow)
    checkpointer = WalCheckpointer(db_path, lambda: sqlite3.connect(db_path))
    before = _wal_threads()
    start = threading.Barrier(8)

    def write() -> None:
        start.wait()
        for _ in range(NOTIFY_EVERY * 4):
            checkpointer.wrote()

    writers = [threading.Thread(target=write) for _ in range(8)]
    for t in writers:
        t.start()
    for t in writers:
        t.join()
    try:
        assert _wal_threads() == before + 1
    finally:
        checkpointer.close()
    assert _wal_threads() == before


def test_a_forked_child_starts_its_own_thread(db_path: str) -> None:
    checkpointer = WalCheckpointer(db_path, lambda: sqlite3.connect(db_path))
    for _ in range(NOTIFY_EVERY):
        checkpointer.wrote()
    parent_thread = checkpointer._thread
    assert parent_thread is not None
    pid = os.fork()
    if pid == 0:  # the child: the parent's thread was not copied
        code = 1
        try:
            for _ in range(NOTIFY_EVERY):
                checkpointer.wrote()
            thread = checkpointer._thread
            if thread is not None and thread is not parent_thread and thread.is_alive():
                checkpointer.close()
                code = 0 if not thread.is_alive() else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    try:
        assert os.waitstatus_to_exitcode(status) == 0
        assert parent_thread.is_alive()  # the child's close left the parent's alone
    finally:
        checkpointer.close()
    assert not parent_thread.is_alive()


@pytest.mark.parametrize("synchronous", ["normal", "full"])
def test_a_large_transaction_leaves_no_large_wal(
    db_path: str, monkeypatch: pytest.MonkeyPatch, synchronous: str
) -> None:
    """The WAL grows past its usual size for one large write (here a 12 MiB value); once it
    starts over, SQLite cuts the file back to the saver's `journal_size_limit` instead of
    keeping the largest size it ever had until every connection closes."""
    limit = 2 * 1024 * 1024
    pragmas = tuple(p for p in wal_module.VALVE_PRAGMAS if "journal_size_limit" not in p)
    limited = (f"PRAGMA journal_size_limit={limit}",)
    monkeypatch.setattr(wal_module, "VALVE_PRAGMAS", (*pragmas, *limited))
    monkeypatch.setattr(wal_module, "LIMIT_PRAGMAS", limited)
    wal = db_path + "-wal"
    with SqliteSaver.from_conn_string(db_path, synchronous=synchronous) as saver:
        big = os.urandom(12 * 1024 * 1024)
        saver.put(config(new_thread()), checkpoint({"a": big}), {}, {"a": 1})
        assert os.path.getsize(wal) > len(big)
        deadline = time.monotonic() + 30
        step = 0
        while os.path.getsize(wal) > limit:  # small writes: the WAL is copied and starts over
            assert time.monotonic() < deadline, os.path.getsize(wal)
            step += 1
            saver.put(config(new_thread()), checkpoint({"a": step}), {}, {"a": 1})
            if step % NOTIFY_EVERY == 0:
                time.sleep(0.05)
    with SqliteSaver.from_conn_string(db_path) as saver:  # nothing lost on the way
        stored = saver.list({"configurable": {}}, limit=step + 2)
        assert sum(1 for _ in stored) == step + 1

"""A database with no room left: a `StorageFullError` that says how to make room.

SQLite answers SQLITE_FULL ("database or disk is full") when the disk holding the database
or its WAL has no room, or when the database reached its `max_page_count`. The second is
what these tests use: the same error code, through the same code of the saver, without
filling a disk. Before, the saver raised a bare `StorageUnavailableError` ("SQLite:
database or disk is full"), as for a lock that would go away. Now: a `StorageFullError` (a
subclass of that) saying what fills up and how to make room; nothing of the call is
stored, reads go on working, and once there is room the saver writes again.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import aiosqlite
import pytest

from checkpoint_base import StorageFullError, StorageUnavailableError
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver

from ..conformance.builders import checkpoint, cid, config, new_thread
from ..storage_full import arefused_when_full, refused_when_full

_BIG = "x" * 400_000  # about a hundred pages of 4 kB: never in the free pages of the file

_COUNTS = (
    "SELECT (SELECT count(*) FROM cp_checkpoints), (SELECT count(*) FROM cp_blobs),"
    " (SELECT count(*) FROM cp_writes)"
)


def _refused(exc: StorageFullError) -> None:
    message = str(exc)
    assert isinstance(exc, StorageUnavailableError)  # as a full disk was raised before
    assert message.startswith("SQLite: database or disk is full: "), message
    assert "max_page_count" in message and "Nothing of this call was stored" in message
    assert "checkpointers delete --idle" in message and "checkpointers compact" in message


def test_sync(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        tid = new_thread()
        first = saver.put(config(tid), checkpoint({"a": 1, "b": "small"}), {}, {"a": 1, "b": 1})
        saver.put_writes(first, [("a", 2)], "task-0")
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        before = conn.execute(_COUNTS).fetchone()
        refused_when_full(saver, first, _BIG, _refused)
        assert conn.execute(_COUNTS).fetchone() == before and not conn.in_transaction
        # Reads go on: the thread is as it was before the refused calls.
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(first)
        assert latest.checkpoint["channel_values"] == {"a": 1, "b": "small"}
        assert latest.pending_writes == [("task-0", "a", 2)]
        assert len(list(saver.list(config(tid)))) == 1
        # Room again: the same put goes through.
        conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
        big = checkpoint({"a": 1, "b": _BIG}, {"a": 1, "b": 2})
        second = saver.put(first, big, {"step": 1}, {"b": 2})
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(second)
        assert latest.checkpoint["channel_values"] == {"a": 1, "b": _BIG}
    finally:
        conn.close()


async def test_async(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "c.db") as conn:
        saver = AsyncSqliteSaver(conn)
        tid = new_thread()
        first = await saver.aput(config(tid), checkpoint({"b": "small"}), {"step": 0}, {"b": 1})
        async with conn.execute("PRAGMA page_count") as cursor:
            row = await cursor.fetchone()
        assert row is not None
        pages = row[0]
        await conn.execute(f"PRAGMA max_page_count = {pages}")
        await arefused_when_full(saver, first, _BIG, _refused)
        assert [t.checkpoint["channel_values"] async for t in saver.alist(config(tid))] == [
            {"b": "small"}
        ]
        await conn.execute(f"PRAGMA max_page_count = {pages * 1000}")
        second = await saver.aput(first, checkpoint({"b": _BIG}, {"b": 2}), {}, {"b": 2})
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(second)
        assert latest.checkpoint["channel_values"] == {"b": _BIG} and latest.pending_writes == []


def test_the_time_to_live_sweeps_a_full_database(tmp_path: Path) -> None:
    """The time-to-live sweep deletes idle threads of a database at its `max_page_count`,
    and the pages it frees take a put again."""
    conn = sqlite3.connect(tmp_path / "c.db", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        tid = new_thread()
        saver.put(config(tid), checkpoint({"b": _BIG}), {}, {"b": 1})
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StorageFullError):
            saver.put(config(new_thread()), checkpoint({"b": _BIG}), {}, {"b": 1})
        time.sleep(0.3)
        sweeper = saver.sweep_idle_threads(0.2, every=60)
        deadline = time.monotonic() + 10
        while sweeper.sweeps == 0 and time.monotonic() < deadline:
            time.sleep(0.02)
        sweeper.stop()
        assert sweeper.sweeps >= 1 and sweeper.last_error is None, sweeper.last_error
        assert sweeper.deleted == 1 and saver.get_tuple(config(tid)) is None
        assert saver.put(config(new_thread()), checkpoint({"b": _BIG}), {}, {"b": 1})
    finally:
        conn.close()

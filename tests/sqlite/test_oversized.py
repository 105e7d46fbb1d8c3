"""A value longer than SQLite takes in a string or blob: a `ValueTooLargeError` naming it.

SQLite refuses a string or blob longer than the connection's `SQLITE_LIMIT_LENGTH`
(1,000,000,000 bytes by default; lowered here to 100 kB so that no test allocates a
gigabyte). Before, the put failed with a bare "SQLite: string or blob too big", naming
neither the checkpoint, the channel, the size nor the limit. Nothing is stored, the
transaction is rolled back, and the connection (and aiosqlite's thread) goes on working.
"""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import aiosqlite
import pytest

from checkpoint_base import ValueTooLargeError
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver

from ..conformance.builders import checkpoint, cid, config, new_thread

# The limit is lowered per connection (`Connection.setlimit`, Python 3.11+) rather than a
# gigabyte written.
pytestmark = pytest.mark.skipif(
    sys.version_info < (3, 11), reason="sqlite3.Connection.setlimit needs Python 3.11"
)

_LIMIT = 100_000
_BIG = "x" * (2 * _LIMIT)


_COUNTS = (
    "SELECT (SELECT count(*) FROM cp_checkpoints), (SELECT count(*) FROM cp_blobs),"
    " (SELECT count(*) FROM cp_writes)"
)


def _counts(conn: sqlite3.Connection) -> tuple[int, ...]:
    return tuple(conn.execute(_COUNTS).fetchone())


def _refused(exc: ValueTooLargeError, tid: str, what: str) -> None:
    message = str(exc)
    assert repr(tid) in message and what in message, message
    assert f"{len(_BIG) + 5:,} bytes" in message, message  # serialized: 5 bytes more
    assert "SQLITE_LIMIT_LENGTH" in message and "Nothing of it was stored" in message, message


def test_sync(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db", check_same_thread=False)
    try:
        saver = SqliteSaver(conn)
        tid = new_thread()
        first = saver.put(config(tid), checkpoint({"a": 1, "b": "small"}), {}, {"a": 1, "b": 1})
        conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, _LIMIT)
        before = _counts(conn)
        big = checkpoint({"a": 1, "b": _BIG}, {"a": 1, "b": 2})
        with pytest.raises(ValueTooLargeError) as raised:
            saver.put(first, big, {"step": 1}, {"b": 2})
        _refused(raised.value, tid, "channel 'b'")
        with pytest.raises(ValueTooLargeError) as raised:
            saver.put_writes(first, [("a", 1), ("b", _BIG)], "task-1")
        _refused(raised.value, tid, "the write to channel 'b'")
        with pytest.raises(ValueTooLargeError) as raised:
            saver.put(first, checkpoint({"a": 1}, {"a": 1, "b": 1}), {"big": _BIG}, {})
        assert "metadata" in str(raised.value)
        assert _counts(conn) == before and not conn.in_transaction
        fine = saver.put(first, checkpoint({"a": 1, "b": "ok"}, {"a": 1, "b": 2}), {}, {"b": 2})
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(fine)
        assert latest.checkpoint["channel_values"] == {"a": 1, "b": "ok"}
    finally:
        conn.close()


async def test_async(tmp_path: Path) -> None:
    async with aiosqlite.connect(tmp_path / "c.db") as conn:
        saver = AsyncSqliteSaver(conn)
        tid = new_thread()
        first = await saver.aput(config(tid), checkpoint({"b": "small"}), {"step": 0}, {"b": 1})
        await conn._execute(conn._conn.setlimit, sqlite3.SQLITE_LIMIT_LENGTH, _LIMIT)
        with pytest.raises(ValueTooLargeError) as raised:
            await saver.aput(first, checkpoint({"b": _BIG}, {"b": 2}), {"step": 1}, {"b": 2})
        _refused(raised.value, tid, "channel 'b'")
        with pytest.raises(ValueTooLargeError) as raised:
            await saver.aput_writes(first, [("b", _BIG)], "task-1")
        _refused(raised.value, tid, "the write to channel 'b'")
        assert [t.checkpoint["channel_values"] async for t in saver.alist(config(tid))] == [
            {"b": "small"}
        ]
        fine = await saver.aput(first, checkpoint({"b": "ok"}, {"b": 2}), {}, {"b": 2})
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(fine)
        assert latest.checkpoint["channel_values"] == {"b": "ok"} and latest.pending_writes == []

"""Writes reuse one cursor per connection (its adapter caches stay warm); reads do not, so no
large result stays referenced after a read."""

from __future__ import annotations

from typing import Any

import psycopg

from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._state import WRITE_CURSOR
from tests.conformance.builders import checkpoint, config

from .conftest import CONN_KWARGS, unique


def test_writes_reuse_one_cursor_per_connection(pg_url: str, schema: str) -> None:
    thread = unique()
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        saver = PostgresSaver(conn, schema=schema)
        saver.setup()
        first = saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        cursor = getattr(conn, WRITE_CURSOR)
        second = saver.put(first, checkpoint({"a": "x" * 100_000}, {"a": 2}), {}, {"a": 2})
        saver.put_writes(second, [("a", 3)], "task")
        assert getattr(conn, WRITE_CURSOR) is cursor
        got = saver.get_tuple(config(thread))  # a read: another cursor, closed after it
        assert got is not None and got.checkpoint["channel_values"] == {"a": "x" * 100_000}
        assert len(list(saver.list(config(thread)))) == 2
        assert getattr(conn, WRITE_CURSOR) is cursor
        result = cursor.pgresult
        assert result is not None and result.ntuples == 0  # holds no rows
        cursor.close()  # closed by someone else: the next write opens another
        saver.put(second, checkpoint({"a": 4}, {"a": 4}), {}, {"a": 4})
        assert getattr(conn, WRITE_CURSOR) is not cursor
        got = saver.get_tuple(config(thread))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 4}


async def test_async_writes_reuse_one_cursor_per_connection(pg_url: str, schema: str) -> None:
    thread = unique()
    conn: Any = await psycopg.AsyncConnection.connect(pg_url, **CONN_KWARGS)
    async with conn:
        saver = AsyncPostgresSaver(conn, schema=schema)
        await saver.asetup()
        first = await saver.aput(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        cursor = getattr(conn, WRITE_CURSOR)
        await saver.aput_writes(first, [("a", 2)], "task")
        assert getattr(conn, WRITE_CURSOR) is cursor
        got = await saver.aget_tuple(config(thread))
        assert got is not None and got.pending_writes == [("task", "a", 2)]
        assert getattr(conn, WRITE_CURSOR) is cursor

"""Options of the saver's own connections: `synchronous` and `timeout`, by URL or keyword."""

from __future__ import annotations

import pytest

from checkpoint_base import ConfigError, aconnect, connect
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver
from checkpoint_sqlite._conn import ConnectOptions, open_options
from tests.conformance.builders import checkpoint, config
from tests.sqlite._threads import child_put_status

NORMAL, FULL = 1, 2  # what `PRAGMA synchronous` reports


def _pragmas(conn: object) -> tuple[int, int]:
    execute = conn.execute  # type: ignore[attr-defined]
    return execute("PRAGMA synchronous").fetchone()[0], execute("PRAGMA busy_timeout").fetchone()[0]


@pytest.mark.parametrize(
    ("url", "kwargs", "synchronous", "timeout_ms"),
    [
        ("sqlite:///{db}", {}, NORMAL, 5000),
        ("sqlite:///{db}?synchronous=full", {}, FULL, 5000),
        ("sqlite:///{db}?synchronous=FULL&timeout=2.5", {}, FULL, 2500),
        ("sqlite:///{db}", {"synchronous": "full", "timeout": 1.5}, FULL, 1500),
        ("sqlite:///{db}?synchronous=full", {"synchronous": "full"}, FULL, 5000),
        ("sqlite:///{db}?timeout=5", {"synchronous": "normal", "timeout": 5.0}, NORMAL, 5000),
    ],
)
def test_every_own_connection_gets_the_options(
    db_path: str, url: str, kwargs: dict[str, object], synchronous: int, timeout_ms: int
) -> None:
    with connect(url.format(db=db_path), **kwargs) as saver:
        stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        got = saver.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        executor = saver._executor
        conns = [executor._take(), executor._take()]  # type: ignore[union-attr]
        try:
            assert [_pragmas(c) for c in conns] == [(synchronous, timeout_ms)] * 2
        finally:
            for c in conns:
                c.close()


async def test_async_connections_get_the_options(db_path: str) -> None:
    async with aconnect(f"sqlite:///{db_path}?synchronous=full&timeout=3") as saver:
        stored = await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert (await saver.aget_tuple(stored)) is not None
        conn = await saver._aexecutor._take()  # type: ignore[union-attr]
        try:
            synchronous = await (await conn.execute("PRAGMA synchronous")).fetchone()
            timeout = await (await conn.execute("PRAGMA busy_timeout")).fetchone()
            assert (synchronous[0], timeout[0]) == (FULL, 3000)  # type: ignore[index]
        finally:
            await conn.close()


def test_from_conn_string_takes_synchronous(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        conn = saver._executor._take()  # type: ignore[union-attr]
        try:
            assert _pragmas(conn)[0] == FULL
        finally:
            conn.close()


async def test_async_from_conn_string_takes_synchronous(db_path: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        conn = await saver._aexecutor._take()  # type: ignore[union-attr]
        try:
            row = await (await conn.execute("PRAGMA synchronous")).fetchone()
            assert row is not None and row[0] == FULL
        finally:
            await conn.close()


def test_open_options_merges_url_and_keywords() -> None:
    path, options = open_options("sqlite:///a.db?timeout=7", timeout=None, synchronous="full")
    assert path == "a.db"
    assert options == ConnectOptions(timeout=7.0, synchronous="full")
    path, options = open_options("sqlite:///:memory:", timeout=None, synchronous=None)
    assert (path, options) == (":memory:", ConnectOptions())


@pytest.mark.parametrize(
    ("url", "kwargs", "message"),
    [
        ("sqlite:///a.db?journal=delete", {}, "unknown option 'journal'"),
        ("sqlite:///a.db?timeout=soon", {}, "must be a number of seconds, got 'soon'"),
        ("sqlite:///a.db?timeout=1&timeout=2", {}, "appears twice"),
        ("sqlite:///a.db?synchronous=off", {}, "synchronous must be 'normal' or 'full'"),
        ("sqlite:///a.db", {"synchronous": "extra"}, "synchronous must be 'normal' or 'full'"),
        ("sqlite:///a.db?synchronous=full", {"synchronous": "normal"}, "given twice"),
        ("sqlite:///a.db?timeout=1", {"timeout": 2.0}, "given twice"),
        ("sqlite:///a.db?timeout", {}, "malformed query"),
        # What SQLAlchemy's SQLite URLs carry for sqlite3: named, with what to write instead.
        ("sqlite+pysqlite:///a.db?mode=ro&uri=true", {}, "'mode'.*write read_only=true"),
        ("sqlite:///a.db?uri=true", {}, "'uri'.*give the file's path"),
        ("sqlite+aiosqlite:///a.db?check_same_thread=false", {}, "safe across threads"),
        ("sqlite:///a.db?immutable=1", {}, "'immutable'.*read_only=true"),
    ],
)
def test_bad_options_are_named(url: str, kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        SqliteSaver.open(url, **kwargs)  # type: ignore[arg-type]


def test_a_forked_child_gets_a_write_lock_of_its_own(db_path: str) -> None:
    """With FULL the saver's writers share a lock; one held by a parent thread at the fork
    must not leave the child's writes waiting forever."""
    import os

    with SqliteSaver.from_conn_string(db_path, synchronous="full") as saver:
        saver.put(config("parent"), checkpoint({"a": 1}), {}, {"a": 1})
        group = saver._executor._group  # type: ignore[union-attr]
        assert group is not None
        lock = group.lock
        assert lock is not None
        status = child_put_status(saver, lock)
        assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
        got = saver.get_tuple(config("child"))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 2}

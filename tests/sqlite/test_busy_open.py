"""Opening a connection while another one holds the lock that `PRAGMA journal_mode=WAL` needs.

SQLite refuses that pragma at once, without waiting in its busy handler, when another
connection holds the write lock of a database still in rollback-journal mode: several
savers opening one new file at once met it. The saver retries it until its `timeout`.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator

import pytest

from checkpoint_base import StorageUnavailableError
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver
from checkpoint_sqlite._session import busy_pauses
from tests.conformance.builders import checkpoint, config
from tests.sqlite._conns import connect


@pytest.fixture
def locked(db_path: str) -> Iterator[tuple[sqlite3.Connection, threading.Event]]:
    """A rollback-journal database whose write lock another connection holds until `release`
    is set (or the test ends)."""
    holder = connect(db_path, isolation_level=None, check_same_thread=False)
    holder.execute("CREATE TABLE other (x)")
    holder.execute("BEGIN IMMEDIATE")
    holder.execute("INSERT INTO other VALUES (1)")
    release = threading.Event()
    done = threading.Event()

    def hold() -> None:
        release.wait(30)
        holder.execute("COMMIT")
        done.set()

    threading.Thread(target=hold, daemon=True).start()
    yield holder, release
    release.set()
    done.wait(30)
    holder.close()


def test_the_settings_wait_for_the_lock(
    db_path: str, locked: tuple[object, threading.Event]
) -> None:
    _, release = locked
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    with SqliteSaver.from_conn_string(db_path, timeout=10.0) as saver:
        waited = time.monotonic() - started
        stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        got = saver.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    assert waited >= 0.25
    with connect(db_path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


async def test_the_settings_wait_for_the_lock_async(
    db_path: str, locked: tuple[object, threading.Event]
) -> None:
    _, release = locked
    threading.Timer(0.3, release.set).start()
    started = time.monotonic()
    async with AsyncSqliteSaver.from_conn_string(db_path, timeout=10.0) as saver:
        waited = time.monotonic() - started
        stored = await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        got = await saver.aget_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    assert waited >= 0.25


def test_the_wait_ends_at_the_timeout(db_path: str, locked: tuple[object, threading.Event]) -> None:
    started = time.monotonic()
    with (
        pytest.raises(StorageUnavailableError, match="locked"),
        SqliteSaver.from_conn_string(db_path, timeout=0.5),
    ):
        pass
    waited = time.monotonic() - started
    assert 0.45 <= waited < 5.0


def test_busy_pauses_stop_at_the_deadline() -> None:
    started = time.monotonic()
    pauses = []
    for pause in busy_pauses(0.3):
        if pause is None:
            break
        assert 0 < pause <= 0.1
        pauses.append(pause)
        time.sleep(pause)
    assert time.monotonic() - started >= 0.3
    assert len(pauses) >= 3
    assert next(iter(busy_pauses(0.0))) is None

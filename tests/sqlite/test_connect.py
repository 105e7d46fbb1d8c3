"""Opening savers: URLs, paths, `:memory:`, given connections; set-up, pragmas, errors."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import aiosqlite
import pytest

from checkpoint_base import (
    ConfigError,
    MissingDriverError,
    SchemaVersionError,
    StorageError,
    StorageUnavailableError,
    aconnect,
    connect,
)
from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver
from checkpoint_sqlite._conn import ConnectOptions, database_path
from checkpoint_sqlite._schema import MIGRATIONS
from checkpoint_sqlite._sync import open_connection
from tests.conformance.builders import checkpoint, config

from .conftest import applied_migrations


@pytest.mark.parametrize(
    ("target", "path"),
    [
        ("sqlite:///checkpoints.db", "checkpoints.db"),
        ("sqlite:////var/data/c.db", "/var/data/c.db"),
        ("sqlite:///:memory:", ":memory:"),
        ("sqlite://", ":memory:"),
        ("sqlite:///dir%20with%20space/c.db", "dir with space/c.db"),
        ("SQLITE:///x.db", "x.db"),
        ("plain/path.db", "plain/path.db"),
        (":memory:", ":memory:"),
    ],
)
def test_database_path(target: str, path: str) -> None:
    assert database_path(target) == path


@pytest.mark.parametrize("bad", ["postgresql://h/db", "sqlite://host/x.db"])
def test_database_path_rejects(bad: str) -> None:
    with pytest.raises(ConfigError):
        database_path(bad)


def test_connect_file_url_persists(db_path: str) -> None:
    with connect(f"sqlite:///{db_path}") as saver:
        assert isinstance(saver, SqliteSaver)
        stored = saver.put(config("t"), checkpoint({"a": 1}), {"k": "v"}, {"a": 1})
    with connect(f"sqlite:///{db_path}") as saver:
        got = saver.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
        assert got.metadata["k"] == "v"


def test_connect_memory_is_one_database_for_every_thread() -> None:
    with connect("sqlite:///:memory:") as saver:
        stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        found: list[object] = []
        thread = threading.Thread(target=lambda: found.append(saver.get_tuple(stored)))
        thread.start()
        thread.join()
        assert found[0] is not None
    with connect("sqlite:///:memory:") as fresh:  # a new saver: a new, empty database
        assert fresh.get_tuple(config("t")) is None


async def test_aconnect_file_and_memory(db_path: str) -> None:
    for url in (f"sqlite:///{db_path}", "sqlite:///:memory:"):
        async with aconnect(url) as saver:
            assert isinstance(saver, AsyncSqliteSaver)
            stored = await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            got = await saver.aget_tuple(stored)
            assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


def test_given_connection_is_set_up_on_first_use_and_left_open(db_path: str) -> None:
    conn = sqlite3.connect(db_path, check_same_thread=False)
    saver = SqliteSaver(conn)
    stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
    assert saver.get_tuple(stored) is not None
    saver.close()
    assert conn.execute("SELECT count(*) FROM cp_checkpoints").fetchone() == (1,)
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


async def test_given_async_connection_is_set_up_on_first_use(db_path: str) -> None:
    async with aiosqlite.connect(db_path) as conn:
        saver = AsyncSqliteSaver(conn)
        stored = await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert await saver.aget_tuple(stored) is not None
        await saver.aclose()
        assert await conn.execute_fetchall("SELECT count(*) FROM cp_checkpoints") == [(1,)]


@pytest.mark.parametrize("isolation_level", ["", "DEFERRED", None])
def test_given_connection_commits_every_write(db_path: str, isolation_level: str | None) -> None:
    # sqlite3's legacy transaction control opens a transaction before a write by itself;
    # the saver must still commit, and leave the connection outside any transaction.
    conn = sqlite3.connect(db_path, check_same_thread=False, isolation_level=isolation_level)
    saver = SqliteSaver(conn)
    stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
    saver.put_writes(stored, [("a", 2)], "task")
    assert not conn.in_transaction
    other = sqlite3.connect(db_path)
    try:
        assert other.execute("SELECT count(*) FROM cp_checkpoints").fetchone() == (1,)
        assert other.execute("SELECT count(*) FROM cp_writes").fetchone() == (1,)
    finally:
        other.close()
        conn.close()


def test_writes_join_the_callers_open_transaction(db_path: str) -> None:
    conn = sqlite3.connect(db_path, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute("CREATE TABLE mine (x)")
    conn.execute("INSERT INTO mine VALUES (1)")  # sqlite3 opens a transaction for the caller
    assert conn.in_transaction
    saver.put(config("rolled-back"), checkpoint({"a": 1}), {}, {"a": 1})
    assert conn.in_transaction  # the saver neither committed nor ended it
    conn.rollback()
    assert saver.get_tuple(config("rolled-back")) is None
    conn.execute("INSERT INTO mine VALUES (2)")
    saver.put(config("kept"), checkpoint({"a": 1}), {}, {"a": 1})
    conn.commit()
    assert saver.get_tuple(config("kept")) is not None
    conn.close()


def test_from_conn_string_sets_up_and_closes(db_path: str) -> None:
    with SqliteSaver.from_conn_string(f"sqlite:///{db_path}") as saver:
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
    with pytest.raises(StorageError, match="closed"):
        saver.get_tuple(config("t"))


def test_migrations_are_numbered_recorded_and_idempotent(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path) as saver:
        saver.setup()
        saver.setup()
    assert applied_migrations(db_path) == list(range(len(MIGRATIONS)))
    raw = sqlite3.connect(db_path)
    raw.execute("INSERT INTO cp_migrations VALUES (?)", (len(MIGRATIONS) + 5,))
    raw.commit()
    raw.close()
    with pytest.raises(SchemaVersionError, match="newer"), SqliteSaver.from_conn_string(db_path):
        pass


def test_own_connections_use_wal_normal_and_a_busy_timeout(db_path: str) -> None:
    conn = open_connection(db_path, ConnectOptions(timeout=2.5))
    try:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert conn.execute("PRAGMA synchronous").fetchone() == (1,)  # NORMAL
        assert conn.execute("PRAGMA busy_timeout").fetchone() == (2500,)
        assert conn.isolation_level is None
    finally:
        conn.close()


def _hold_write_lock(db_path: str, seconds: float) -> threading.Thread:
    ready = threading.Event()

    def hold() -> None:
        raw = sqlite3.connect(db_path, isolation_level=None)
        raw.execute("BEGIN IMMEDIATE")
        ready.set()
        time.sleep(seconds)
        raw.execute("ROLLBACK")
        raw.close()

    thread = threading.Thread(target=hold)
    thread.start()
    ready.wait()
    return thread


def test_locked_database_waits_then_succeeds(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path, timeout=0.05) as saver:
        # Longer than busy_timeout, shorter than the bounded retries after it.
        holder = _hold_write_lock(db_path, 0.1)
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        holder.join()
        assert saver.get_tuple(config("t")) is not None


def test_locked_database_reports_unavailable_not_a_driver_error(db_path: str) -> None:
    with SqliteSaver.from_conn_string(db_path, timeout=0.01) as saver:
        holder = _hold_write_lock(db_path, 2.0)
        try:
            with pytest.raises(StorageUnavailableError, match="locked") as info:
                saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        finally:
            holder.join()
        saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})  # usable again


def test_missing_tables_say_to_run_setup(db_path: str) -> None:
    saver = SqliteSaver.open(db_path)
    try:
        with pytest.raises(StorageError, match="setup"):
            saver.get_tuple(config("t"))
    finally:
        saver.close()


async def test_what_stops_a_file_from_opening_is_named(tmp_path: Path) -> None:
    """SQLite says only "unable to open database file"; the error says why."""
    (tmp_path / "a-directory").mkdir()
    cases = [
        (tmp_path / "missing" / "dir" / "x.db", "its directory .*missing/dir' does not exist"),
        (tmp_path / "a-directory", "it is a directory"),
    ]
    for path, reason in cases:
        with pytest.raises(ConfigError, match=f"cannot open SQLite database .*: {reason}"):
            connect(f"sqlite:///{path}")
        with pytest.raises(ConfigError, match=reason):
            async with aconnect(f"sqlite:///{path}"):
                pass
    assert not (tmp_path / "missing").exists()  # nothing created on the way


async def test_missing_aiosqlite_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "aiosqlite", None)
    with pytest.raises(MissingDriverError, match=r"pip install 'checkpointers\[sqlite\]'"):
        await AsyncSqliteSaver.open(":memory:")


def test_setup_upgrades_a_database_of_an_older_version(db_path: str) -> None:
    raw = sqlite3.connect(db_path)
    raw.execute("CREATE TABLE cp_migrations (v INTEGER PRIMARY KEY)")
    for statement in MIGRATIONS[0]:
        raw.execute(statement)
    raw.execute("INSERT INTO cp_migrations VALUES (0)")
    raw.commit()
    raw.close()
    with SqliteSaver.from_conn_string(db_path) as saver:
        stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
        assert saver.get_tuple(stored) is not None
    assert applied_migrations(db_path) == list(range(len(MIGRATIONS)))


@pytest.mark.parametrize("wrong", ["checkpoints.db", Path("checkpoints.db"), None])
def test_a_path_instead_of_a_connection_is_a_clear_error(wrong: object) -> None:
    """LangGraph users pass a path by habit: the error names it and the two ways that work."""
    with pytest.raises(ConfigError, match=r"sqlite3\.Connection.*from_conn_string"):
        SqliteSaver(wrong)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"aiosqlite\.Connection.*from_conn_string"):
        AsyncSqliteSaver(wrong)  # type: ignore[arg-type]


_FORGETFUL = """
import asyncio, sys
from langgraph.checkpoint.base import empty_checkpoint
from checkpoint_base import aconnect

async def main():
    saver = await aconnect("sqlite:///" + sys.argv[1])  # never closed
    cfg = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
    print(await saver.aput(cfg, empty_checkpoint(), {"step": 1}, {}))
    print(await saver.aget_tuple(cfg) is not None)  # a read as well: then the exit hung

asyncio.run(main())
"""


def test_an_async_saver_nobody_closed_does_not_keep_the_process_alive(db_path: str) -> None:
    """aiosqlite's worker threads are not daemons: a forgotten saver used to hang the exit."""
    import subprocess

    done = subprocess.run(
        [sys.executable, "-c", _FORGETFUL, db_path], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    with connect(f"sqlite:///{db_path}") as saver:  # what it wrote before exiting is there
        stored = saver.get_tuple({"configurable": {"thread_id": "t"}})
    assert stored is not None and stored.metadata["step"] == 1
    assert stored.config["configurable"]["checkpoint_id"] in done.stdout

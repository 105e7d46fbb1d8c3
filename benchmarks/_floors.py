"""Raw-driver floors for SQL databases: the same bytes, one statement, no saver around them.

A floor stores, for each recorded `put`, the bytes a saver of this package would store
(serialized checkpoint, new blobs, metadata: `PutCall.data`) as one row, with one autocommit
statement per operation: `INSERT` for `put`, `SELECT ... LIMIT 1` for `get_tuple`, and so on.
It does not rebuild Python objects, so it is a lower bound a saver can approach, not reach.

The statements are data; each floor runs them with its driver: sqlite3 / aiosqlite
(journal_mode=WAL with synchronous=NORMAL, the settings of our SQLite saver's own
connections, so the ratio measures the saver and not a durability difference; the official
SQLite saver keeps SQLite's default synchronous=FULL) and psycopg / psycopg async
(autocommit, in a fresh schema).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from ._graph import PutCall, WritesCall
from ._handles import Handle

__all__ = ["PostgresFloor", "SqliteFloor"]

_ALL = 2**31 - 1  # "no limit" as a bound parameter both databases accept


@dataclass(frozen=True)
class Statements:
    """The floor's statements for one paramstyle."""

    ddl: tuple[str, ...]
    put: str
    put_writes: str
    latest: str
    by_id: str
    page: str
    by_step: str
    delete: tuple[tuple[Any, int], ...]
    """Statements and how many times each binds the thread id."""
    lz4: tuple[Any, ...] = ()
    """PostgreSQL: the statements that make the floor's tables compress with lz4."""


def _sqlite_statements() -> Statements:
    return Statements(
        ddl=(
            "CREATE TABLE IF NOT EXISTS floor_cp (thread TEXT, id TEXT, step INTEGER, data BLOB, "
            "PRIMARY KEY (thread, id))",
            "CREATE INDEX IF NOT EXISTS floor_cp_step ON floor_cp (thread, step)",
            "CREATE TABLE IF NOT EXISTS floor_wr (thread TEXT, id TEXT, task TEXT, data BLOB, "
            "PRIMARY KEY (thread, id, task))",
        ),
        put="INSERT OR REPLACE INTO floor_cp (thread, id, step, data) VALUES (?, ?, ?, ?)",
        put_writes="INSERT OR REPLACE INTO floor_wr (thread, id, task, data) VALUES (?, ?, ?, ?)",
        latest="SELECT data FROM floor_cp WHERE thread = ? ORDER BY id DESC LIMIT 1",
        by_id="SELECT data FROM floor_cp WHERE thread = ? AND id = ?",
        page="SELECT data FROM floor_cp WHERE thread = ? ORDER BY id DESC LIMIT ?",
        by_step="SELECT data FROM floor_cp WHERE thread = ? AND step = ?",
        delete=(
            ("DELETE FROM floor_wr WHERE thread = ?", 1),
            ("DELETE FROM floor_cp WHERE thread = ?", 1),
        ),
    )


def _postgres_statements(schema: str) -> tuple[Statements, Any]:
    from psycopg import sql

    def q(text: str) -> Any:
        return sql.SQL(text).format(s=sql.Identifier(schema))

    stmts = Statements(
        ddl=(
            q("CREATE SCHEMA IF NOT EXISTS {s}"),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.floor_cp (thread TEXT, id TEXT, step INTEGER, "
                "data BYTEA, PRIMARY KEY (thread, id))"
            ),
            q("CREATE INDEX IF NOT EXISTS floor_cp_step ON {s}.floor_cp (thread, step)"),
            q(
                "CREATE TABLE IF NOT EXISTS {s}.floor_wr (thread TEXT, id TEXT, task TEXT, "
                "data BYTEA, PRIMARY KEY (thread, id, task))"
            ),
        ),
        lz4=(
            q("ALTER TABLE {s}.floor_cp ALTER COLUMN data SET COMPRESSION lz4"),
            q("ALTER TABLE {s}.floor_wr ALTER COLUMN data SET COMPRESSION lz4"),
        ),
        put=q(
            "INSERT INTO {s}.floor_cp (thread, id, step, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (thread, id) DO UPDATE SET data = excluded.data"
        ),
        put_writes=q(
            "INSERT INTO {s}.floor_wr (thread, id, task, data) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (thread, id, task) DO UPDATE SET data = excluded.data"
        ),
        latest=q("SELECT data FROM {s}.floor_cp WHERE thread = %s ORDER BY id DESC LIMIT 1"),
        by_id=q("SELECT data FROM {s}.floor_cp WHERE thread = %s AND id = %s"),
        page=q("SELECT data FROM {s}.floor_cp WHERE thread = %s ORDER BY id DESC LIMIT %s"),
        by_step=q("SELECT data FROM {s}.floor_cp WHERE thread = %s AND step = %s"),
        # One round trip: the writes go in a data-modifying CTE.
        delete=(
            (
                q(
                    "WITH w AS (DELETE FROM {s}.floor_wr WHERE thread = %s) "
                    "DELETE FROM {s}.floor_cp WHERE thread = %s"
                ),
                2,
            ),
        ),
    )
    size = q(
        "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
    )
    return stmts, size


class _SqlFloor(Handle):
    """Runs `Statements` with a driver; subclasses give `_exec` (sync) and `_aexec` (async)."""

    st: Statements

    def prepare_put(self, thread_id: str, call: PutCall) -> Any:
        step = call.metadata.get("step", 0)
        return (thread_id, call.checkpoint["id"], int(step), call.data)

    def prepare_writes(self, thread_id: str, call: WritesCall) -> Any:
        checkpoint_id = call.config["configurable"]["checkpoint_id"]
        return (thread_id, checkpoint_id, call.task_id, call.data)

    def _exec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    async def _aexec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        raise NotImplementedError

    async def _run(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        if self.sync:
            return self._exec(sql, params)
        return await self._aexec(sql, params)

    def put_sync(self, args: Any) -> None:
        self._exec(self.st.put, args)

    async def put(self, args: Any) -> None:
        await self._run(self.st.put, args)

    async def put_writes(self, args: Any) -> None:
        await self._run(self.st.put_writes, args)

    async def get(self, thread_id: str, checkpoint_id: str | None) -> bool:
        if checkpoint_id is None:
            return bool(await self._run(self.st.latest, (thread_id,)))
        return bool(await self._run(self.st.by_id, (thread_id, checkpoint_id)))

    async def list(self, thread_id: str, limit: int | None, step: int | None) -> int:
        if step is not None:
            return len(await self._run(self.st.by_step, (thread_id, step)))
        return len(await self._run(self.st.page, (thread_id, _ALL if limit is None else limit)))

    async def delete(self, thread_id: str) -> None:
        for statement, binds in self.st.delete:
            await self._run(statement, (thread_id,) * binds)


MEMORY = ":memory:"


class SqliteFloor(_SqlFloor):
    """sqlite3 (sync) or aiosqlite (async), autocommit, on a temporary file (WAL, NORMAL).

    With `path=":memory:"` the floor is an in-memory database on one connection, which its
    concurrent writers share, one statement at a time (as the saver's own in-memory database
    is shared): SQLite is built serialized, but Python's `sqlite3` module is not safe on one
    connection from several threads at once (on Python 3.13 two writers got "bad parameter
    or other API misuse"). `synchronous="full"` commits as the `sqlite-full` target does.
    """

    def __init__(self, *, sync: bool, path: str | None = None, synchronous: str = "normal") -> None:
        from checkpoint_sqlite._conn import connection_pragmas

        self.sync = sync
        self.synchronous = synchronous
        # The saver's own settings for a file (WAL, `synchronous`), so the ratio measures the
        # saver and not a durability difference.
        self.pragmas = (*connection_pragmas("floor.db", synchronous), "PRAGMA busy_timeout=30000")
        self.st = _sqlite_statements()
        if path == MEMORY:
            self._owned = False
        elif path is None:
            fd, path = tempfile.mkstemp(prefix="bench-floor-", suffix=".db")
            os.close(fd)
            self._owned = True
        else:
            self._owned = False
        self.path = path
        self._conn: Any = None
        self._children: list[SqliteFloor] = []
        self._shared = threading.Lock() if path == MEMORY else None

    async def open(self) -> SqliteFloor:
        """Connect, set WAL and `synchronous` (files only), and create the tables."""
        pragmas = () if self.path == MEMORY else self.pragmas
        if self.sync:
            self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        else:
            import aiosqlite

            self._conn = await aiosqlite.connect(self.path, isolation_level=None)
        for statement in (*pragmas, *self.st.ddl):
            await self._run(statement, ())
        return self

    def _exec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        if self._shared is None:
            return self._conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]
        with self._shared:
            return self._conn.execute(sql, params).fetchall()  # type: ignore[no-any-return]

    async def _aexec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        async with self._conn.execute(sql, params) as cursor:
            return list(await cursor.fetchall())

    async def writers(self, n: int) -> list[Handle]:
        if self.path == MEMORY:  # one database, one connection
            return [self] * n
        # One connection per writer, as SQLite wants; opened once and reused across rounds.
        while len(self._children) < n:
            child = SqliteFloor(sync=self.sync, path=self.path, synchronous=self.synchronous)
            self._children.append(await child.open())
        return list(self._children[:n])

    async def storage_bytes(self) -> int | None:
        from ._storage import sqlite_connection_bytes, sqlite_file_bytes

        if self.path == MEMORY:
            return await sqlite_connection_bytes(self._conn)
        return sqlite_file_bytes(self.path)

    async def aclose(self) -> None:
        for child in self._children:
            await child.aclose()
        if self._conn is not None:
            if self.sync:
                self._conn.close()
            else:
                await self._conn.close()
            self._conn = None
        if self._owned:
            _remove_db(self.path)


def _remove_db(path: str) -> None:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.unlink(path + suffix)


class PostgresFloor(_SqlFloor):
    """psycopg (sync or async), autocommit, one statement per operation, in a fresh schema."""

    def __init__(
        self, url: str, *, sync: bool, prepare: bool = True, schema: str | None = None
    ) -> None:
        self.sync = sync
        self.url = url
        self.prepare = prepare
        self._owned = schema is None
        self.schema = schema or f"bench_floor_{uuid.uuid4().hex[:12]}"
        self.st, self._size = _postgres_statements(self.schema)
        self._conn: Any = None
        self._children: list[PostgresFloor] = []

    async def open(self) -> PostgresFloor:
        """Connect (autocommit) and create the schema and tables."""
        import psycopg

        # Through a transaction-pooling PgBouncer, server-side prepared statements break.
        threshold = 5 if self.prepare else None
        if self.sync:
            self._conn = psycopg.connect(self.url, autocommit=True, prepare_threshold=threshold)
        else:
            self._conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, prepare_threshold=threshold
            )
        if self._owned:
            for statement in self.st.ddl:
                await self._run(statement, ())
            from checkpoint_postgres._migrations import HAS_LZ4

            if await self._run(HAS_LZ4, ()):
                # The compression our tables use (checkpoint_postgres migration 3), not the
                # server's default pglz: a floor stores its bytes the cheapest way it can.
                for statement in self.st.lz4:
                    await self._run(statement, ())
        return self

    def _exec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        cursor = self._conn.execute(sql, params)
        return cursor.fetchall() if cursor.description is not None else []  # type: ignore[no-any-return]

    async def _aexec(self, sql: Any, params: Sequence[Any]) -> list[Any]:
        cursor = await self._conn.execute(sql, params)
        return await cursor.fetchall() if cursor.description is not None else []

    async def writers(self, n: int) -> list[Handle]:
        # One connection per writer: the raw driver's best case, no pool in the way.
        while len(self._children) < n:
            child = PostgresFloor(
                self.url, sync=self.sync, prepare=self.prepare, schema=self.schema
            )
            self._children.append(await child.open())
        return list(self._children[:n])

    async def storage_bytes(self) -> int | None:
        rows = await self._run(self._size, (self.schema,))
        return int(rows[0][0])

    async def aclose(self) -> None:
        for child in self._children:
            await child.aclose()
        if self._conn is None:
            return
        if self._owned:
            from psycopg import sql

            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(self.schema))
            await self._run(drop, ())
        if self.sync:
            self._conn.close()
        else:
            await self._conn.close()
        self._conn = None

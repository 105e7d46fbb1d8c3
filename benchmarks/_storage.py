"""Bytes stored: one hook per database family, for our savers and the official ones alike.

- SQLite: pages in use, `(page_count - freelist_count) * page_size`, read by a separate
  connection (it sees the WAL, so it equals the file size after a checkpoint); for an
  in-memory database, read on the saver's own connection.
- PostgreSQL: `pg_total_relation_size` (heap + TOAST + indexes) summed over the tables of the
  saver's schema (`backend.schema` for ours, the connection's `current_schema()` for the
  official saver), on a separate connection with the saver's conninfo.
- Redis: `MEMORY USAGE key SAMPLES 0` summed over every key under the saver's key prefix
  (`prefix:*`, found with `SCAN`; on a cluster, on every master).
- Memory: the serialized bytes the saver's dictionaries hold (Python object overhead excluded).

Our savers expose no size hook yet, so the connection or store is found on the saver's
attributes. A saver (or its backend) that defines `storage_bytes()` / `astorage_bytes()`
is asked directly. Anything else is reported as n/a (None), never estimated.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections.abc import Iterator
from typing import Any

__all__ = ["saver_storage_bytes", "sqlite_connection_bytes", "sqlite_file_bytes"]


def sqlite_file_bytes(path: str) -> int | None:
    """Bytes of the pages in use in the SQLite database at `path`, or None for `:memory:`."""
    if not path or path == ":memory:":
        return None
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        free = conn.execute("PRAGMA freelist_count").fetchone()[0]
        size = conn.execute("PRAGMA page_size").fetchone()[0]
    finally:
        conn.close()
    return int((pages - free) * size)


def _attrs(obj: Any) -> Iterator[Any]:
    names = list(getattr(obj, "__dict__", {}) or {})
    for cls in type(obj).__mro__:
        names.extend(getattr(cls, "__slots__", ()) or ())
    for name in names:
        if isinstance(name, str) and not name.startswith("__"):
            try:
                yield getattr(obj, name)
            except AttributeError:
                continue


def _find(obj: Any, wanted: tuple[type, ...], depth: int = 3) -> Any:
    """The first attribute (breadth-first, `depth` levels) that is one of `wanted`."""
    level = [obj]
    seen = {id(obj)}
    for _ in range(depth):
        following = []
        for item in level:
            for value in _attrs(item):
                if isinstance(value, wanted):
                    return value
                if id(value) in seen or isinstance(value, (str, bytes, int, float, dict, list)):
                    continue
                seen.add(id(value))
                following.append(value)
        level = following
    return None


async def _hook(saver: Any) -> tuple[bool, int | None]:
    for owner in (saver, getattr(saver, "backend", None)):
        for name in ("astorage_bytes", "storage_bytes"):
            method = getattr(owner, name, None)
            if callable(method):
                result = method()
                if inspect.isawaitable(result):
                    result = await result
                return True, None if result is None else int(result)
    return False, None


async def saver_storage_bytes(saver: Any) -> int | None:
    """Bytes the saver's store holds; None when this family has no way to measure it."""
    found, value = await _hook(saver)
    if found:
        return value
    for measure in (_memory, _sqlite, _postgres, _redis):
        result = await measure(saver)
        if result is not False:
            return result if result is None else int(result)
    return None


async def _memory(saver: Any) -> int | bool | None:
    from langgraph.checkpoint.memory import InMemorySaver

    from checkpoint_base import MemorySaver

    if isinstance(saver, MemorySaver):
        store = saver.store
        with store.lock:
            total = sum(
                len(r.checkpoint) + len(r.metadata)
                for records in store.checkpoints.values()
                for r in records.values()
            )
            total += sum(len(b.data) for b in store.blobs.values())
            total += sum(len(w.data) for ws in store.writes.values() for w in ws.values())
        return total
    if isinstance(saver, InMemorySaver):
        return sum(_bytes_in(v) for d in (saver.storage, saver.writes, saver.blobs) for v in [d])
    return False


def _bytes_in(value: Any) -> int:
    if isinstance(value, (bytes, bytearray)):
        return len(value)
    if isinstance(value, dict):
        return sum(_bytes_in(v) for v in value.values())
    if isinstance(value, (tuple, list)):
        return sum(_bytes_in(v) for v in value)
    return 0


async def _sqlite(saver: Any) -> int | bool | None:
    try:
        import aiosqlite
    except ImportError:  # pragma: no cover - the sqlite extra is installed with dev
        aiosqlite = None
    wanted: tuple[type, ...] = (sqlite3.Connection,)
    if aiosqlite is not None:
        wanted += (aiosqlite.Connection,)
    conn = _find(saver, wanted)
    if conn is None:
        # Our SQLite savers keep a pool of connections opened on demand, and their path.
        if getattr(getattr(saver, "backend", None), "name", None) != "sqlite":
            return False
        for executor in (getattr(saver, "_executor", None), getattr(saver, "_aexecutor", None)):
            path = getattr(executor, "_path", None)
            if isinstance(path, str):
                return sqlite_file_bytes(path)
        return None
    rows = await sqlite_query(conn, "PRAGMA database_list")
    path = next((r[2] for r in rows if r[1] == "main"), "")
    if path:
        return sqlite_file_bytes(path)
    return await sqlite_connection_bytes(conn)  # an in-memory database: ask its connection


async def sqlite_query(conn: Any, sql: str) -> list[Any]:
    """Rows of a read-only statement on a sqlite3 or aiosqlite connection."""
    if isinstance(conn, sqlite3.Connection):
        return conn.execute(sql).fetchall()
    async with conn.execute(sql) as cursor:
        return list(await cursor.fetchall())


async def sqlite_connection_bytes(conn: Any) -> int:
    """Bytes of the pages in use in the main database of an open connection."""
    pages = (await sqlite_query(conn, "PRAGMA page_count"))[0][0]
    free = (await sqlite_query(conn, "PRAGMA freelist_count"))[0][0]
    size = (await sqlite_query(conn, "PRAGMA page_size"))[0][0]
    return int((pages - free) * size)


_PG_SIZE = (
    "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relkind = 'r'"
)


async def _postgres(saver: Any) -> int | bool | None:
    try:
        import psycopg
        import psycopg_pool
    except ImportError:  # pragma: no cover
        return False
    wanted = (
        psycopg.Connection,
        psycopg.AsyncConnection,
        psycopg_pool.ConnectionPool,
        psycopg_pool.AsyncConnectionPool,
    )
    source = _find(saver, wanted)
    if source is None:
        return False
    if isinstance(source, (psycopg_pool.ConnectionPool, psycopg_pool.AsyncConnectionPool)):
        conninfo, kwargs = source.conninfo, dict(source.kwargs or {})
        password = kwargs.get("password")
        options = kwargs.get("options")
    else:
        conninfo, password = source.info.dsn, source.info.password
        options = source.info.get_parameters().get("options")
    extra: dict[str, Any] = {"autocommit": True}
    if password:
        extra["password"] = password
    if options:
        extra["options"] = options
    schema = getattr(getattr(saver, "backend", None), "schema", None)
    with psycopg.connect(conninfo, **extra) as conn:
        if not isinstance(schema, str):
            row = conn.execute("SELECT current_schema()").fetchone()
            schema = row[0] if row else "public"
        row = conn.execute(_PG_SIZE, (schema,)).fetchone()
    return int(row[0]) if row else None


async def _redis(saver: Any) -> int | bool | None:
    try:
        import redis
        import redis.asyncio
        import redis.asyncio.cluster
        import redis.cluster
    except ImportError:  # pragma: no cover
        return False
    sync_types = (redis.Redis, redis.cluster.RedisCluster)
    async_types = (redis.asyncio.Redis, redis.asyncio.cluster.RedisCluster)
    client = _find(saver, sync_types + async_types)
    if client is None:
        return False
    backend = getattr(saver, "backend", None)
    prefix = None
    for owner in (saver, backend, getattr(backend, "layout", None)):
        for name in ("key_prefix", "prefix"):
            value = getattr(owner, name, None)
            if isinstance(value, (str, bytes)) and value:
                prefix = value.decode() if isinstance(value, bytes) else value
                break
        if prefix:
            break
    if not prefix:
        return None
    # The prefix is chosen by the benchmark's target (an isolated key space), never user
    # input; glob characters in it are escaped all the same.
    pattern = "".join("\\" + c if c in "*?[]\\" else c for c in prefix) + ":*"
    total = 0
    if isinstance(client, sync_types):
        for key in client.scan_iter(match=pattern, count=1000):
            total += int(client.memory_usage(key, samples=0) or 0)
    else:
        async for key in client.scan_iter(match=pattern, count=1000):
            total += int(await client.memory_usage(key, samples=0) or 0)
    return total

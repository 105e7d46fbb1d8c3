"""Test and benchmark targets of the PostgreSQL backend (see `checkpoint_base.testing.targets`).

Every opened saver gets a fresh schema, set up on open and dropped on close, so tests share
one server without seeing each other's rows. Servers come from
`checkpoint_base.testing.servers` (an env URL, a container or local binaries).

- `postgres`: one `Connection` / `AsyncConnection` handed to the saver (prepared statements).
- `postgres-pool`: a `ConnectionPool` / `AsyncConnectionPool` handed to the saver (prepared
  statements).
- `postgres-pgbouncer`: the saver's own pool, through PgBouncer in transaction pooling mode,
  with the saver's defaults (no prepared statements).
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_base import CheckpointSaver
from checkpoint_base.testing import servers
from checkpoint_base.testing.targets import Target

from ._backend import PostgresBackend
from ._saver import AsyncPostgresSaver, PostgresSaver

__all__ = ["fresh_schema", "targets"]

POOL_SIZE = 16
"""Connections a pool target may open: enough for the 16-writer benchmark."""

PREPARE_THRESHOLD = 5
"""Direct targets let psycopg prepare a statement after 5 runs (its default): a direct server
keeps them, and the official savers are measured with theirs on (`prepare_threshold=0`, as
their documentation says). Through PgBouncer nothing is prepared (the saver's default)."""

_CONN_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": PREPARE_THRESHOLD}


def fresh_schema(prefix: str = "cp") -> str:
    """A schema name no other opened saver uses."""
    return f"{prefix}_{uuid.uuid4().hex[:16]}"


def drop_schema(url: str, schema: str) -> None:
    """Drop a schema and everything in it (directly, not through a pooler)."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))


def _create_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))


def _search_path(schema: str) -> str:
    # The official savers name tables without a schema: point their search_path at it.
    return "-c search_path=" + schema


# -- our savers -------------------------------------------------------------------------------


@contextmanager
def _isolated_sync(make: Any) -> Iterator[CheckpointSaver]:
    url = servers.postgres_url()
    schema = fresh_schema()
    try:
        with make(schema) as saver:
            saver.setup()
            yield saver
    finally:
        drop_schema(url, schema)


@asynccontextmanager
async def _isolated_async(make: Any) -> AsyncIterator[CheckpointSaver]:
    url = servers.postgres_url()
    schema = fresh_schema()
    try:
        async with make(schema) as saver:
            await saver.asetup()
            yield saver
    finally:
        drop_schema(url, schema)


@contextmanager
def _conn_saver(schema: str) -> Iterator[CheckpointSaver]:
    conn = psycopg.connect(servers.postgres_url(), **_CONN_KWARGS)
    with conn, PostgresSaver(conn, schema=schema, prepare_threshold=PREPARE_THRESHOLD) as saver:
        yield saver


@asynccontextmanager
async def _aconn_saver(schema: str) -> AsyncIterator[CheckpointSaver]:
    conn = await psycopg.AsyncConnection.connect(servers.postgres_url(), **_CONN_KWARGS)
    async with (
        conn,
        AsyncPostgresSaver(conn, schema=schema, prepare_threshold=PREPARE_THRESHOLD) as saver,
    ):
        yield saver


@contextmanager
def _pool_saver(schema: str) -> Iterator[CheckpointSaver]:
    pool = ConnectionPool(
        servers.postgres_url(), min_size=1, max_size=POOL_SIZE, kwargs=_CONN_KWARGS, open=True
    )
    with pool, PostgresSaver(pool, schema=schema, prepare_threshold=PREPARE_THRESHOLD) as saver:
        yield saver


@asynccontextmanager
async def _apool_saver(schema: str) -> AsyncIterator[CheckpointSaver]:
    pool = AsyncConnectionPool(
        servers.postgres_url(), min_size=1, max_size=POOL_SIZE, kwargs=_CONN_KWARGS, open=False
    )
    async with (
        pool,
        AsyncPostgresSaver(pool, schema=schema, prepare_threshold=PREPARE_THRESHOLD) as saver,
    ):
        yield saver


def _bouncer_saver(schema: str) -> Any:
    return PostgresSaver.from_conn_string(
        servers.pgbouncer_url(), schema=schema, pool_options={"max_size": POOL_SIZE}
    )


def _abouncer_saver(schema: str) -> Any:
    return AsyncPostgresSaver.from_conn_string(
        servers.pgbouncer_url(), schema=schema, pool_options={"max_size": POOL_SIZE}
    )


# -- the official savers, for the benchmarks --------------------------------------------------


@dataclass(frozen=True)
class _OfficialPlace:
    """Where an official saver keeps its tables, and how to clear them away."""

    url: str
    kwargs: dict[str, Any]
    drop: Callable[[], None]


def _official_place(bouncer: bool) -> _OfficialPlace:
    """An isolated place for an official saver's tables.

    The official savers name their tables without a schema. Directly, a fresh schema goes
    first on their `search_path`. PgBouncer refuses that startup parameter, so through it
    each opened saver gets a fresh database instead (PgBouncer proxies any database name).
    """
    direct = servers.postgres_url()
    # The settings the official savers document: autocommit, dict rows, prepared statements
    # (except through PgBouncer in transaction mode, which cannot keep them).
    kwargs: dict[str, Any] = {
        "autocommit": True,
        "prepare_threshold": None if bouncer else 0,
        "row_factory": psycopg.rows.dict_row,
    }
    name = fresh_schema("official")
    if bouncer:
        database = sql.Identifier(name)
        with psycopg.connect(direct, autocommit=True) as conn:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(database))

        def drop_database() -> None:
            with psycopg.connect(direct, autocommit=True) as conn:
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(database))

        url = urlunsplit(urlsplit(servers.pgbouncer_url())._replace(path="/" + name))
        return _OfficialPlace(url, kwargs, drop_database)
    _create_schema(direct, name)
    kwargs["options"] = _search_path(name)
    return _OfficialPlace(direct, kwargs, lambda: drop_schema(direct, name))


@contextmanager
def _official_sync(pooled: bool, bouncer: bool = False) -> Iterator[Any]:
    from langgraph.checkpoint.postgres import PostgresSaver as OfficialSaver

    place = _official_place(bouncer)
    try:
        if pooled:
            with ConnectionPool(
                place.url, min_size=1, max_size=POOL_SIZE, kwargs=place.kwargs, open=True
            ) as pool:
                saver = OfficialSaver(pool)  # type: ignore[arg-type]
                saver.setup()
                yield saver
        else:
            with psycopg.connect(place.url, **place.kwargs) as conn:
                saver = OfficialSaver(conn)
                saver.setup()
                yield saver
    finally:
        place.drop()


@asynccontextmanager
async def _official_async(pooled: bool, bouncer: bool = False) -> AsyncIterator[Any]:
    from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver as OfficialAsyncSaver

    place = _official_place(bouncer)
    try:
        if pooled:
            async with AsyncConnectionPool(
                place.url, min_size=1, max_size=POOL_SIZE, kwargs=place.kwargs, open=False
            ) as pool:
                saver = OfficialAsyncSaver(pool)  # type: ignore[arg-type]
                await saver.setup()
                yield saver
        else:
            async with await psycopg.AsyncConnection.connect(place.url, **place.kwargs) as conn:
                saver = OfficialAsyncSaver(conn)
                await saver.setup()
                yield saver
    finally:
        place.drop()


def targets() -> list[Target]:
    """The `postgres`, `postgres-pool` and `postgres-pgbouncer` targets."""
    caps = PostgresBackend.capabilities
    return [
        Target(
            name="postgres",
            backend="postgres",
            capabilities=caps,
            open_sync=lambda: _isolated_sync(_conn_saver),
            open_async=lambda: _isolated_async(_aconn_saver),
            official_sync=lambda: _official_sync(pooled=False),
            official_async=lambda: _official_async(pooled=False),
            url=servers.postgres_url,
        ),
        Target(
            name="postgres-pool",
            backend="postgres",
            capabilities=caps,
            open_sync=lambda: _isolated_sync(_pool_saver),
            open_async=lambda: _isolated_async(_apool_saver),
            official_sync=lambda: _official_sync(pooled=True),
            official_async=lambda: _official_async(pooled=True),
            url=servers.postgres_url,
        ),
        Target(
            name="postgres-pgbouncer",
            backend="postgres",
            capabilities=caps,
            open_sync=lambda: _isolated_sync(_bouncer_saver),
            open_async=lambda: _isolated_async(_abouncer_saver),
            official_sync=lambda: _official_sync(pooled=True, bouncer=True),
            official_async=lambda: _official_async(pooled=True, bouncer=True),
            url=servers.pgbouncer_url,
        ),
    ]

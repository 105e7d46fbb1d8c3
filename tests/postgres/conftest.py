"""Fixtures of the PostgreSQL-only tests: real servers, a fresh schema per test, saver kinds.

A "kind" is how a saver reaches the server: `conn` (one connection handed to the saver),
`pool` (a pool handed to the saver), `bouncer` (the saver's own pool, through PgBouncer in
transaction pooling mode). Flavors are `sync` and `async`.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_base import CheckpointSaver
from checkpoint_base.testing import servers
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._testing import drop_schema, fresh_schema, targets
from tests.conformance.harness import Harness

KINDS = ("conn", "pool", "bouncer")
FLAVORS = ("sync", "async")
CONN_KWARGS: dict[str, Any] = {"autocommit": True, "prepare_threshold": None}


def own_postgres() -> bool:
    """Whether this run started the PostgreSQL server (so it may restart it)."""
    return not os.environ.get(servers.ENV_VARS["postgres"])


@pytest.fixture
def pg_url() -> str:
    return servers.postgres_url()


@pytest.fixture
def schema(pg_url: str) -> Iterator[str]:
    """A schema name no one uses yet; dropped after the test."""
    name = fresh_schema("pgtest")
    yield name
    drop_schema(pg_url, name)


@pytest.fixture
def admin(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    """A direct autocommit connection for looking at (or breaking) the server."""
    with psycopg.connect(pg_url, autocommit=True) as conn:
        yield conn


def terminate_others(admin: psycopg.Connection[Any]) -> int:
    """Terminate every client backend but `admin`'s, as a server or proxy dropping them would."""
    rows = admin.execute(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
        "WHERE backend_type = 'client backend' AND pid <> pg_backend_pid() "
        "AND datname = current_database()"
    ).fetchall()
    return len(rows)


def table_names(admin: psycopg.Connection[Any], schema: str) -> set[str]:
    rows = admin.execute(
        "SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (schema,)
    ).fetchall()
    return {r[0] for r in rows}


def schema_exists(admin: psycopg.Connection[Any], schema: str) -> bool:
    row = admin.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone()
    return row is not None


class Opened:
    """A saver of one kind and flavor, with whatever it was built on, closed together."""

    def __init__(self, kind: str, flavor: str, schema: str) -> None:
        self.kind = kind
        self.flavor = flavor
        self.schema = schema
        self.stack = AsyncExitStack()
        self.saver: CheckpointSaver

    async def open(self) -> CheckpointSaver:
        url = servers.postgres_url()
        if self.flavor == "sync":
            if self.kind == "conn":
                conn = self.stack.enter_context(psycopg.connect(url, **CONN_KWARGS))
                saver: CheckpointSaver = PostgresSaver(conn, schema=self.schema)
            elif self.kind == "pool":
                pool = ConnectionPool(url, min_size=1, max_size=8, kwargs=CONN_KWARGS, open=True)
                self.stack.enter_context(pool)
                saver = PostgresSaver(pool, schema=self.schema)
            else:
                saver = PostgresSaver(servers.pgbouncer_url(), schema=self.schema)
            self.stack.enter_context(saver)
            saver.setup()
        else:
            if self.kind == "conn":
                aconn = await psycopg.AsyncConnection.connect(url, **CONN_KWARGS)
                await self.stack.enter_async_context(aconn)
                saver = AsyncPostgresSaver(aconn, schema=self.schema)
            elif self.kind == "pool":
                apool = AsyncConnectionPool(
                    url, min_size=1, max_size=8, kwargs=CONN_KWARGS, open=False
                )
                await self.stack.enter_async_context(apool)
                saver = AsyncPostgresSaver(apool, schema=self.schema)
            else:
                saver = AsyncPostgresSaver(servers.pgbouncer_url(), schema=self.schema)
            await self.stack.enter_async_context(saver)
            await saver.asetup()
        self.saver = saver
        return saver

    @property
    def h(self) -> Harness:
        """The conformance harness over this saver: `await h.put(...)` in either flavor."""
        name = {"conn": "postgres", "pool": "postgres-pool", "bouncer": "postgres-pgbouncer"}
        target = next(t for t in targets() if t.name == name[self.kind])
        return Harness(target, self.flavor, self.saver)

    async def close(self) -> None:
        await self.stack.aclose()


@pytest.fixture(
    params=[pytest.param((k, f), id=f"{k}-{f}") for k in KINDS for f in FLAVORS],
)
async def opened(request: pytest.FixtureRequest, schema: str) -> AsyncIterator[Opened]:
    """A saver of every kind and flavor on a fresh schema."""
    kind, flavor = request.param
    handle = Opened(kind, flavor, schema)
    await handle.open()
    try:
        yield handle
    finally:
        await handle.close()


def unique(prefix: str = "t") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def quoted(name: str) -> sql.Identifier:
    return sql.Identifier(name)

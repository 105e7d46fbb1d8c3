"""`PostgresSaver` and `AsyncPostgresSaver`: constructors over the shared saver.

Every checkpointer method lives in `checkpoint_base.CheckpointSaver`; these classes only
turn a conninfo, a connection or a pool into an executor.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import psycopg
from langgraph.checkpoint.serde.base import SerializerProtocol
from psycopg import pq
from psycopg.conninfo import conninfo_to_dict
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_base import CheckpointSaver, ConfigError

from ._aexecutor import AsyncPostgresExecutor
from ._backend import DEFAULT_SCHEMA, PostgresBackend
from ._executor import PostgresExecutor
from ._state import AUTO, PrepareThreshold
from ._urls import parse_url

__all__ = ["CONNECTION_DEFAULTS", "POOL_DEFAULTS", "AsyncPostgresSaver", "PostgresSaver"]

POOL_DEFAULTS: Mapping[str, Any] = {
    "min_size": 1,  # one warm connection; more open on demand
    "max_size": 10,  # well under PostgreSQL's default max_connections (100)
    "timeout": 30.0,  # seconds a caller waits for a connection before StorageUnavailableError
    "max_idle": 300.0,  # close surplus connections idle this long
    "max_lifetime": 3600.0,  # recycle connections hourly (lets proxies rebalance)
    "reconnect_timeout": 300.0,  # keep trying to reach a restarting server this long
}
"""Pool settings used when a saver is given a conninfo; override with `pool_options`."""

CONNECTION_DEFAULTS: Mapping[str, Any] = {
    "connect_timeout": 10,  # seconds for one attempt to open a connection
    # A server that vanishes without closing its connections (a host lost, a network cut, a
    # failover that moves the address) leaves a waiting call blocked for the kernel's
    # retransmission limit, about 15 minutes. Keepalives find a silent connection in about a
    # minute (30 s idle, then 3 probes 10 s apart), and a request the server has not
    # acknowledged in a minute fails; the pool then opens a fresh connection.
    "keepalives": 1,
    "keepalives_idle": 30,
    "keepalives_interval": 10,
    "keepalives_count": 3,
    "tcp_user_timeout": 60_000,  # milliseconds (libpq 12+)
}
"""libpq options of the connections a saver opens from a conninfo. Each applies only where the
conninfo, `pool_options["kwargs"]` and the environment (`PGCONNECT_TIMEOUT`) leave it unset."""

_ENVIRONMENT = {"connect_timeout": "PGCONNECT_TIMEOUT"}


def _connection_defaults(conninfo: str, kwargs: Mapping[str, Any]) -> dict[str, Any]:
    """The `CONNECTION_DEFAULTS` that neither the conninfo, `kwargs` nor the environment set."""
    try:
        given = conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"malformed PostgreSQL conninfo or URL: {exc}") from exc
    defaults = {}
    for name, value in CONNECTION_DEFAULTS.items():
        if name in given or name in kwargs or os.environ.get(_ENVIRONMENT.get(name, "")):
            continue
        if name == "tcp_user_timeout" and pq.version() < 120000:
            continue  # an option libpq before 12 refuses
        defaults[name] = value
    return defaults


def _pool_settings(
    conninfo: str, prepare_threshold: PrepareThreshold, pool_options: Mapping[str, Any] | None
) -> dict[str, Any]:
    settings = {**POOL_DEFAULTS, **(pool_options or {})}
    kwargs = dict(settings.pop("kwargs", None) or {})
    kwargs.update(_connection_defaults(conninfo, kwargs))
    kwargs.setdefault("autocommit", True)  # each statement is a transaction: one round trip
    if prepare_threshold != AUTO:  # "auto": psycopg's threshold, once the server answers
        kwargs["prepare_threshold"] = prepare_threshold
    settings["kwargs"] = kwargs
    settings.setdefault("name", "checkpointers")
    return settings


def _from_url(conninfo: str, prepare_threshold: PrepareThreshold) -> tuple[str, PrepareThreshold]:
    """`conninfo` as libpq takes it (`parse_url`: `postgresql+asyncpg://...?ssl=require` too),
    and `prepare_threshold`, or None (never prepare) for a URL that says it reaches the server
    through a pooler (`pgbouncer=true`, as Prisma and the pooled URLs of Supabase and Neon
    write it, or asyncpg's `prepared_statement_cache_size=0`): "auto" would tell PgBouncer
    itself, but not every pooler shows itself.

    Raises:
        ConfigError: As `parse_url`; or the URL says so and `prepare_threshold` asks to
            prepare.
    """
    url, pooled = parse_url(conninfo)
    if not pooled:
        return url, prepare_threshold
    if prepare_threshold is not None and prepare_threshold != AUTO:
        raise ConfigError(
            "the URL says the server is reached through a pooler that cannot keep prepared "
            "statements (pgbouncer=true, or a statement cache size of 0), and "
            f"prepare_threshold={prepare_threshold!r} asks to prepare them: give one of the two"
        )
    return url, None


def _check_prepare(prepare_threshold: PrepareThreshold) -> None:
    if (
        prepare_threshold is not None
        and prepare_threshold != AUTO
        and (
            isinstance(prepare_threshold, bool)
            or not isinstance(prepare_threshold, int)
            or prepare_threshold < 0
        )
    ):
        raise ConfigError(
            f'prepare_threshold must be "auto" (prepare on a direct server, never behind a '
            f"pooler), None (never prepare) or an int >= 0, got {prepare_threshold!r}"
        )


def _backend(schema: str, prepare_threshold: PrepareThreshold) -> PostgresBackend:
    """The backend, with statements for unprepared use until "auto" finds a direct server."""
    return PostgresBackend(schema, plan_cached_gets=not isinstance(prepare_threshold, int))


def _statements_for(backend: PostgresBackend) -> Callable[[bool], None]:
    """What "auto" calls once settled: prepared statements want the backend's plain ones."""

    def settle(prepared: bool) -> None:
        backend.plan_cached_gets = not prepared

    return settle


class PostgresSaver(CheckpointSaver):
    """A LangGraph checkpointer on PostgreSQL, over psycopg 3 (blocking).

    Args:
        conn: A conninfo or `postgresql://` URL (the saver opens and owns a
            `ConnectionPool`), a `psycopg.Connection` (shared under a lock; autocommit
            recommended), or a `psycopg_pool.ConnectionPool` (no lock: throughput grows
            with concurrent callers).
        schema: Schema of the tables, created by `setup()` when missing. Default
            `"checkpointers"`, apart from the official saver's tables.
        prepare_threshold: "auto" (default) uses server-side prepared statements when the
            server itself answers and never behind a pooler such as PgBouncer, whose
            transaction mode forbids them: the first connection tells which (a pooler gives
            its clients a process id that is not its server session's). Prepared, a put or
            get on a direct server took 0.1-0.2 ms less. None never prepares: gets, list
            pages of one thread and puts of up to four blobs then call functions of the
            schema whose plans the server keeps per connection. An int always lets psycopg
            prepare a statement after that many runs on connections the saver opens.
        serde: The serializer; the package's safe msgpack serializer by default.
        pool_options: `ConnectionPool` arguments when `conn` is a conninfo, over
            `POOL_DEFAULTS`; its connections also get the libpq options of
            `CONNECTION_DEFAULTS` (a connect timeout, TCP keepalives, a TCP user timeout)
            that the conninfo and `pool_options["kwargs"]` leave unset.
        reconnect_timeout: With a single connection: seconds to keep trying to replace it
            when the server dropped it and cannot be reached yet (a restart). A pool waits
            for a connection up to its own `timeout`.

    Raises:
        ConfigError: An argument is malformed.
    """

    def __init__(
        self,
        conn: str | psycopg.Connection[Any] | ConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        prepare_threshold: PrepareThreshold = AUTO,
        serde: SerializerProtocol | None = None,
        pool_options: Mapping[str, Any] | None = None,
        reconnect_timeout: float = 30.0,
    ) -> None:
        if isinstance(conn, str):
            conn, prepare_threshold = _from_url(conn, prepare_threshold)
        _check_prepare(prepare_threshold)
        backend = _backend(schema, prepare_threshold)
        owned = isinstance(conn, str)
        reopen: Callable[[], ConnectionPool[Any]] | None = None
        if isinstance(conn, str):
            settings = _pool_settings(conn, prepare_threshold, pool_options)

            def reopen() -> ConnectionPool[Any]:  # another like it, for a forked child
                return ConnectionPool(conn, open=True, **settings)

            source: psycopg.Connection[Any] | ConnectionPool[Any] = reopen()
        elif isinstance(conn, (psycopg.Connection, ConnectionPool)):
            source = conn
        else:
            raise ConfigError(
                "PostgresSaver needs a conninfo/URL, a psycopg.Connection or a "
                f"psycopg_pool.ConnectionPool, got {type(conn).__name__}"
            )
        executor = PostgresExecutor(
            source,
            owned=owned,
            prepare_threshold=prepare_threshold,
            schema=schema,
            reconnect_timeout=reconnect_timeout,
            on_prepare=_statements_for(backend),
            reopen=reopen,
        )
        super().__init__(backend, executor=executor, serde=serde)
        self.conn = source

    @classmethod
    @contextmanager
    def from_conn_string(
        cls,
        conn_string: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        prepare_threshold: PrepareThreshold = AUTO,
        serde: SerializerProtocol | None = None,
        pool_options: Mapping[str, Any] | None = None,
    ) -> Iterator[PostgresSaver]:
        """Open a saver with its own pool; close the pool on exit.

        Args:
            conn_string: A conninfo or `postgresql://` URL.
            schema: As for the constructor.
            prepare_threshold: As for the constructor.
            serde: As for the constructor.
            pool_options: As for the constructor.

        Returns:
            A context manager yielding the saver. Call `setup()` once per database.
        """
        saver = cls(
            conn_string,
            schema=schema,
            prepare_threshold=prepare_threshold,
            serde=serde,
            pool_options=pool_options,
        )
        try:
            yield saver
        finally:
            saver.close()


class AsyncPostgresSaver(CheckpointSaver):
    """A LangGraph checkpointer on PostgreSQL, over psycopg 3's asyncio API.

    Args:
        conn: A conninfo or `postgresql://` URL (the saver opens and owns an
            `AsyncConnectionPool`, opened on first use), a `psycopg.AsyncConnection`
            (shared under an asyncio lock), or a `psycopg_pool.AsyncConnectionPool`.
        schema: As for `PostgresSaver`.
        prepare_threshold: As for `PostgresSaver`.
        serde: As for `PostgresSaver`.
        pool_options: As for `PostgresSaver`.
        reconnect_timeout: As for `PostgresSaver`.

    Raises:
        ConfigError: An argument is malformed.
    """

    def __init__(
        self,
        conn: str | psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any],
        *,
        schema: str = DEFAULT_SCHEMA,
        prepare_threshold: PrepareThreshold = AUTO,
        serde: SerializerProtocol | None = None,
        pool_options: Mapping[str, Any] | None = None,
        reconnect_timeout: float = 30.0,
    ) -> None:
        if isinstance(conn, str):
            conn, prepare_threshold = _from_url(conn, prepare_threshold)
        _check_prepare(prepare_threshold)
        backend = _backend(schema, prepare_threshold)
        owned = isinstance(conn, str)
        reopen: Callable[[], AsyncConnectionPool[Any]] | None = None
        if isinstance(conn, str):
            settings = _pool_settings(conn, prepare_threshold, pool_options)

            def reopen() -> AsyncConnectionPool[Any]:  # another like it, for another loop
                return AsyncConnectionPool(conn, open=False, **settings)

            source: psycopg.AsyncConnection[Any] | AsyncConnectionPool[Any] = reopen()
        elif isinstance(conn, (psycopg.AsyncConnection, AsyncConnectionPool)):
            source = conn
        else:
            raise ConfigError(
                "AsyncPostgresSaver needs a conninfo/URL, a psycopg.AsyncConnection or a "
                f"psycopg_pool.AsyncConnectionPool, got {type(conn).__name__}"
            )
        aexecutor = AsyncPostgresExecutor(
            source,
            owned=owned,
            prepare_threshold=prepare_threshold,
            schema=schema,
            reconnect_timeout=reconnect_timeout,
            on_prepare=_statements_for(backend),
            reopen=reopen,
        )
        super().__init__(backend, aexecutor=aexecutor, serde=serde)
        self.conn = source

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        schema: str = DEFAULT_SCHEMA,
        prepare_threshold: PrepareThreshold = AUTO,
        serde: SerializerProtocol | None = None,
        pool_options: Mapping[str, Any] | None = None,
    ) -> AsyncIterator[AsyncPostgresSaver]:
        """Open an async saver with its own pool; close the pool on exit.

        Args:
            conn_string: A conninfo or `postgresql://` URL.
            schema: As for the constructor.
            prepare_threshold: As for the constructor.
            serde: As for the constructor.
            pool_options: As for the constructor.

        Returns:
            An async context manager yielding the saver. Call `await saver.asetup()` once
            per database.
        """
        saver = cls(
            conn_string,
            schema=schema,
            prepare_threshold=prepare_threshold,
            serde=serde,
            pool_options=pool_options,
        )
        try:
            yield saver
        finally:
            await saver.aclose()

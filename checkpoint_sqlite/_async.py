"""The async flavor: `AsyncSqliteSaver`, on aiosqlite (executors: `_aexecutor.py`, `_apool.py`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

from langgraph.checkpoint.serde.base import SerializerProtocol

from checkpoint_base import CheckpointSaver, ConfigError

from ._aexecutor import AsyncMemoryExecutor, AsyncSharedExecutor, _driver
from ._apool import AsyncPooledExecutor
from ._backend import SqliteBackend
from ._conn import MEMORY, open_options
from ._fs import network_filesystem, warn_network

if TYPE_CHECKING:
    import aiosqlite

__all__ = ["AsyncSqliteSaver"]


class AsyncSqliteSaver(CheckpointSaver):
    """A LangGraph checkpointer on SQLite, async flavor (aiosqlite).

    From a connection you opened (the saver sets up its tables on first use and never
    closes the connection):

        async with aiosqlite.connect("checkpoints.db") as conn:
            graph = builder.compile(checkpointer=AsyncSqliteSaver(conn))

    Or let the saver open its own connections (WAL, `synchronous=NORMAL`, a small pool):

        async with AsyncSqliteSaver.from_conn_string("checkpoints.db") as saver:
            graph = builder.compile(checkpointer=saver)

    Sync methods work from other threads while the saver's event loop runs; from inside
    that loop they raise `SyncCallInEventLoopError` at once (waiting would deadlock).
    Close the saver (or use `async with`) to release its connections. The connections it
    opens itself run on daemon threads, so one left open does not keep the process alive; a
    connection you pass in is yours, thread included.

    On its own connections, `aget_tuple`, `aput` and `aput_writes` run on the event loop's
    thread when nothing would make them wait (no lock in the way; for writes, WAL with
    `synchronous="normal"`): tens of microseconds of SQLite work instead of a hop to a
    connection's thread and back. Anything that would wait goes to a connection's thread,
    so the loop is never held by a lock or a sync to disk; WAL checkpoints run on the
    saver's own thread, as in `SqliteSaver`.

    Durability: as for `SqliteSaver`: every write is one transaction; committed
    checkpoints survive a crash of the process; a kill mid-`put` leaves all or nothing.

    Args:
        conn: An open `aiosqlite.Connection`; calls are serialized on it. If it is inside a
            transaction of yours when the saver writes, the saver's writes join it (as a
            savepoint) and last once you commit.
        serde: The serializer (default: the package's safe msgpack serializer).
    """

    def __init__(self, conn: aiosqlite.Connection, *, serde: SerializerProtocol | None = None):
        if not isinstance(conn, _driver().Connection):
            raise ConfigError(
                f"AsyncSqliteSaver(conn) takes an open aiosqlite.Connection, got {conn!r:.100}; "
                "for a file path use `async with AsyncSqliteSaver.from_conn_string(path) as "
                "saver:` or `await checkpoint_base.aconnect('sqlite:///' + path)`"
            )
        backend = SqliteBackend()
        super().__init__(
            backend,
            aexecutor=AsyncSharedExecutor(conn, prepare=backend.setup),
            serde=serde,
        )

    @classmethod
    async def open(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
        read_only: bool | None = None,
        max_idle: int = 4,
        max_connections: int = 16,
    ) -> AsyncSqliteSaver:
        """Open a saver with connections of its own; `await asetup()`, then `aclose()` it.

        Args:
            conn_string: A path, `:memory:`, or a `sqlite:///path.db` URL; the URL may carry
                `?timeout=...&synchronous=...`.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying
                (default 5).
            synchronous: `"normal"` (default: a commit survives a crash of the process) or
                `"full"` (it also survives a power loss; each commit waits for the disk).
            read_only: Open the file read-only (SQLite's `mode=ro`): reads work on a file
                this process may read but not write, or that it must not change; any write
                fails, and `setup()` only checks that the schema is up to date. The file must
                exist, and unless the directory is writable, its `-shm` file too (it exists
                while a process has the database open).
            max_idle: Idle connections (each one a thread) kept for reuse.
            max_connections: At most this many connections at once.

        Raises:
            ConfigError: `conn_string` is not a SQLite path or URL, or an option is invalid.
            MissingDriverError: aiosqlite is not installed.
        """
        _driver()
        path, options = open_options(
            conn_string,
            timeout=timeout,
            synchronous=synchronous,
            read_only=read_only,
            max_idle=max_idle,
            max_connections=max_connections,
        )
        if path != MEMORY:  # file system calls: on a thread, not the event loop's
            found = await asyncio.to_thread(network_filesystem, path)
            if found is not None:
                warn_network(path, *found, stacklevel=3)  # the caller's line
        executor: AsyncPooledExecutor | AsyncMemoryExecutor = (
            AsyncMemoryExecutor() if path == MEMORY else AsyncPooledExecutor(path, options)
        )
        saver = cls.__new__(cls)
        CheckpointSaver.__init__(saver, SqliteBackend(), aexecutor=executor, serde=serde)
        saver.read_only = options.read_only
        return saver

    @classmethod
    @asynccontextmanager
    async def from_conn_string(
        cls,
        conn_string: str,
        *,
        serde: SerializerProtocol | None = None,
        timeout: float | None = None,
        synchronous: str | None = None,
        read_only: bool | None = None,
    ) -> AsyncIterator[AsyncSqliteSaver]:
        """Open a saver on a database file (or `:memory:`), set up, closed on exit.

        Args:
            conn_string: A path such as `"checkpoints.db"`, `":memory:"`, or a
                `sqlite:///path.db` URL.
            serde: The serializer.
            timeout: Seconds to wait for another connection's lock before retrying.
            synchronous: `"normal"` (default) or `"full"`, as for `open`.
            read_only: Open the file read-only, as for `open`.

        Yields:
            The saver, with its tables created or migrated.
        """
        saver = await cls.open(
            conn_string, serde=serde, timeout=timeout, synchronous=synchronous, read_only=read_only
        )
        try:
            await saver.asetup()
            yield saver
        finally:
            await saver.aclose()

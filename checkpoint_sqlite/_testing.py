"""SQLite targets for the conformance suite and the benchmarks (see `checkpoint_base.testing`).

- `sqlite`: a fresh database file in a temporary directory, per opened saver.
- `sqlite-full`: the same with `synchronous="full"` (a commit waits for the disk, as with
  the official saver, which keeps SQLite's default); the benchmarks compare its `put` with
  a floor that commits the same way.
- `sqlite-memory`: `:memory:`, one connection shared (and locked) per saver.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from checkpoint_base import Capabilities, CheckpointSaver
from checkpoint_base.testing.targets import Target

from ._async import AsyncSqliteSaver
from ._backend import SqliteBackend
from ._sync import SqliteSaver

__all__ = ["targets"]


_URL_FOLDERS: list[tuple[int, str]] = []
"""(process id, folder) of each folder a target's `url()` made: removed when that process
exits (`_remove_url_folders`); a URL outlives the call that made it, so nothing else can."""


def _url_folder() -> str:
    folder = tempfile.mkdtemp(prefix="checkpointers-sqlite-")
    if not _URL_FOLDERS:
        atexit.register(_remove_url_folders)
    _URL_FOLDERS.append((os.getpid(), folder))
    return folder


def _remove_url_folders() -> None:
    """Remove the folders this process made (a forked child that exits normally inherits the
    list, and must not remove its parent's)."""
    for pid, folder in _URL_FOLDERS:
        if pid == os.getpid():
            shutil.rmtree(folder, ignore_errors=True)


@contextmanager
def _database_file() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="checkpointers-sqlite-") as folder:
        yield os.path.join(folder, "checkpoints.db")


def _file_target(synchronous: str = "normal") -> Target:
    @contextmanager
    def open_sync() -> Iterator[CheckpointSaver]:
        with (
            _database_file() as path,
            SqliteSaver.from_conn_string(path, synchronous=synchronous) as saver,
        ):
            yield saver

    @asynccontextmanager
    async def open_async() -> AsyncIterator[CheckpointSaver]:
        with _database_file() as path:
            async with AsyncSqliteSaver.from_conn_string(path, synchronous=synchronous) as saver:
                yield saver

    @contextmanager
    def official_sync() -> Iterator[Any]:
        from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSaver

        with _database_file() as path, OfficialSaver.from_conn_string(path) as saver:
            saver.setup()
            yield saver

    @asynccontextmanager
    async def official_async() -> AsyncIterator[Any]:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver as OfficialAsyncSaver

        with _database_file() as path:
            async with OfficialAsyncSaver.from_conn_string(path) as saver:
                await saver.setup()
                yield saver

    def url() -> str:
        folder = _url_folder()
        query = "" if synchronous == "normal" else "?synchronous=" + synchronous
        return "sqlite:///" + os.path.join(folder, "checkpoints.db") + query

    return Target(
        name="sqlite" if synchronous == "normal" else "sqlite-" + synchronous,
        backend="sqlite",
        capabilities=SqliteBackend.capabilities,
        open_sync=open_sync,
        open_async=open_async,
        official_sync=official_sync,
        official_async=official_async,
        url=url,
    )


def _memory_target() -> Target:
    @contextmanager
    def open_sync() -> Iterator[CheckpointSaver]:
        with SqliteSaver.from_conn_string(":memory:") as saver:
            yield saver

    @asynccontextmanager
    async def open_async() -> AsyncIterator[CheckpointSaver]:
        async with AsyncSqliteSaver.from_conn_string(":memory:") as saver:
            yield saver

    @contextmanager
    def official_sync() -> Iterator[Any]:
        from langgraph.checkpoint.sqlite import SqliteSaver as OfficialSaver

        with OfficialSaver.from_conn_string(":memory:") as saver:
            saver.setup()
            yield saver

    @asynccontextmanager
    async def official_async() -> AsyncIterator[Any]:
        from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver as OfficialAsyncSaver

        async with OfficialAsyncSaver.from_conn_string(":memory:") as saver:
            await saver.setup()
            yield saver

    return Target(
        name="sqlite-memory",
        backend="sqlite",
        # The database lives in one connection of one process.
        capabilities=Capabilities(metadata_filter=True, durable=False, multi_process=False),
        open_sync=open_sync,
        open_async=open_async,
        official_sync=official_sync,
        official_async=official_async,
        url=lambda: "sqlite:///:memory:",
    )


def targets() -> list[Target]:
    """The SQLite targets: a database file (two durability settings), an in-memory database."""
    return [_file_target(), _file_target("full"), _memory_target()]

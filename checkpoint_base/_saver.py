"""The saver: LangGraph's whole checkpointer contract, written once over a `Backend`.

One class serves both flavors. A saver built with a sync executor runs plans on a blocking
driver; one built with an async executor runs them on asyncio. Either way every method of
`BaseCheckpointSaver` works:

- async methods of a sync-only saver run the blocking call directly (as LangGraph's
  `InMemorySaver` does): prefer the async flavor inside an event loop;
- sync methods of an async-only saver hand the call to the saver's event loop from another
  thread, and raise `SyncCallInEventLoopError` at once when called from that loop, where
  waiting would deadlock.

An async saver serves one event loop at a time, and may move to another once the one it ran
on has stopped or closed (successive `asyncio.run` calls, a test framework's loop per test,
a notebook): the executor then leaves what was bound to the old loop (its connections,
locks, pool tasks) and takes new ones on the new loop (`moved_loop`). Used from a second
loop while the first still runs, in another thread, it raises `ConfigError` at once.
"""

from __future__ import annotations

import asyncio
import builtins
import copy
import datetime
import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import (
    AsyncIterator,
    Callable,
    Collection,
    Coroutine,
    Iterator,
    Mapping,
    Sequence,
)
from types import TracebackType
from typing import Any, Concatenate, ParamSpec, TypeVar, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    BaseCheckpointSaver,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    DeltaChannelHistory,
)
from langgraph.checkpoint.serde.base import SerializerProtocol, maybe_add_typed_methods
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ._backend import Backend
from ._convert import (
    checkpoint_config,
    load_seed,
    load_write,
    next_version,
    parse_config,
    put_records,
    to_records,
    to_tuple,
    write_records,
)
from ._errors import (
    ConfigError,
    StorageError,
    SyncCallInEventLoopError,
    ValueTooLargeError,
    check_keep_last,
    too_large,
)
from ._lists import Layout, Lists
from ._metadata import normalize_filter
from ._operations import (
    DeltaWalk,
    ListWalk,
    compact_plan,
    delta_history,
    idle_cutoff,
    prune_plan,
    sweep_idle,
    trim_plan,
)
from ._plan import AsyncExecutor, Plan, SerialWriters, SyncExecutor, arun, run
from ._records import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    Compaction,
    ListQuery,
    ThreadInfo,
    WriteRecord,
)
from ._schema_types import enable_schema_allowlists
from ._sweeper import Sweeper

__all__ = ["COMPACT_WAIT", "CheckpointSaver", "default_serde"]

T = TypeVar("T")
R = TypeVar("R")
P = ParamSpec("P")
Saver = TypeVar("Saver", bound="CheckpointSaver")

_log = logging.getLogger("checkpoint_base")
_TRIM_TRACKED = 10_000  # threads whose puts since their last trim a saver counts
COMPACT_WAIT = 10.0
"""Seconds `compact()` waits by default for transactions older than it to end."""


def default_serde() -> SerializerProtocol:
    """The serializer every saver uses unless given `serde=`: safe by default."""
    from .serde import MsgpackSerializer

    serde: SerializerProtocol = MsgpackSerializer()
    return serde


def _in_turn(method: Callable[Concatenate[Saver, P], R]) -> Callable[Concatenate[Saver, P], R]:
    """`method`, a sync write, run holding the executor's writer lock when it has one
    (`SerialWriters`, see `CheckpointSaver._writer_turn`)."""

    @functools.wraps(method)
    def in_turn(self: Saver, /, *args: P.args, **kwargs: P.kwargs) -> R:
        turn = self._writer_turn()
        try:
            return method(self, *args, **kwargs)
        finally:
            if turn is not None:
                turn.release()

    return in_turn


class CheckpointSaver(BaseCheckpointSaver[str]):
    """A LangGraph checkpointer over any backend of this package.

    Backends subclass it only to add constructors (`SqliteSaver.from_conn_string`, ...);
    every method of the checkpointer contract lives here.

    Args:
        backend: The storage operations.
        executor: Runs plans on a blocking driver (the sync flavor).
        aexecutor: Runs plans on asyncio (the async flavor).
        serde: The serializer of channel values, checkpoints and writes. Defaults to the
            package's msgpack serializer, which rebuilds only allowlisted types.
        keep_last: Retention: see the `keep_last` property. None (default) keeps every
            checkpoint.
    """

    read_only: bool = False
    """True for a saver whose connections may only read (SQLite's `read_only=True`): its
    writes fail, and it cannot sweep idle threads."""

    def __init__(
        self,
        backend: Backend,
        *,
        executor: SyncExecutor | None = None,
        aexecutor: AsyncExecutor | None = None,
        serde: SerializerProtocol | None = None,
        keep_last: int | None = None,
    ) -> None:
        if executor is None and aexecutor is None:
            raise ConfigError("a saver needs an executor, an aexecutor, or both")
        self.keep_last = keep_last
        super().__init__(serde=serde or default_serde())
        # Graphs compiled with this saver register their state types with its serializer.
        enable_schema_allowlists()
        self.backend = backend
        self._executor = executor
        self._aexecutor = aexecutor
        # An executor whose writers take turns (`SerialWriters`): put and put_writes hold its lock.
        self._serial = (
            cast(SerialWriters, executor) if hasattr(type(executor), "writer_lock") else None
        )
        # Shared with the clones of `with_allowlist` (a graph's saver): closing one closes all.
        self._closed = threading.Event()
        # Also shared with those clones: the encrypting serializers `with_allowlist` made.
        self._wrappers: dict[int, tuple[SerializerProtocol, EncryptedSerializer]] = {}
        # And this: the background sweeper of `sweep_idle_threads`, if one runs.
        self._sweepers: builtins.list[Sweeper] = []
        # And this: who holds the storage's leases for this saver (`_holder`).
        self._lease_holder = uuid.uuid4().hex
        # And this: the list layouts of the checkpoints last written or read (`_lists`).
        self._lists: Lists | None = Lists()
        self._loop: asyncio.AbstractEventLoop | None = None
        if aexecutor is not None:
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._loop = None

    # -- storage of long lists ---------------------------------------------------------------

    @property
    def segment_lists(self) -> bool:
        """Store a list of 16 or more items (a message list) in segments shared between
        checkpoints, so a thread's storage grows about as its length, not its square.

        True by default (with the package's serializer; another one, such as an encrypting
        one, stores every value whole). Each put still serializes the whole list, and keeps a
        stored segment only when its items serialize to exactly its bytes. Set it False
        (`saver.segment_lists = False`) to store every value whole, as earlier versions of
        this package did, for a store such a version must still read. Either way the saver
        reads both.
        """
        return self._lists is not None

    @segment_lists.setter
    def segment_lists(self, value: bool) -> None:
        if not value:
            self._lists = None
        elif self._lists is None:
            self._lists = Lists()

    # -- retention -------------------------------------------------------------------------

    @property
    def keep_last(self) -> int | None:
        """Keep only the newest `keep_last` checkpoints of each namespace of a thread.

        None (the default) keeps every checkpoint. With N, the saver trims a thread after
        every `max(1, N // 2)` puts it made there (so a namespace holds at most
        `N + max(1, N // 2) - 1` checkpoints between trims, fewer with several processes
        writing it only if each trims), deleting older checkpoints with their writes and the
        blobs no remaining checkpoint reads, as `prune` does: for a graph with a
        `DeltaChannel` the ancestors a kept checkpoint needs to rebuild stay too, and a
        checkpoint another caller stored meanwhile is never deleted. The trim runs in the
        `put` that triggers it, after the checkpoint is stored; if it fails, the put still
        succeeds, the failure is logged (logger `checkpoint_base`) and a later put tries
        again. Older checkpoints are gone for good: `get_state_history` and time travel see
        only the kept ones. Set it at construction, by `connect(url, keep_last=N)`, or on
        any saver (`saver.keep_last = 20`).
        """
        return self._keep_last

    @keep_last.setter
    def keep_last(self, value: int | None) -> None:
        check_keep_last(value)
        self._keep_last = value
        self._trim_every = 1 if value is None else max(1, value // 2)
        self._puts_since_trim: dict[str, int] = {}
        self._trim_lock = threading.Lock()

    def _trim_due(self, thread_id: str) -> bool:
        """Count a put of the thread; True when its trim is due (the count starts again)."""
        with self._trim_lock:
            counts = self._puts_since_trim
            n = counts.pop(thread_id, 0) + 1
            if n >= self._trim_every:
                return True
            counts[thread_id] = n  # most recent last: the oldest is forgotten first
            if len(counts) > _TRIM_TRACKED:
                del counts[next(iter(counts))]
            return False

    def _trim_failed(self, thread_id: str, exc: Exception) -> None:
        _log.warning(
            "keep_last=%s: trimming thread %r failed; its checkpoint is stored and a later "
            "put will try again: %s",
            self._keep_last,
            thread_id,
            exc,
        )

    def _trim(self, stored: CheckpointRecord) -> None:
        """The retention after a put of `stored` (which the trim need not read back)."""
        keep_last, thread_id = self._keep_last, stored.thread_id
        if keep_last is None or not self._trim_due(thread_id):
            return
        try:
            self._run(trim_plan(self.backend, thread_id, keep_last, (stored,)))
        except StorageError as exc:
            self._trim_failed(thread_id, exc)

    async def _atrim(self, stored: CheckpointRecord) -> None:
        keep_last, thread_id = self._keep_last, stored.thread_id
        if keep_last is None or not self._trim_due(thread_id):
            return
        try:
            await self._arun(trim_plan(self.backend, thread_id, keep_last, (stored,)))
        except StorageError as exc:
            self._trim_failed(thread_id, exc)

    # -- running plans ---------------------------------------------------------------------

    def _check_open(self, plan: Plan[Any]) -> None:
        """Raise `StorageError` if the saver is closed: its executor would otherwise open
        new connections that nothing closes (a redis-py client reconnects by itself), or
        use the ones it was given after the caller said it was done with them."""
        if self._closed.is_set():
            plan.close()
            raise StorageError(
                f"this {type(self).__name__} is closed: open a new saver (or use it inside "
                "its `with` block)"
            )

    def _run(self, plan: Plan[T]) -> T:
        self._check_open(plan)
        if self._executor is not None:
            return self._executor.run(plan)
        assert self._aexecutor is not None
        return self._call_soon(self._aexecutor.run(plan))

    async def _arun(self, plan: Plan[T]) -> T:
        self._check_open(plan)
        if self._aexecutor is None:
            assert self._executor is not None
            return self._executor.run(plan)
        if asyncio.get_running_loop() is not self._loop:
            try:
                await self._bind_loop()
            except BaseException:
                plan.close()
                raise
        return await self._aexecutor.run(plan)

    async def _aquick(self, make: Callable[[], Plan[T]]) -> T:
        """`_arun(make())` for one small operation, through the executor's `run_quick` if any."""
        quick = getattr(self._aexecutor, "run_quick", None)
        if quick is None:
            return await self._arun(make())
        if self._closed.is_set():
            self._check_open(make())
        if asyncio.get_running_loop() is not self._loop:
            await self._bind_loop()
        result: T = await quick(make)
        return result

    async def _bind_loop(self) -> None:
        """Make the running loop the saver's: on a loop other than the last one, the executor
        drops what it bound to that loop (`moved_loop`), which must have stopped."""
        loop = asyncio.get_running_loop()
        previous = self._loop
        if loop is previous:
            return
        if previous is not None:
            if previous.is_running():
                raise ConfigError(
                    f"{type(self).__name__} is in use on another event loop, which is still "
                    "running (in another thread): an async saver serves one event loop at a "
                    "time. Open a saver per event loop, or call the sync methods from other "
                    "threads (they run on the saver's loop)."
                )
            moved = getattr(self._aexecutor, "moved_loop", None)
            leftover = moved() if moved is not None else None
            self._loop = loop
            if leftover is not None:  # what the executor left of the old loop, to finish
                await leftover
        self._loop = loop

    def _call_soon(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine on the saver's loop from a thread that is not running it."""
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        loop = self._loop
        if running is not None and (loop is None or running is loop):
            coro.close()
            raise SyncCallInEventLoopError(
                f"{type(self).__name__} is async: a synchronous call from its own event loop "
                "would block the loop that must run it. Use the async method instead "
                "(`await saver.aget_tuple(...)`, `await graph.ainvoke(...)`), or call the "
                "sync method from another thread."
            )
        if loop is None or loop.is_closed() or not loop.is_running():
            coro.close()
            raise SyncCallInEventLoopError(
                f"{type(self).__name__} is async and its event loop is not running: use the "
                "async methods, or a sync saver (`connect(url)` instead of `aconnect(url)`)."
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()

    # -- set-up and life cycle -------------------------------------------------------------

    def setup(self) -> None:
        """Create or migrate the storage schema (idempotent)."""
        self._run(self.backend.setup())

    async def asetup(self) -> None:
        """Async twin of `setup`."""
        await self._arun(self.backend.setup())

    @property
    def closed(self) -> bool:
        """True once `close` or `aclose` was called (on this saver or a clone of it)."""
        return self._closed.is_set()

    def close(self) -> None:
        """Release the connections the saver opened (not those it was given), after
        stopping its background sweeper if any; any later call raises `StorageError`."""
        self._closed.set()
        while self._sweepers:
            self._sweepers.pop().stop()
        if self._executor is not None:
            self._executor.close()
        elif self._aexecutor is not None:
            self._call_soon(self._aexecutor.aclose())

    async def aclose(self) -> None:
        """Async twin of `close`."""
        self._closed.set()
        while self._sweepers:
            await self._sweepers.pop().astop()
        if self._aexecutor is not None:
            if asyncio.get_running_loop() is not self._loop:
                try:
                    await self._bind_loop()
                except ConfigError:
                    # What it was given (a client or pool of another loop) is not its to
                    # close, and it has nothing of its own on this loop.
                    return
            await self._aexecutor.aclose()
        if self._executor is not None:
            self._executor.close()

    def __enter__(self) -> CheckpointSaver:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    async def __aenter__(self) -> CheckpointSaver:
        if self._aexecutor is not None:
            await self._bind_loop()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    # -- reads -----------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Fetch a checkpoint: the one `checkpoint_id` names, else the thread's latest.

        Args:
            config: `{"configurable": {"thread_id": ..., "checkpoint_ns": ...,
                "checkpoint_id": ...}}`; `checkpoint_ns` defaults to `""`, `checkpoint_id`
                to the latest.

        Returns:
            The checkpoint with its metadata, parent config and pending writes, or None.

        Raises:
            ConfigError: `thread_id` is missing or the config is malformed.
        """
        row = self._run(self.backend.get(*parse_config(config)))
        return self._read_latest(row)

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        """Async twin of `get_tuple`."""
        key = parse_config(config)
        row = await self._aquick(lambda: self.backend.get(*key))
        return self._read_latest(row)

    def _remember(self, record: CheckpointRecord, layouts: dict[str, Layout] | None) -> None:
        """Remember the list layouts of a checkpoint just stored (`Lists.remember`)."""
        if layouts is not None and self._lists is not None:
            self._lists.remember(
                record.thread_id, record.checkpoint_ns, record.checkpoint_id, layouts
            )

    def _read_latest(self, row: CheckpointRow | None) -> CheckpointTuple | None:
        """`to_tuple`, remembering the row's list layouts: LangGraph's next put follows it."""
        if row is None:
            return None
        if self._lists is None:
            return to_tuple(self.serde, row)
        layouts: dict[str, Layout] = {}
        found = to_tuple(self.serde, row, keep=layouts)
        self._remember(row.checkpoint, layouts)
        return found

    def _walk(
        self,
        config: RunnableConfig | None,
        filter: Mapping[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> ListWalk:
        base = ListQuery()
        if config is not None:
            configurable = config.get("configurable") or {}
            thread_id = configurable.get("thread_id")
            base = ListQuery(
                thread_id=str(thread_id) if thread_id is not None else None,
                checkpoint_ns=configurable.get("checkpoint_ns"),
                checkpoint_id=configurable.get("checkpoint_id") or None,
            )
        if before is not None:
            base = ListQuery(
                thread_id=base.thread_id,
                checkpoint_ns=base.checkpoint_ns,
                checkpoint_id=base.checkpoint_id,
                before=(before.get("configurable") or {}).get("checkpoint_id") or None,
            )
        return ListWalk(
            base,
            normalize_filter(filter),
            limit,
            push_filter=self.backend.capabilities.metadata_filter,
        )

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        """List checkpoints, newest first.

        Pages are fetched with keyset pagination: no cursor, transaction or lock is held
        while the caller iterates, so the saver may be used inside the loop.

        Args:
            config: Restricts to `thread_id`, and to `checkpoint_ns` / `checkpoint_id` when
                given. None lists every thread.
            filter: Metadata equality on top-level keys (nested values compare whole).
            before: Only checkpoints older than this config's `checkpoint_id`.
            limit: At most this many. None: all; 0: none.

        Raises:
            ConfigError: `limit` is negative or not an int, or `filter` is not JSON.
        """
        walk = self._walk(config, filter, before, limit)
        while (query := walk.next_query()) is not None:
            rows = self._run(self.backend.list_page(query))
            for row, metadata in walk.accept(query, rows):
                yield to_tuple(self.serde, row, metadata)

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        """Async twin of `list`."""
        walk = self._walk(config, filter, before, limit)
        while (query := walk.next_query()) is not None:
            rows = await self._arun(self.backend.list_page(query))
            for row, metadata in walk.accept(query, rows):
                yield to_tuple(self.serde, row, metadata)

    def list_threads(
        self, *, after: str | None = None, limit: int = 100
    ) -> builtins.list[ThreadInfo]:
        """Up to `limit` thread summaries, by thread id, after `after`."""
        return self._run(self.backend.list_threads(after, limit))

    async def alist_threads(
        self, *, after: str | None = None, limit: int = 100
    ) -> builtins.list[ThreadInfo]:
        """Async twin of `list_threads`."""
        return await self._arun(self.backend.list_threads(after, limit))

    # -- writes ----------------------------------------------------------------------------

    def _writer_turn(self) -> threading.Lock | None:
        """The executor's writer lock, taken (`SerialWriters`); None when it has none, or
        when the wait for it ran out and the write goes ahead without it."""
        serial = self._serial
        if serial is None:
            return None
        lock = serial.writer_lock
        if lock is None or not lock.acquire(timeout=serial.writer_wait):
            return None
        return lock

    @_in_turn
    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Store a checkpoint atomically: only the channels in `new_versions` get new blobs.

        Returns:
            The config naming the stored checkpoint.
        """
        record, blobs, layouts = put_records(
            self.serde, self._lists, config, checkpoint, metadata, new_versions
        )
        try:
            if not _reads_parent_blobs(record, blobs):
                self._run(self.backend.put_checkpoint(record, blobs))
            elif not self._run(self.backend.put_child(record, blobs)):
                record, blobs = _whole(self.serde, config, checkpoint, metadata)
                layouts = {}
                self._run(self.backend.put_checkpoint(record, blobs))
        except ValueTooLargeError as exc:
            raise _put_too_large(exc, record, blobs) from exc
        self._remember(record, layouts)
        if self._keep_last is not None:
            self._trim(record)
        return checkpoint_config(record.thread_id, record.checkpoint_ns, record.checkpoint_id)

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        """Async twin of `put`."""
        record, blobs, layouts = put_records(
            self.serde, self._lists, config, checkpoint, metadata, new_versions
        )
        try:
            if not _reads_parent_blobs(record, blobs):
                await self._aquick(lambda: self.backend.put_checkpoint(record, blobs))
            elif not await self._aquick(lambda: self.backend.put_child(record, blobs)):
                record, blobs = _whole(self.serde, config, checkpoint, metadata)
                layouts = {}
                await self._aquick(lambda: self.backend.put_checkpoint(record, blobs))
        except ValueTooLargeError as exc:
            raise _put_too_large(exc, record, blobs) from exc
        self._remember(record, layouts)
        if self._keep_last is not None:
            await self._atrim(record)
        return checkpoint_config(record.thread_id, record.checkpoint_ns, record.checkpoint_id)

    @_in_turn
    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Store a task's writes for the checkpoint `config` names.

        Special writes (`WRITES_IDX_MAP`: errors, interrupts, resumes) replace earlier ones
        of the task; ordinary writes never overwrite a stored write.
        """
        records = write_records(self.serde, config, writes, task_id, task_path)
        if records:
            try:
                self._run(self.backend.put_writes(records))
            except ValueTooLargeError as exc:
                raise _writes_too_large(exc, records) from exc

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        """Async twin of `put_writes`."""
        records = write_records(self.serde, config, writes, task_id, task_path)
        if records:
            try:
                await self._aquick(lambda: self.backend.put_writes(records))
            except ValueTooLargeError as exc:
                raise _writes_too_large(exc, records) from exc

    # -- deletes, copies, pruning ----------------------------------------------------------

    def delete_thread(self, thread_id: str) -> None:
        """Delete every checkpoint, blob and write of a thread."""
        self._run(self.backend.delete_threads([str(thread_id)]))

    async def adelete_thread(self, thread_id: str) -> None:
        """Async twin of `delete_thread`."""
        await self._arun(self.backend.delete_threads([str(thread_id)]))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Delete the checkpoints (and their writes) that these runs created."""
        if run_ids:
            self._run(self.backend.delete_runs([str(r) for r in run_ids]))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        """Async twin of `delete_for_runs`."""
        if run_ids:
            await self._arun(self.backend.delete_runs([str(r) for r in run_ids]))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Copy a thread's whole history (every namespace, checkpoint, blob and write)."""
        self._run(self.backend.copy_thread(str(source_thread_id), str(target_thread_id)))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        """Async twin of `copy_thread`."""
        await self._arun(self.backend.copy_thread(str(source_thread_id), str(target_thread_id)))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Prune threads.

        Args:
            thread_ids: The threads to prune.
            strategy: `"keep_latest"` keeps the latest checkpoint of each namespace (and,
                for `DeltaChannel` graphs, the ancestors back to each delta channel's
                nearest stored value, so the state still rebuilds); `"delete"` deletes all.
        """
        self._run(prune_plan(self.backend, [str(t) for t in thread_ids], strategy))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        """Async twin of `prune`."""
        await self._arun(prune_plan(self.backend, [str(t) for t in thread_ids], strategy))

    def delete_idle_threads(
        self, idle: datetime.timedelta | float, *, dry_run: bool = False
    ) -> builtins.list[str]:
        """Delete the threads no one has written to for `idle`: a time to live for threads.

        Every checkpoint, blob and write of each thread whose newest checkpoint (of any
        namespace) was written more than `idle` ago goes, as `delete_thread` deletes them.
        Meant for a periodic job (the `checkpointers delete --idle` command runs it too);
        `keep_last` and `prune` bound a thread's history, this removes the threads no one came
        back to. The threads are listed a page at a time, and each idle one is looked at
        again just before it goes and kept if written to since; each thread's look and delete
        is its own step, so graphs go on writing meanwhile. Afterwards, `compact()` gives the
        space back to the disk.

        Args:
            idle: A `timedelta`, or seconds; positive.
            dry_run: Delete nothing; return what would go.

        Returns:
            The ids of the threads deleted (or that would be), by id.
        """
        cutoff = idle_cutoff(idle, time.time())
        return run(sweep_idle(self.backend, cutoff, dry_run=dry_run), self._run)

    async def adelete_idle_threads(
        self, idle: datetime.timedelta | float, *, dry_run: bool = False
    ) -> builtins.list[str]:
        """Async twin of `delete_idle_threads`."""
        cutoff = idle_cutoff(idle, time.time())
        return await arun(sweep_idle(self.backend, cutoff, dry_run=dry_run), self._arun)

    def prune_idle_threads(
        self, idle: datetime.timedelta | float, *, dry_run: bool = False
    ) -> builtins.list[str]:
        """Prune the threads no one has written to for `idle` to their latest state.

        As `delete_idle_threads`, but each such thread keeps its newest checkpoint of each
        namespace (and, with a `DeltaChannel`, the ancestors it rebuilds from), as
        `prune(thread_ids, strategy="keep_latest")` keeps them: the conversation can be
        resumed, its history is gone. A thread that holds one checkpoint a namespace is left
        as it is; a thread of writes only (no checkpoint, so no state) is deleted. The
        `keep_latest` strategy of LangGraph's thread TTL.

        Returns:
            The ids of the threads pruned or deleted (or that would be), by id.
        """
        cutoff = idle_cutoff(idle, time.time())
        sweep = sweep_idle(self.backend, cutoff, dry_run=dry_run, keep_latest=True)
        return run(sweep, self._run)

    async def aprune_idle_threads(
        self, idle: datetime.timedelta | float, *, dry_run: bool = False
    ) -> builtins.list[str]:
        """Async twin of `prune_idle_threads`."""
        cutoff = idle_cutoff(idle, time.time())
        sweep = sweep_idle(self.backend, cutoff, dry_run=dry_run, keep_latest=True)
        return await arun(sweep, self._arun)

    def sweep_idle_threads(
        self,
        idle: datetime.timedelta | float,
        *,
        every: datetime.timedelta | float | None = None,
        strategy: str = "delete",
    ) -> Sweeper:
        """Delete the threads idle for longer than `idle` in the background, until the saver
        closes: a time to live for threads, kept by the process that uses the saver.

        Runs `delete_idle_threads(idle)` (with `strategy="keep_latest"`,
        `prune_idle_threads(idle)`) at once, then every `every`: a sync saver from a
        daemon thread of its own (`checkpointers-ttl`), an async one from a task on its event
        loop (call this from that loop; `aconnect(url, ttl=...)` does), each sweep starting
        `every` after the last one ended. A thread therefore goes between `idle` and `idle +
        every` (and the time of a sweep) after its last write. A sweep that fails is logged
        (logger `checkpoint_base`) and tried again at the next interval; the graphs using the
        saver never see it. Several processes may sweep the same storage: they take turns
        by a lease kept in the storage (`Backend.claim`), so that one of them sweeps at each
        interval and the others count a turn left (`Sweeper.skipped`); and each idle thread
        is looked at again just before it goes, so a thread written meanwhile stays. Calling
        it again replaces the earlier sweeper; `connect(url, ttl=...)` calls it for backends
        that do not expire data themselves (Redis savers do, with their own `ttl=`).

        Args:
            idle: The time to live after a thread's last write: a `timedelta`, or seconds.
            every: Time between sweeps; by default a tenth of `idle`, between 1 second and
                1 hour.
            strategy: `"delete"` (the default) deletes an idle thread whole; `"keep_latest"`
                keeps its latest state and deletes its history (LangGraph's two TTL
                strategies).

        Returns:
            The `Sweeper`: how many sweeps ran, threads deleted or pruned, the last error;
            `stop()`.

        Raises:
            ConfigError: `idle` or `every` is not a positive duration, `strategy` is neither
                of the two, an async saver was called outside an event loop, or the saver
                is read-only.
            StorageError: The saver is closed.
        """
        if self._closed.is_set():
            raise StorageError(f"this {type(self).__name__} is closed: it cannot sweep")
        if self.read_only:
            raise ConfigError(
                f"this {type(self).__name__} was opened read-only: it cannot delete idle "
                "threads; drop ttl= (and sweep_every=), or open it with write access"
            )
        sweeper = Sweeper(idle, every, strategy)
        if self._executor is not None:
            start: Callable[[], None] = functools.partial(sweeper.start_thread, self)
        else:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                raise ConfigError(
                    f"{type(self).__name__} is async: call sweep_idle_threads from its event "
                    "loop, where the sweeps run as a task (aconnect(url, ttl=...) does)"
                ) from None
            start = functools.partial(sweeper.start_task, self, loop)
        while self._sweepers:
            self._sweepers.pop().stop()
        start()
        self._sweepers.append(sweeper)
        return sweeper

    def _claim_lease(self, name: str, seconds: float) -> bool:
        """Take the storage's lease `name` for `seconds` (`Backend.claim`), as this saver in
        this process: False while another saver (of any process) holds it."""
        return self._run(self.backend.claim(name, self._holder(), seconds))

    async def _aclaim_lease(self, name: str, seconds: float) -> bool:
        """Async twin of `_claim_lease`."""
        return await self._arun(self.backend.claim(name, self._holder(), seconds))

    def _holder(self) -> str:
        """This saver in this process (a forked child is another holder)."""
        return f"{self._lease_holder}:{os.getpid()}"

    def compact(self, *, full: bool = False, wait: float = COMPACT_WAIT) -> Compaction:
        """Give back to the disk the space that deleted and pruned checkpoints left behind.

        A delete or prune frees space inside the storage, which later writes reuse; the
        storage does not shrink by itself. SQLite rewrites the database file (`VACUUM`,
        then truncates its WAL): it needs free disk space for a copy of the live data, and
        holds the write lock while it runs, so other writers wait (up to their busy timeout).
        PostgreSQL runs `VACUUM` on the saver's tables, which makes the space of deleted
        rows reusable and gives back only empty pages at their end; `full=True` runs
        `VACUUM FULL`, which rewrites them and gives back all of it, but locks them, reads
        included, while it runs. Memory and Redis give space back as they delete: nothing
        to do.

        PostgreSQL keeps a deleted row while a transaction that began before the delete may
        still read it: an open report, a session idle in transaction, autovacuum analyzing a
        table of the database. The compaction first waits, up to `wait` seconds, for the
        transactions open when it began to end; those still open then are named in
        `Compaction.held`, and what they hold stays until a later compaction. On SQLite a
        reader that outlasts the busy timeout keeps the WAL from being emptied, which
        `held` says too.

        Args:
            full: The thorough form where the backend has two (PostgreSQL's `VACUUM FULL`).
            wait: Seconds to wait for older transactions to end (PostgreSQL); 0 waits none.

        Returns:
            The storage's space before and after (`Compaction`).
        """
        start = time.perf_counter()
        before, after, held = self._run(compact_plan(self.backend, full, wait))
        return Compaction(before, after, time.perf_counter() - start, held)

    async def acompact(self, *, full: bool = False, wait: float = COMPACT_WAIT) -> Compaction:
        """Async twin of `compact`."""
        start = time.perf_counter()
        before, after, held = await self._arun(compact_plan(self.backend, full, wait))
        return Compaction(before, after, time.perf_counter() - start, held)

    # -- delta channels --------------------------------------------------------------------

    def get_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Per channel, the writes of the ancestors back to the nearest stored value (the seed).

        One walk over the ancestor chain for all channels, fetched in pages.
        """
        if not channels:
            return {}
        walk = self._run(delta_history(self.backend, *parse_config(config), list(channels)))
        return self._histories(channels, walk)

    async def aget_delta_channel_history(
        self, *, config: RunnableConfig, channels: Sequence[str]
    ) -> Mapping[str, DeltaChannelHistory]:
        """Async twin of `get_delta_channel_history`."""
        if not channels:
            return {}
        walk = await self._arun(delta_history(self.backend, *parse_config(config), list(channels)))
        return self._histories(channels, walk)

    def _histories(
        self, channels: Sequence[str], walk: DeltaWalk
    ) -> dict[str, DeltaChannelHistory]:
        writes, seeds = walk
        result: dict[str, DeltaChannelHistory] = {}
        for channel in channels:
            entry: DeltaChannelHistory = {
                "writes": [
                    (w.task_id, w.channel, load_write(self.serde, w)) for w in writes[channel]
                ]
            }
            blob, blobs = seeds.get(channel, (None, None))
            present, value = load_seed(self.serde, blob, blobs)
            if present:
                entry["seed"] = value
            result[channel] = entry
        return result

    # -- versions and serializer -----------------------------------------------------------

    def get_next_version(self, current: str | None, channel: None = None) -> str:
        """The next channel version: `"{counter:032}.{random:016}"`."""
        return next_version(current)

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> CheckpointSaver:
        """A shallow clone whose serializer also rebuilds these `(module, name)` types.

        LangGraph calls this at compile time with the types of the graph's state schema.
        """
        extend = getattr(self.serde, "with_allowlist", None)
        if extend is not None:
            serde = extend(extra_allowlist)
        elif isinstance(self.serde, EncryptedSerializer) and _takes_allowlists(self.serde.serde):
            serde = _encrypted_with_allowlist(self.serde, extra_allowlist, self._wrappers)
        else:
            base_clone = super().with_allowlist(extra_allowlist)
            assert isinstance(base_clone, CheckpointSaver)
            return base_clone
        if serde is self.serde:
            return self
        clone: CheckpointSaver = copy.copy(self)
        # LangGraph calls this on every invoke. Its protocol check (an isinstance against a
        # runtime-checkable Protocol) took 3.9 of the 10.3 us; a child of our serializer's
        # own class has the typed methods its parent was checked for.
        same = type(serde) is type(self.serde)
        clone.serde = serde if same else maybe_add_typed_methods(serde)
        return clone


def _takes_allowlists(serde: SerializerProtocol) -> bool:
    """True when `serde` has `with_allowlist` (ours does). Inside LangGraph's
    `EncryptedSerializer`, LangGraph itself extends only a `JsonPlusSerializer`."""
    return callable(getattr(serde, "with_allowlist", None))


_MAX_WRAPPERS = 64
"""How many encrypting serializers a saver remembers (`_encrypted_with_allowlist`)."""


def _encrypted_with_allowlist(
    serde: EncryptedSerializer,
    extra_allowlist: Collection[tuple[str, ...]],
    made: dict[int, tuple[SerializerProtocol, EncryptedSerializer]],
) -> SerializerProtocol:
    """`serde` (an `EncryptedSerializer`) whose inner serializer also rebuilds these types:
    the same cipher around `serde.serde.with_allowlist(extra_allowlist)`.

    LangGraph asks again on every invoke and the inner serializer answers from its cache;
    `made` (the saver's, shared with its clones) then gives back the wrapper made the first
    time, so that the saver is not cloned again. Keyed by the inner serializer's id, which
    the entry keeps alive; bounded.
    """
    inner = serde.serde.with_allowlist(extra_allowlist)  # type: ignore[attr-defined]
    if inner is serde.serde:
        return serde
    known = made.get(id(inner))
    if known is not None and known[1].cipher is serde.cipher and type(known[1]) is type(serde):
        return known[1]
    wrapper = copy.copy(serde)  # keeps a subclass and its other attributes
    wrapper.serde = inner
    if len(made) >= _MAX_WRAPPERS:
        made.clear()
    made[id(inner)] = (inner, wrapper)
    return wrapper


def _put_too_large(
    exc: ValueTooLargeError, record: CheckpointRecord, blobs: Sequence[BlobRecord]
) -> ValueTooLargeError:
    sizes = [(len(b.data), f"channel {b.channel!r}") for b in blobs]
    sizes += [(len(record.checkpoint), "the checkpoint"), (len(record.metadata), "metadata")]
    what = f"checkpoint {record.checkpoint_id!r} of thread {record.thread_id!r}"
    return too_large(exc, what, sizes)


def _writes_too_large(exc: ValueTooLargeError, writes: Sequence[WriteRecord]) -> ValueTooLargeError:
    first = writes[0]
    sizes = [(len(w.data), f"the write to channel {w.channel!r}") for w in writes]
    what = (
        f"the writes of task {first.task_id!r} to checkpoint {first.checkpoint_id!r} of thread "
        f"{first.thread_id!r}"
    )
    return too_large(exc, what, sizes)


def _reads_parent_blobs(record: CheckpointRecord, blobs: Sequence[BlobRecord]) -> bool:
    """Whether a put leaves channels to blobs an ancestor stored (see `Backend.put_child`)."""
    if record.parent_checkpoint_id is None:
        return False
    versions = record.channel_versions
    if len(blobs) < len(versions):
        return True
    written = {b.channel for b in blobs}
    return any(channel not in written for channel in versions)


def _whole(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
) -> tuple[CheckpointRecord, list[BlobRecord]]:
    """The records of a put with a blob for every channel: its parent, and with it the
    blobs of the unchanged channels, was deleted while the graph ran."""
    return to_records(serde, config, checkpoint, metadata, checkpoint["channel_versions"])

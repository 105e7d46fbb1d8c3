"""The backend interface: the few storage operations a database must provide.

Everything else (config parsing, serialization, filters, `before`/`limit`, parent configs,
pruning policy, delta-channel walks, sync and async flavors) is written once in the saver.
Every operation returns a plan (see `_plan.py`); the backend's executors run it.

Methods marked *backend-specific* must be written by each backend. The *generic* ones have
a correct default built from the others; a backend overrides them only to do better
(fewer round trips), never to change what they return.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar

from ._plan import Plan, done
from ._records import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    ListQuery,
    StorageSpace,
    ThreadInfo,
    WriteRecord,
)

__all__ = ["Backend", "Capabilities", "prune_fence"]

_SCAN_PAGE = 200
_RECORDS_PAGE = 16
"""Rows per page of `scan_records`: a page holds its rows' blobs until their records are
kept (16 checkpoints of an agent thread's message list: a few MB at most)."""


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What a backend supports, declared once per backend. Never detected at run time.

    Semantics never depend on a flag: where a backend cannot do something in storage,
    the saver does it in Python with the same result.
    """

    metadata_filter: bool = False
    """`list_page` uses `ListQuery.filter` to narrow pages in storage (else the saver filters)."""
    ttl: bool = False
    """Keys or rows expire after a time-to-live set on the saver."""
    cluster: bool = False
    """Runs on a sharded cluster; every key of a thread lives on one shard."""
    durable: bool = True
    """Data outlives the process (false for the memory backend)."""
    multi_process: bool = True
    """Several processes may use the same storage at once."""


class Backend(ABC):
    """Storage operations of one database, as plans.

    A backend holds no connection: it builds requests; its executors perform them.
    """

    name: ClassVar[str] = "backend"
    capabilities: ClassVar[Capabilities] = Capabilities()

    # -- backend-specific ------------------------------------------------------------------

    @abstractmethod
    def setup(self) -> Plan[None]:
        """Create or migrate the storage schema. Idempotent; safe from two processes at once."""

    @abstractmethod
    def put_checkpoint(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord] = (),
    ) -> Plan[None]:
        """Store a checkpoint with its blobs (and writes, for migration) atomically.

        Storing a checkpoint that exists replaces it; a blob that exists is left as is
        (a (thread, namespace, channel, version) key always names the same value).
        """

    @abstractmethod
    def put_writes(self, writes: Sequence[WriteRecord]) -> Plan[None]:
        """Store pending writes atomically, following the `idx` rule of `WriteRecord`."""

    @abstractmethod
    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        """One page of checkpoints with their blobs and writes, as `ListQuery` describes."""

    @abstractmethod
    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        """Delete every checkpoint, blob and write of these threads."""

    @abstractmethod
    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        """Delete the checkpoints whose `run_id` is one of these, with their writes.

        Blobs that no remaining checkpoint reads may be deleted too.
        """

    @abstractmethod
    def prune(
        self,
        thread_id: str,
        keep: Collection[tuple[str, str]],
        upto: Mapping[str, str] | None = None,
        *,
        retention: bool = False,
    ) -> Plan[None]:
        """Delete the thread's checkpoints not in `keep` ((namespace, id) pairs) whose id is
        at most `upto[namespace]`.

        Their writes go too, and the blobs that no remaining checkpoint reads. Namespaces
        not in `upto` are left alone. `upto` defaults to `prune_fence(keep)`, the newest
        kept id of each namespace: the caller chose `keep` from what it read earlier, and a
        checkpoint stored since (newer than every kept one of its namespace, or in a
        namespace with none kept) is not its to delete, so it stays. A caller that read a
        namespace and keeps none of it passes that namespace's newest id it saw.

        `retention`: a `keep_last` trim, which a backend may commit without waiting for
        the disk. A crash may then undo the whole prune, never part of it, and the
        checkpoints it kept are deleted by a later trim.
        """

    # -- generic ---------------------------------------------------------------------------

    def put_child(self, checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]) -> Plan[bool]:
        """`put_checkpoint` of a checkpoint that reads blobs its parent stored, unless the
        parent is gone: then store nothing and return False.

        A put carries only the blobs of changed channels; the others were stored with an
        ancestor and live while the parent (which reads them) does. A whole-thread delete
        (or `delete_for_runs`) racing a graph that still writes removes them, and the
        graph's next put would read as a checkpoint with values missing. On False the saver
        puts the checkpoint again with every channel's blob. The check and the put must be
        one atomic step. Default: no check (the put as before); returns True.
        """
        yield from self.put_checkpoint(checkpoint, blobs)
        return True

    def begin_write(self) -> Plan[None]:
        """Start the write transaction early, for a plan that reads, decides, then writes.

        `prune` reads the heads and their ancestors before it deletes; a backend whose
        executor would otherwise open its transaction at the first write takes its write
        lock here, so no checkpoint stored in between is deleted. Default: nothing to do.
        """
        return done(None)

    def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> Plan[CheckpointRow | None]:
        """The checkpoint with this id, or the latest of the namespace when id is None."""
        rows = yield from self.list_page(
            ListQuery(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                limit=1,
            )
        )
        return rows[0] if rows else None

    def history(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, limit: int
    ) -> Plan[list[CheckpointRow]]:
        """Up to `limit` checkpoints following parent links from `checkpoint_id` (included).

        Newest first; stops early at a root or at a missing parent.
        """
        rows: list[CheckpointRow] = []
        current: str | None = checkpoint_id
        while current is not None and len(rows) < limit:
            row = yield from self.get(thread_id, checkpoint_ns, current)
            if row is None:
                break
            rows.append(row)
            current = row.checkpoint.parent_checkpoint_id
        return rows

    def checkpoint_keys(self, thread_id: str) -> Plan[list[tuple[str, str, str | None]]]:
        """(namespace, id, parent id) of every checkpoint of the thread, in no given order.

        What `keep_last` retention reads after a put: the default scans the records (a page
        of rows at a time); backends read the keys alone.
        """
        records = yield from self.scan_records(ListQuery(thread_id=thread_id))
        return [(r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id) for r in records]

    def heads(self, thread_id: str) -> Plan[list[CheckpointRecord]]:
        """The latest checkpoint of each namespace of the thread."""
        latest: dict[str, CheckpointRecord] = {}
        for record in (yield from self.scan_records(ListQuery(thread_id=thread_id))):
            latest.setdefault(record.checkpoint_ns, record)
        return list(latest.values())

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        """Copy every checkpoint, blob and write of a thread to another thread id."""
        rows = yield from self.scan(ListQuery(thread_id=source_thread_id))
        for row in reversed(rows):  # parents first, so the copy never shows a dangling parent
            yield from self.put_checkpoint(
                dataclasses.replace(row.checkpoint, thread_id=target_thread_id),
                [dataclasses.replace(b, thread_id=target_thread_id) for b in row.blobs],
                [dataclasses.replace(w, thread_id=target_thread_id) for w in row.writes],
            )

    def list_threads(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        """Up to `limit` threads with ids greater than `after`, by thread id ascending.

        A thread that holds writes and no checkpoint (writes that landed after a delete of
        their checkpoint) is listed too, as `writes_only_thread` describes it. The default
        scans every checkpoint, so it cannot see such a thread: backends override it.
        """
        found: dict[str, list[CheckpointRecord]] = {}
        held: dict[str, dict[tuple[object, ...], int]] = {}  # each blob and write once
        for row in (yield from self.scan(ListQuery())):
            tid = row.checkpoint.thread_id
            if after is None or tid > after:
                found.setdefault(tid, []).append(row.checkpoint)
                sizes = held.setdefault(tid, {})
                for b in row.blobs:
                    sizes[("b", b.checkpoint_ns, b.channel, b.version)] = len(b.data)
                for w in row.writes:
                    key = ("w", w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx)
                    sizes[key] = len(w.data)
        return [
            thread_summary(tid, found[tid], sum(held[tid].values()))
            for tid in sorted(found)[:limit]
        ]

    def list_thread_ages(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        """`list_threads` for a sweep of idle threads, which reads each thread's count, newest
        checkpoint and time only: `size_bytes` may be None. A backend whose sizes cost reads
        of their own (every blob and write row) overrides it to leave them out; by default
        it is `list_threads`.
        """
        return self.list_threads(after, limit)

    def claim(self, name: str, holder: str, seconds: float) -> Plan[bool]:
        """Take the lease `name` for `seconds` from now, for `holder`; False when another
        holder's lease on it has not ended.

        A lease lets the processes sharing a storage take turns at a chore (the sweeps of a
        time to live): a holder may take its own lease again at any time; another waits
        until it ends. Each backend times leases by one clock, the database server's where
        there is one. The default takes every lease (no coordination): right for storage
        that one process uses, and what a backend without a place to keep leases gives.
        """
        return done(True)

    def space(self) -> Plan[StorageSpace]:
        """What the storage takes (`StorageSpace`); unknown (None, None) by default."""
        return done(StorageSpace())

    def compact(self, full: bool) -> Plan[Sequence[str] | None]:
        """Give back to the disk the space that deleted checkpoints left behind.

        The default does nothing: storage that frees space as it deletes (memory, Redis).
        `full` asks for the thorough form where a backend has two (PostgreSQL: `VACUUM FULL`,
        which locks the tables while it rewrites them, instead of `VACUUM`). Returns what
        kept some of the space from going back, one line each (a reader holding SQLite's
        WAL), or None.
        """
        return done(None)

    def older_transactions(self, seconds: float) -> Plan[tuple[str, ...]]:
        """Wait up to `seconds` for the transactions open now to end, before a compaction.

        A database whose deleted rows stay readable to transactions that began before the
        delete (PostgreSQL) cannot give them back while one of those runs. Returns the ones
        still open when the time ran out, one line each naming it; the default has none.
        """
        return done(())

    def scan(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        """Every row matching `query`, read page by page with `list_page`.

        The generic defaults of this class use it; it holds the rows in memory, every
        version of every channel value among them.
        """
        rows: list[CheckpointRow] = []
        yield from self._pages(query, rows.extend)
        return rows

    def scan_records(self, query: ListQuery) -> Plan[list[CheckpointRecord]]:
        """The records of every row matching `query`: `scan` without the blobs and writes,
        which are dropped page by page (what a tool that must see a whole thread holds, the
        `checkpointers prune` policy: a 400-checkpoint thread of 40 MB held 40 MB)."""
        records: list[CheckpointRecord] = []

        def take(page: list[CheckpointRow]) -> None:
            records.extend(r.checkpoint for r in page)

        yield from self._pages(query, take, _RECORDS_PAGE)
        return records

    def _pages(
        self,
        query: ListQuery,
        take: Callable[[list[CheckpointRow]], None],
        size: int = _SCAN_PAGE,
    ) -> Plan[None]:
        """Every row matching `query`, handed to `take` a page of `size` at a time."""
        cursor = None
        while True:
            page = yield from self.list_page(dataclasses.replace(query, cursor=cursor, limit=size))
            take(page)
            if len(page) < size:
                return
            last = page[-1].checkpoint
            cursor = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)


def prune_fence(keep: Collection[tuple[str, str]]) -> dict[str, str]:
    """Namespace -> its newest kept checkpoint id: the bound `prune` deletes up to."""
    fence: dict[str, str] = {}
    for ns, checkpoint_id in keep:
        if checkpoint_id > fence.get(ns, ""):
            fence[ns] = checkpoint_id
    return fence


def thread_summary(
    thread_id: str, records: Sequence[CheckpointRecord], values_bytes: int = 0
) -> ThreadInfo:
    """The summary of a thread from all its checkpoints (at least one) and the bytes of
    its channel values and pending writes (`values_bytes`)."""
    return ThreadInfo(
        thread_id=thread_id,
        checkpoint_count=len(records),
        last_checkpoint_id=max(r.checkpoint_id for r in records),
        updated_at=max(r.created_at for r in records),
        size_bytes=values_bytes + sum(len(r.checkpoint) + len(r.metadata) for r in records),
        namespaces=tuple(sorted({r.checkpoint_ns for r in records})),
    )

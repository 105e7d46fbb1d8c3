"""SQLite storage operations as plans (requests: `Query`, `Execute`, `Atomic`, `Begin`).

Each read is one statement: a page (`list_page`, `get`) or an ancestor walk (`history`)
comes back with its blobs and writes in one round trip, which is what the async flavor
pays for most (every statement is a hop to aiosqlite's thread, about 45 us here).
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Collection, Mapping, Sequence

from checkpoint_base import (
    EMPTY,
    Backend,
    BlobRecord,
    Capabilities,
    CheckpointRecord,
    CheckpointRow,
    ListQuery,
    Plan,
    SchemaVersionError,
    StorageError,
    StorageFullError,
    StorageSpace,
    ThreadInfo,
    WriteRecord,
    prune_fence,
    writes_only_thread,
)

from . import _pages as pages
from . import _schema as schema
from . import _sql as sql
from ._requests import Atomic, Begin, Execute, Query, Row
from ._session import ParentGoneError

__all__ = ["SqliteBackend"]

logger = logging.getLogger("checkpoint_sqlite")

_CHUNK = 500  # bound values per IN (...) list, far below SQLite's limit of 32766
_TEMP_DIRS = "SQLITE_TMPDIR, else TMPDIR, else /var/tmp, /usr/tmp or /tmp"
"""Where SQLite (on Unix) writes temporary files, the copy `VACUUM` makes among them."""


def _atomically(statements: Sequence[tuple[str, Sequence[object]]]) -> Plan[None]:
    """Run writing statements atomically: alone in autocommit, or in one transaction."""
    if len(statements) == 1:
        statement, params = statements[0]
        yield Execute(statement, (params,), standalone=True)
        return
    yield Begin(write=True)
    for statement, params in statements:
        yield Execute(statement, (params,))


class SqliteBackend(Backend):
    """Plans over the SQLite schema of `_schema.MIGRATIONS`."""

    name = "sqlite"
    capabilities = Capabilities(metadata_filter=True, durable=True, multi_process=True)

    # -- schema ----------------------------------------------------------------------------

    def setup(self) -> Plan[None]:
        # Persistent for the file; refused inside a caller's open transaction, then kept as is.
        with contextlib.suppress(StorageError):
            yield Query("PRAGMA journal_mode=WAL")
        if (yield Query(schema.HAS_MIGRATIONS)):
            current = (yield Query(schema.CURRENT_VERSION))[0][0]
            if current == len(schema.MIGRATIONS) - 1:
                return  # up to date: no write lock taken
        # Two processes may get here at once: the write lock orders them, and the second
        # one reads the version the first one recorded.
        yield Begin(write=True)
        yield Execute(schema.MIGRATIONS_TABLE)
        current = (yield Query(schema.CURRENT_VERSION))[0][0]
        current = -1 if current is None else current
        if current >= len(schema.MIGRATIONS):
            raise SchemaVersionError(
                f"the SQLite checkpoint schema is at version {current}, newer than this "
                f"package knows ({len(schema.MIGRATIONS) - 1}): upgrade checkpointers"
            )
        for version in range(current + 1, len(schema.MIGRATIONS)):
            for statement in schema.MIGRATIONS[version]:
                yield Execute(statement)
            yield Execute(schema.RECORD_VERSION, ((version,),))

    # -- leases ----------------------------------------------------------------------------

    def claim(self, name: str, holder: str, seconds: float) -> Plan[bool]:
        yield Begin(write=True)  # claimers of one file take the write lock in turn
        rows = yield Query(sql.LEASE, (name,))
        now = time.time()
        if rows and rows[0][0] != holder and rows[0][1] > now:
            return False
        yield Execute(sql.TAKE_LEASE, ((name, holder, now + seconds),))
        return True

    # -- space -----------------------------------------------------------------------------

    def space(self) -> Plan[StorageSpace]:
        size, free = (yield Query(sql.SPACE))[0]
        return StorageSpace(size=size, free=free)

    def compact(self, full: bool) -> Plan[tuple[str, ...]]:
        # VACUUM rebuilds the file from the live rows (SQLite has no lighter form for a
        # database created without auto_vacuum); in WAL mode the new pages go through the
        # WAL, which TRUNCATE then copies back and empties (a later checkpoint does, when
        # a reader still holds it, waited for up to the busy timeout). Both run in
        # autocommit: VACUUM refuses a transaction.
        before = (yield Query(sql.SPACE))[0]
        try:
            yield Query(sql.VACUUM)
        except StorageFullError as exc:
            # SQLite says only "database or disk is full", though the disk of the database
            # may have room: the copy goes to its temporary directory first. In WAL mode it
            # may say so after the compacted file was committed (the copy fit its page
            # cache): then the compaction stands.
            said = f"SQLite: {exc.__cause__ or exc}"  # its words, without the put's advice
            size, free = (yield Query(sql.SPACE))[0]
            if (size, free) == tuple(before):
                raise StorageFullError(
                    f"{said}: compacting writes a copy of the live data "
                    f"({(size - free) / 1e6:.1f} MB) to SQLite's temporary directory "
                    f"({_TEMP_DIRS}), then as much again beside the database (its WAL): free "
                    "that much space there, or point SQLITE_TMPDIR at a disk with room. The "
                    "database is unchanged."
                ) from exc
            logger.warning("SQLite compacted the database, then reported: %s", said)
        busy, frames, _copied = (yield Query(sql.TRUNCATE_WAL))[0]
        if busy:  # the pages are in the WAL, which only grew: the files take more than before
            return (
                f"a reader of the database (another connection's open transaction) kept SQLite "
                f"from emptying its WAL ({frames:,} pages, the compacted database): the files "
                "shrink once it ends and compact runs again",
            )
        return ()

    # -- writes ----------------------------------------------------------------------------

    def put_checkpoint(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord] = (),
    ) -> Plan[None]:
        yield from self._put(checkpoint, blobs, writes, child=False)

    def put_child(self, checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]) -> Plan[bool]:
        try:
            yield from self._put(checkpoint, blobs, (), child=True)
        except ParentGoneError:
            return False  # the put's statement aborted: nothing stored
        return True

    def _put(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord],
        *,
        child: bool,
    ) -> Plan[None]:
        """The put; with `child`, its first statement checks that the parent is stored."""
        # "No value" is stored as no blob: a read treats a missing blob the same way, and
        # the agent graph's puts carry 1.4 such blobs of 2.4 (rows and index entries saved).
        blobs = [b for b in blobs if b.type != EMPTY]

        def statements() -> tuple[Execute, ...]:
            steps = []
            if child:
                steps.append(Execute(sql.CHECK_PARENT, (sql.parent_row(checkpoint),)))
            if blobs:
                steps.append(Execute(sql.INSERT_BLOB, sql.blob_rows(blobs)))
            if writes:
                steps.append(Execute(sql.UPSERT_WRITE, sql.write_rows(writes)))
            steps.append(Execute(sql.UPSERT_CHECKPOINT, (sql.checkpoint_row(checkpoint),)))
            return tuple(steps)

        def single() -> Execute | None:
            if not writes:
                wide = sql.wide_put_params(checkpoint, blobs)
                if wide is not None:
                    put = sql.PUT_CHILD_WIDE if child else sql.PUT_WIDE
                    return Execute(put, (wide,), standalone=True)
            rows = sql.put_rows(checkpoint, blobs, writes, child=child)
            ((text, params), *more) = sql.put_statements(rows)
            return None if more else Execute(text, (params,), standalone=True)

        yield Atomic(statements, single)

    def put_writes(self, writes: Sequence[WriteRecord]) -> Plan[None]:
        if writes:
            yield from _atomically(sql.write_statements(sql.write_rows(writes)))

    def begin_write(self) -> Plan[None]:
        yield Begin(write=True)

    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        rows = [(thread_id,) for thread_id in thread_ids]
        if rows:
            for statement in sql.DELETE_THREAD:
                yield Execute(statement, rows)

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        yield Begin(write=True)
        doomed: list[Row] = []
        for start in range(0, len(run_ids), _CHUNK):
            chunk = list(run_ids[start : start + _CHUNK])
            doomed += yield Query(sql.run_checkpoints_sql(len(chunk)), chunk)
        if not doomed:
            return
        yield Execute(sql.DELETE_CHECKPOINT_WRITES, doomed)
        yield Execute(sql.DELETE_CHECKPOINT, doomed)
        for thread_id in sorted({str(row[0]) for row in doomed}):
            yield from self._collect_blobs(thread_id)

    def prune(
        self,
        thread_id: str,
        keep: Collection[tuple[str, str]],
        upto: Mapping[str, str] | None = None,
        *,
        retention: bool = False,
    ) -> Plan[None]:
        yield Begin(write=True)
        kept, bound = set(keep), prune_fence(keep) if upto is None else upto
        stored = yield from self.checkpoint_keys(thread_id)
        doomed = [
            (thread_id, ns, cid)
            for ns, cid, _parent in stored
            if (ns, cid) not in kept and ns in bound and cid <= bound[ns]
        ]
        if doomed:
            yield Execute(sql.DELETE_CHECKPOINT_WRITES, doomed)
            yield Execute(sql.DELETE_CHECKPOINT, doomed)
        yield from self._collect_blobs(thread_id)

    def _collect_blobs(self, thread_id: str) -> Plan[None]:
        """Delete the thread's blobs that no remaining checkpoint reads.

        The live set is decoded in Python, not with `json_each`, so that no channel name
        (NUL included) is ever mistaken for garbage.
        """
        live: set[tuple[object, ...]] = set()
        for ns, versions in (yield Query(sql.THREAD_VERSIONS, (thread_id,))):
            try:
                pairs = json.loads(versions).items()
            except (ValueError, TypeError, AttributeError):
                return  # damaged: which blobs it reads is unknown, so none is garbage
            for channel, version in pairs:
                if type(version) is not str:
                    return  # damaged too (a number, an object): keep every blob
                live.add((ns, channel, version))
        dead = [
            (thread_id, *key)
            for key in (yield Query(sql.THREAD_BLOB_KEYS, (thread_id,)))
            if tuple(key) not in live
        ]
        if dead:
            yield Execute(sql.DELETE_BLOB, dead)

    # -- reads -----------------------------------------------------------------------------

    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        statement, params = pages.page_sql(query)
        return (yield from self._page(statement, params))

    def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> Plan[CheckpointRow | None]:
        # `list_page`'s statement for this query, built once (see `pages.LATEST_SQL`).
        if checkpoint_id is None:
            rows = yield from self._page(pages.LATEST_SQL, (thread_id, checkpoint_ns, 1))
        else:
            params = (thread_id, checkpoint_ns, checkpoint_id, 1)
            rows = yield from self._page(pages.BY_ID_SQL, params)
        return rows[0] if rows else None

    def history(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, limit: int
    ) -> Plan[list[CheckpointRow]]:
        if limit <= 0:
            return []
        statement, params = pages.history_sql(thread_id, checkpoint_ns, checkpoint_id, limit)
        return (yield from self._page(statement, params))

    def _page(self, statement: str, params: Sequence[object]) -> Plan[list[CheckpointRow]]:
        rows = yield Query(statement, params)
        page, missing = pages.page_rows(rows)
        if missing:  # rare: see page_rows
            extra: list[Row] = []
            for key in missing:
                extra += yield Query(pages.GET_BLOB, key)
            page, _ = pages.page_rows(rows, extra)
        return page

    def checkpoint_keys(self, thread_id: str) -> Plan[list[tuple[str, str, str | None]]]:
        rows = yield Query(sql.THREAD_CHECKPOINT_LINKS, (thread_id,))
        return [(ns, cid, parent) for ns, cid, parent in rows]

    def heads(self, thread_id: str) -> Plan[list[CheckpointRecord]]:
        # SQLite fills the bare columns of a max() aggregate from the row holding the max.
        rows = yield Query(
            f"SELECT {pages.CHECKPOINT_COLUMNS}, max(checkpoint_id) FROM cp_checkpoints"  # noqa: S608
            " WHERE thread_id = ? GROUP BY checkpoint_ns",
            (thread_id,),
        )
        records = [pages.checkpoint_record(row[:10]) for row in rows]
        records.sort(key=lambda r: (r.checkpoint_id, r.checkpoint_ns), reverse=True)
        return records

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        yield Begin(write=True)
        for statement in sql.COPY_THREAD:
            yield Execute(statement, ((target_thread_id, source_thread_id),))

    def list_threads(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        return self._threads(after, limit, sql.THREAD_SUMMARIES)

    def list_thread_ages(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        return self._threads(after, limit, sql.THREAD_AGES)

    def _threads(self, after: str | None, limit: int, text: str) -> Plan[list[ThreadInfo]]:
        if limit <= 0:
            return []
        if after is None:
            rows = yield Query(text.format(after="1"), (limit + 1, limit + 1, limit))
        else:
            summaries = text.format(after="thread_id > ?")
            rows = yield Query(summaries, (after, limit + 1, after, limit + 1, limit))
        infos: dict[str, ThreadInfo] = {}
        for tid, ns, count, last, updated, size in rows:
            prev = infos.get(tid)
            if prev is None:
                infos[tid] = ThreadInfo(tid, count, last, updated, size, (ns,))
                continue
            infos[tid] = ThreadInfo(
                tid,
                prev.checkpoint_count + count,
                max(prev.last_checkpoint_id or "", last),
                max(prev.updated_at or 0.0, updated or 0.0),
                None if size is None else (prev.size_bytes or 0) + size,
                (*prev.namespaces, ns),
            )
        return [
            writes_only_thread(i.thread_id, i.last_checkpoint_id, i.size_bytes, i.namespaces)
            if i.checkpoint_count == 0
            else i
            for i in infos.values()
        ]

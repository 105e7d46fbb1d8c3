"""The PostgreSQL backend: every storage operation as a plan of `Query` requests.

Each operation but `setup` is a single statement: one round trip, atomic on its own in
autocommit, and idempotent, so the executors may run it again on a fresh connection after
the server or a proxy dropped the old one.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from checkpoint_base import (
    EMPTY,
    Backend,
    BlobRecord,
    Capabilities,
    CheckpointRecord,
    CheckpointRow,
    ConfigError,
    ListQuery,
    Plan,
    SchemaVersionError,
    StorageError,
    StorageSpace,
    ThreadInfo,
    WriteRecord,
    prune_fence,
)

from ._migrations import MIGRATIONS
from ._query import BEGIN, Fetch, Query
from ._rows import (
    blob_rows,
    blob_slots,
    checkpoint_row,
    decode_key,
    dedupe_writes,
    encode_key,
    filter_param,
    to_checkpoint,
    to_page,
    to_thread_info,
    write_rows,
)
from ._sql import (
    PUT_FUNCTION_BLOBS,
    list_sql,
    page_cap,
    put_child_sql,
    put_sql,
    put_writes_sql,
    statements,
)

__all__ = ["DEFAULT_SCHEMA", "PostgresBackend"]

DEFAULT_SCHEMA = "checkpointers"
"""Tables live in their own schema by default, apart from the official saver's tables."""
_POLL = 0.05
"""Seconds between two looks at the transactions a compaction waits for."""
_PAUSE = b"SELECT pg_catalog.pg_sleep(%(s)s), pg_catalog.pg_stat_clear_snapshot()"
"""A pause between two looks; the next look reads the sessions afresh even inside a
transaction (the caller's), where PostgreSQL keeps showing its first look otherwise."""


def _lock_key(schema: str) -> int:
    """The advisory lock that serializes `setup` of one schema across processes."""
    digest = hashlib.blake2b(b"checkpointers.setup:" + schema.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class PostgresBackend(Backend):
    """Plans over three tables (checkpoints, blobs, writes) in one schema.

    Args:
        schema: The schema holding the tables; created by `setup` when missing. It is always
            quoted as an identifier: nothing depends on `search_path`.
        plan_cached_gets: Read one checkpoint through the `get_page` function, a page of one
            thread through `list_page`, and put a checkpoint of up to four blobs through
            `put_checkpoint` (`put_child`): functions whose plans the server caches per
            connection. Right when statements are not prepared (behind PgBouncer in
            transaction mode, or `prepare_threshold=None`): planning costs 0.3 ms per get,
            ~0.5 ms per list page and ~0.1 ms per put. With prepared statements the plain
            statement is faster: the function copies its result once more (0.82 against
            0.67 ms per get of the benchmarks' 100-step thread). A child's put (its lock and
            parent check) costs ~35 us more than an unchecked put through the function, ~45
            us through the prepared statement, where the function would cost ~60 us more.
    """

    name = "postgres"
    capabilities = Capabilities(metadata_filter=True)

    def __init__(self, schema: str = DEFAULT_SCHEMA, *, plan_cached_gets: bool = True) -> None:
        if (
            not isinstance(schema, str)
            or not schema
            or "\x00" in schema
            or len(schema.encode(errors="replace")) > 63  # PostgreSQL would cut it silently
        ):
            raise ConfigError(
                f"schema must be a non-empty PostgreSQL identifier of at most 63 bytes, "
                f"got {schema!r}"
            )
        self.schema = schema
        self.sql = statements(schema)
        self.plan_cached_gets = plan_cached_gets

    # -- backend-specific ------------------------------------------------------------------

    def setup(self) -> Plan[None]:
        s = self.sql
        # An up-to-date schema is only read, outside a transaction: setup() (which connect()
        # and the command line run) then works on a read replica, in a read-only session,
        # and for a role that may not create anything.
        if (yield Query(s.migrations_exist, {"schema": self.schema}, Fetch.ONE)) is not None:
            version = int((yield Query(s.applied, fetch=Fetch.ONE))[0])
            if self._known(version) == len(MIGRATIONS):
                return
        yield BEGIN
        # Held until commit: a second process waits here, then finds the work done.
        yield Query(b"SELECT pg_advisory_xact_lock(%(key)s)", {"key": _lock_key(self.schema)})
        # Look first: CREATE SCHEMA IF NOT EXISTS needs the CREATE privilege even when the
        # schema exists, which a role confined to an existing schema does not have.
        exists = yield Query(s.schema_exists, {"schema": self.schema}, Fetch.ONE)
        if exists is None:
            yield Query(s.create_schema)
        yield Query(s.create_migrations)
        row = yield Query(s.applied, fetch=Fetch.ONE)
        for v in range(self._known(int(row[0])), len(MIGRATIONS)):
            check = s.migration_checks[v]
            applies = check is None or (yield Query(check, fetch=Fetch.ONE)) is not None
            if applies:
                for statement in s.migrations[v]:
                    yield Query(statement)
            yield Query(s.record_migration, {"v": v + 1})

    def _known(self, version: int) -> int:
        """`version`, unless it is newer than this package knows: `SchemaVersionError`."""
        if version > len(MIGRATIONS):
            raise SchemaVersionError(
                f"schema {self.schema!r} is at version {version}, newer than the {len(MIGRATIONS)} "
                "this version of checkpointers knows: upgrade the package"
            )
        return version

    def claim(self, name: str, holder: str, seconds: float) -> Plan[bool]:
        params = {"name": name, "holder": holder, "seconds": float(seconds)}
        row = yield Query(self.sql.claim, params, Fetch.ONE)
        return row is not None

    def space(self) -> Plan[StorageSpace]:
        row = yield Query(self.sql.space, {"schema": self.schema}, Fetch.ONE)
        return StorageSpace(size=int(row[0]))  # free space: no core function tells

    def older_transactions(self, seconds: float) -> Plan[tuple[str, ...]]:
        # An autovacuum ANALYZE of a catalog, a report, a session idle in transaction: each
        # keeps the rows deleted before it began (VACUUM FULL rewrites them too). Polled on
        # the server: a plan waits with a statement that sleeps.
        start = yield Query(self.sql.horizon, fetch=Fetch.ONE)
        params = {"start": str(start[0])}
        deadline = time.monotonic() + max(0.0, seconds)
        while True:
            rows = yield Query(self.sql.holders, params, Fetch.ALL)
            left = deadline - time.monotonic()
            if not rows or left <= 0:
                return tuple(str(r[0]) for r in rows)
            yield Query(_PAUSE, {"s": min(_POLL, left)}, Fetch.ONE)

    def compact(self, full: bool) -> Plan[None]:
        s = self.sql
        # PostgreSQL skips a table the role may not VACUUM with a mere warning.
        owners = yield Query(s.may_vacuum, {"schema": self.schema}, Fetch.ALL)
        denied = {str(name): str(owner) for name, may, owner in owners if not may}
        if denied:
            version = yield Query(b"SHOW server_version_num", fetch=Fetch.ONE)
            if int(version[0]) >= 170000:  # MAINTAIN, a privilege since PostgreSQL 17
                still = yield Query(
                    s.may_maintain, {"schema": self.schema, "tables": sorted(denied)}, Fetch.ALL
                )
                denied = {str(r[0]): denied[str(r[0])] for r in still}
        if denied:
            tables = ", ".join(f"{self.schema}.{t} (owner {o})" for t, o in sorted(denied.items()))
            raise StorageError(
                f"compacting needs VACUUM on {tables}, which this role may not run: connect as "
                "the tables' owner, the database's owner or a superuser (or, on PostgreSQL 17+, "
                "grant MAINTAIN)"
            )
        yield Query(s.vacuum_full if full else s.vacuum, untransacted=True)

    def put_checkpoint(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord] = (),
    ) -> Plan[None]:
        # A blob that says "no value at this version" is not stored: a read finds no blob
        # for that version, which means the same. In an agent graph that is over half of
        # the blobs (the branch channels): a 200-step thread stored 280 rows fewer.
        stored = [b for b in blobs if b.type != EMPTY]
        unique = dedupe_writes(writes)
        if self.plan_cached_gets and not unique:
            # The function of migration 6, whose plans the server keeps.
            slots = blob_slots(checkpoint, stored, PUT_FUNCTION_BLOBS)
            if slots is not None:
                yield Query(self.sql.put_checkpoint, checkpoint_row(checkpoint) + slots)
                return
        row = checkpoint_row(checkpoint)
        params = [row[0], *blob_rows(stored), *write_rows(unique), *row]
        yield Query(put_sql(self.schema, len(stored), len(unique)), params)

    def put_child(self, checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]) -> Plan[bool]:
        # One statement, in autocommit its own transaction: it takes the thread's advisory
        # lock shared (a delete holds it exclusive), checks the parent with a snapshot taken
        # after the lock, and puts (migration 8). Run again after a lost connection, it may
        # answer False where the first attempt stored the child: the thread was deleted in
        # between, and the saver then stores the checkpoint whole, which is right either way.
        stored = [b for b in blobs if b.type != EMPTY]
        row = checkpoint_row(checkpoint)
        if self.plan_cached_gets:
            slots = blob_slots(checkpoint, stored, PUT_FUNCTION_BLOBS)
            if slots is not None:
                reply = yield Query(self.sql.put_child, row + slots, Fetch.ONE)
                return bool(reply[0])
        params = [row[0], row[1], row[3], *blob_rows(stored), *row]
        reply = yield Query(put_child_sql(self.schema, len(stored)), params, Fetch.ONE)
        return bool(reply[0])

    def put_writes(self, writes: Sequence[WriteRecord]) -> Plan[None]:
        if writes:
            unique = dedupe_writes(writes)
            yield Query(put_writes_sql(self.schema, len(unique)), write_rows(unique))

    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        params: dict[str, Any] = {"limit": query.limit}
        if query.thread_id is not None:
            params["thread"] = encode_key(query.thread_id)
        if query.checkpoint_ns is not None:
            params["ns"] = encode_key(query.checkpoint_ns)
        if query.checkpoint_id is not None:
            params["id"] = encode_key(query.checkpoint_id)
        if query.before is not None:
            params["before"] = encode_key(query.before)
        if query.cursor is not None:
            params["c_id"], params["c_thread"], params["c_ns"] = map(encode_key, query.cursor)
        contains = filter_param(query.filter)
        if contains is not None:
            params["filter"] = contains
        flags = (
            query.thread_id is not None,
            query.checkpoint_ns is not None,
            query.checkpoint_id is not None,
            query.before is not None,
            query.cursor is not None,
            contains is not None,
        )
        get = query.limit == 1 and flags[:2] == (True, True) and not any(flags[3:])
        if get and self.plan_cached_gets:
            # get_tuple: a function whose plans the server keeps (see migration 4).
            params.setdefault("id", None)
            rows = yield Query(self.sql.get_page, params, Fetch.ALL)
        elif self.plan_cached_gets and query.thread_id is not None and query.checkpoint_id is None:
            # A page of one thread: the function of migration 5 (same reason).
            for key in ("ns", "before", "c_id", "c_ns", "filter"):
                params.setdefault(key, None)
            params.pop("c_thread", None)
            rows = yield Query(self.sql.list_page, params, Fetch.ALL)
        else:
            cap = page_cap(query.limit)  # a get: 1 (see `list_sql`)
            rows = yield Query(list_sql(self.schema, flags, cap=cap), params, Fetch.ALL)
        return to_page(rows, by_position=False)

    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        if thread_ids:
            threads = [encode_key(t) for t in thread_ids]
            yield Query(self.sql.delete_threads, {"threads": threads})

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        if run_ids:
            yield Query(self.sql.delete_runs, {"runs": [encode_key(r) for r in run_ids]})

    def prune(
        self,
        thread_id: str,
        keep: Collection[tuple[str, str]],
        upto: Mapping[str, str] | None = None,
        *,
        retention: bool = False,
    ) -> Plan[None]:
        kept = sorted(keep)
        bounds = sorted((prune_fence(keep) if upto is None else upto).items())
        yield Query(
            self.sql.prune,
            {
                "thread": encode_key(thread_id),
                "keep_ns": [encode_key(ns) for ns, _ in kept],
                "keep_id": [encode_key(cid) for _, cid in kept],
                "upto_ns": [encode_key(ns) for ns, _ in bounds],
                "upto_id": [encode_key(cid) for _, cid in bounds],
            },
            unsynced=self.sql.trim if retention else None,
        )

    # -- generic, done in one statement ------------------------------------------------------

    def history(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, limit: int
    ) -> Plan[list[CheckpointRow]]:
        if limit < 1:
            return []
        rows = yield Query(
            self.sql.history,
            {
                "thread": encode_key(thread_id),
                "ns": encode_key(checkpoint_ns),
                "id": encode_key(checkpoint_id),
                "limit": limit,
            },
            Fetch.ALL,
        )
        return to_page(rows, by_position=True)

    def heads(self, thread_id: str) -> Plan[list[CheckpointRecord]]:
        rows = yield Query(self.sql.heads, {"thread": encode_key(thread_id)}, Fetch.ALL)
        return [to_checkpoint(r) for r in rows]

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        yield Query(
            self.sql.copy_thread,
            {"source": encode_key(source_thread_id), "target": encode_key(target_thread_id)},
        )

    def checkpoint_keys(self, thread_id: str) -> Plan[list[tuple[str, str, str | None]]]:
        rows = yield Query(self.sql.checkpoint_keys, {"thread": encode_key(thread_id)}, Fetch.ALL)
        return [
            (decode_key(ns), decode_key(cid), None if parent is None else decode_key(parent))
            for ns, cid, parent in rows
        ]

    def list_threads(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        return self._threads(after, limit, self.sql.list_threads, self.sql.list_threads_after)

    def list_thread_ages(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        return self._threads(
            after, limit, self.sql.list_thread_ages, self.sql.list_thread_ages_after
        )

    def _threads(
        self, after: str | None, limit: int, first: bytes, following: bytes
    ) -> Plan[list[ThreadInfo]]:
        if limit < 1:
            return []
        if after is None:
            rows = yield Query(first, {"limit": limit}, Fetch.ALL)
        else:
            params = {"after": encode_key(after), "limit": limit}
            rows = yield Query(following, params, Fetch.ALL)
        return [to_thread_info(r) for r in rows]

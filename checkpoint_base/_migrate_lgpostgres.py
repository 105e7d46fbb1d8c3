"""A migration side over the tables of the official `langgraph-checkpoint-postgres` saver.

`checkpoints` holds each checkpoint as JSONB, with `None`, str, int, float and bool channel
values inline; `checkpoint_blobs` holds every other value with its type tag;
`checkpoint_writes` holds pending writes with theirs. Blobs and writes are copied with their
bytes and tags. The JSONB body and the inline primitives have no serializer bytes at all: they
are encoded as plain msgpack (tag `"msgpack"`, the format of LangGraph's `JsonPlusSerializer`,
which every serializer of this package reads). Export writes every value to `checkpoint_blobs`
and an empty `channel_values` into the JSONB, which the official saver reads the same way.

Checkpoints in the pre-v4 format (pending sends kept as writes of the parent) are copied as
stored; the official saver migrates them when it reads them, this side does not.
"""

from __future__ import annotations

import inspect
import json
import math
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from ._convert import UNREADABLE, blob_map, raise_if_damaged, whole_list
from ._errors import ConfigError, StorageError
from ._lists import HEAD, is_segment
from ._metadata import decode_metadata, encode_metadata, jsonb_refuses
from ._migrate_msgpack import (
    JSONPLUS_READS,
    for_jsonplus,
    jsonplus_write_rows,
    pack_plain,
    ts_to_epoch,
    uuid6_epoch,
    value_of,
)
from ._migrate_side import AsyncLock, Key, Link, Side, SqlMany, SqlQuery, ids_by_namespace
from ._plan import Plan, arun, run
from ._records import (
    EMPTY,
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    ThreadInfo,
    WriteRecord,
    as_bytes,
)

__all__ = ["LangGraphPostgresSide"]

T = TypeVar("T")

_READY_SQL = (
    "SELECT to_regclass('checkpoints') IS NOT NULL, EXISTS (SELECT 1 FROM pg_attribute "
    "WHERE attrelid = to_regclass('checkpoint_writes') AND attname = 'task_path' "
    "AND NOT attisdropped)"
)
# The size: checkpoints with their metadata, channel values and pending writes, as stored.
_THREADS_SQL = """
SELECT c.thread_id, c.n, c.last, c.nss,
       (c.size + coalesce((SELECT sum(pg_column_size(b.blob)) FROM checkpoint_blobs b
                           WHERE b.thread_id = c.thread_id), 0)
               + coalesce((SELECT sum(pg_column_size(w.blob)) FROM checkpoint_writes w
                           WHERE w.thread_id = c.thread_id), 0))::bigint
FROM (SELECT thread_id, count(*) AS n, max(checkpoint_id) AS last,
             array_agg(DISTINCT checkpoint_ns) AS nss,
             sum(pg_column_size(checkpoint) + pg_column_size(metadata)) AS size
      FROM checkpoints WHERE thread_id > %s
      GROUP BY thread_id ORDER BY thread_id LIMIT %s) c
ORDER BY c.thread_id
"""
_CHECKPOINTS_SQL = """
SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, checkpoint::text, metadata::text
FROM checkpoints WHERE thread_id = %s
"""
_BLOBS_SQL = (
    "SELECT checkpoint_ns, channel, version, type, blob FROM checkpoint_blobs WHERE thread_id = %s"
)
_WRITES_SQL = """
SELECT checkpoint_ns, checkpoint_id, task_id, {task_path}, idx, channel, type, blob
FROM checkpoint_writes WHERE thread_id = %s
"""
_LINKS_SQL = (
    "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM checkpoints"
    " WHERE thread_id = %s"
)
# Some checkpoints of one namespace (after a statement of one thread), and some blobs.
_SOME = " AND checkpoint_ns = %s AND checkpoint_id = ANY(%s)"
_SOME_BLOBS = (  # constant text
    _BLOBS_SQL  # noqa: S608
    + " AND checkpoint_ns = %s"
    " AND (channel, version) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
)
_PUT_BLOBS_SQL = """
INSERT INTO checkpoint_blobs (thread_id, checkpoint_ns, channel, version, type, blob)
VALUES (%s, %s, %s, %s, %s, %s)
ON CONFLICT (thread_id, checkpoint_ns, channel, version) DO NOTHING
"""
_PUT_CHECKPOINTS_SQL = """
INSERT INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,
                         checkpoint, metadata)
VALUES (%s, %s, %s, %s, %s::jsonb, %s::jsonb)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id,
    checkpoint = EXCLUDED.checkpoint,
    metadata = EXCLUDED.metadata
"""
_WRITE_INSERT = """
INSERT INTO checkpoint_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path,
                               idx, channel, type, blob)
VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)
ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
"""
_INSERT_WRITES_SQL = _WRITE_INSERT + " DO NOTHING"
_UPSERT_WRITES_SQL = (
    _WRITE_INSERT
    + " DO UPDATE SET channel = EXCLUDED.channel, type = EXCLUDED.type, blob = EXCLUDED.blob"
)


def _pool_types() -> tuple[Any, Any]:
    try:
        from psycopg_pool import AsyncConnectionPool, ConnectionPool
    except ImportError:  # no pool installed: connections only
        return type(None), type(None)
    return ConnectionPool, AsyncConnectionPool


class LangGraphPostgresSide(Side):
    """The storage of a `langgraph.checkpoint.postgres` `PostgresSaver` / `AsyncPostgresSaver`.

    Args:
        saver: The official saver; its connection or pool and its lock are used.
        label: How reports name it.
    """

    native_tags = JSONPLUS_READS

    def __init__(self, saver: Any, label: str | None = None) -> None:
        super().__init__(label or f"{type(saver).__name__} tables")
        self.saver = saver
        self._task_path: bool | None = None

    @property
    def serde(self) -> SerializerProtocol:
        serde: SerializerProtocol = self.saver.serde
        return serde

    # -- running ---------------------------------------------------------------------------

    def setup(self) -> None:
        self.saver.setup()

    async def asetup(self) -> None:
        outcome = self.saver.setup()
        if inspect.isawaitable(outcome):
            await outcome

    def run(self, plan: Plan[T]) -> T:
        import psycopg
        from psycopg.rows import tuple_row

        pool_type, _ = _pool_types()
        try:
            with self.saver.lock:
                if isinstance(self.saver.conn, pool_type):
                    with self.saver.conn.connection() as conn:
                        return self._run_on(conn, plan, tuple_row)
                if not isinstance(self.saver.conn, psycopg.Connection):
                    raise StorageError(f"{self.label} is async: use amigrate()/averify()")
                return self._run_on(self.saver.conn, plan, tuple_row)
        except psycopg.Error as exc:
            raise StorageError(f"{self.label}: {exc}") from exc

    @staticmethod
    def _run_on(conn: Any, plan: Plan[T], row_factory: Any) -> T:
        with conn.transaction(), conn.cursor(row_factory=row_factory) as cur:

            def execute(request: Any) -> Any:
                if isinstance(request, SqlMany):
                    cur.executemany(request.sql, request.rows)
                    return None
                cur.execute(request.sql, request.params)
                return cur.fetchall()

            result = run(plan, execute)
        if not conn.autocommit:
            conn.commit()
        return result

    async def arun(self, plan: Plan[T]) -> T:
        import psycopg
        from psycopg.rows import tuple_row

        _, apool_type = _pool_types()
        conn = self.saver.conn
        if isinstance(conn, (psycopg.Connection, _pool_types()[0])):
            return self.run(plan)
        try:
            async with AsyncLock(self.saver.lock):
                if isinstance(conn, apool_type):
                    async with conn.connection() as pooled:
                        return await self._arun_on(pooled, plan, tuple_row)
                return await self._arun_on(conn, plan, tuple_row)
        except psycopg.Error as exc:
            raise StorageError(f"{self.label}: {exc}") from exc

    @staticmethod
    async def _arun_on(conn: Any, plan: Plan[T], row_factory: Any) -> T:
        async with conn.transaction(), conn.cursor(row_factory=row_factory) as cur:

            async def execute(request: Any) -> Any:
                if isinstance(request, SqlMany):
                    await cur.executemany(request.sql, request.rows)
                    return None
                await cur.execute(request.sql, request.params)
                return await cur.fetchall()

            result = await arun(plan, execute)
        if not conn.autocommit:
            await conn.commit()
        return result

    # -- plans -----------------------------------------------------------------------------

    def _ready(self) -> Plan[bool]:
        if self._task_path is None:
            rows = yield SqlQuery(_READY_SQL)
            if not rows[0][0]:
                return False
            self._task_path = bool(rows[0][1])
        return True

    def thread_page(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        if not (yield from self._ready()):
            return []
        rows = yield SqlQuery(_THREADS_SQL, (after if after is not None else "", limit))
        return [
            ThreadInfo(
                thread_id=thread_id,
                checkpoint_count=count,
                last_checkpoint_id=newest,
                updated_at=uuid6_epoch(newest),
                size_bytes=size,
                namespaces=tuple(sorted(namespaces or ())),
            )
            for thread_id, count, newest, namespaces, size in rows
        ]

    def thread_keys(self, thread_id: str) -> Plan[list[Link]]:
        if not (yield from self._ready()):
            return []
        rows = yield SqlQuery(_LINKS_SQL, (thread_id,))
        return [(ns, cid, parent or None) for ns, cid, parent in rows]

    def read_checkpoints(self, thread_id: str, keys: Sequence[Key]) -> Plan[list[CheckpointRow]]:
        if not (yield from self._ready()):
            return []
        task_path = "task_path" if self._task_path else "''"
        checkpoints: list[Any] = []
        blob_rows: list[Any] = []
        write_rows: list[Any] = []
        for ns, ids in ids_by_namespace(keys).items():
            found = yield SqlQuery(_CHECKPOINTS_SQL + _SOME, (thread_id, ns, ids))
            checkpoints += found
            pairs = sorted({pair for row in found for pair in _versions(row[3])})
            if pairs:
                params = (thread_id, ns, [c for c, _ in pairs], [v for _, v in pairs])
                blob_rows += yield SqlQuery(_SOME_BLOBS, params)
            statement = _WRITES_SQL.format(task_path=task_path) + _SOME
            write_rows += yield SqlQuery(statement, (thread_id, ns, ids))
        return _rows(thread_id, checkpoints, blob_rows, write_rows)

    def read_thread(self, thread_id: str) -> Plan[list[CheckpointRow]]:
        if not (yield from self._ready()):
            return []
        checkpoints = yield SqlQuery(_CHECKPOINTS_SQL, (thread_id,))
        blob_rows = yield SqlQuery(_BLOBS_SQL, (thread_id,))
        task_path = "task_path" if self._task_path else "''"
        write_rows = yield SqlQuery(_WRITES_SQL.format(task_path=task_path), (thread_id,))
        return _rows(thread_id, checkpoints, blob_rows, write_rows)

    def write(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> Plan[None]:
        blobs: list[tuple[Any, ...]] = []
        checkpoints: list[tuple[Any, ...]] = []
        inserts: list[tuple[Any, ...]] = []
        upserts: list[tuple[Any, ...]] = []
        try:
            for row in rows:
                rec = row.checkpoint
                change = jsonb_change(decode_metadata(rec.metadata))
                if change is not None:
                    raise ConfigError(
                        f"the metadata of checkpoint {rec.checkpoint_id!r} (namespace "
                        f"{rec.checkpoint_ns!r}) of thread {rec.thread_id!r} cannot go into "
                        f"LangGraph's PostgreSQL storage unchanged, whose metadata column is "
                        f"JSONB: {change}. Keep the thread in a store of this package "
                        "(sqlite://, postgresql://, redis://), which holds metadata exactly, or "
                        "store that value differently (a number as a string, say)."
                    )
                row_blobs = blob_map(row)
                for b in row.blobs:
                    if is_segment(b.channel):
                        continue  # read through its head
                    if b.type == HEAD:  # a list in segments: whole again
                        b = whole_list(serde, b, row_blobs)
                    if b.type == EMPTY:
                        blobs.append(
                            (b.thread_id, b.checkpoint_ns, b.channel, b.version, EMPTY, None)
                        )
                        continue
                    typed = for_jsonplus(
                        b.type, as_bytes(b.data), serde, self.serde, value_of(rec, b.channel)
                    )
                    blobs.append((b.thread_id, b.checkpoint_ns, b.channel, b.version, *typed))
                body = dict(serde.loads_typed((rec.type, rec.checkpoint)))
                body["channel_values"] = {}
                checkpoints.append(
                    (
                        rec.thread_id,
                        rec.checkpoint_ns,
                        rec.checkpoint_id,
                        rec.parent_checkpoint_id,
                        json.dumps(body),
                        rec.metadata.decode("utf-8"),
                    )
                )
                jsonplus_write_rows(row.writes, serde, self.serde, inserts, upserts)
        except UNREADABLE as exc:
            # A value this migration must decode (to re-encode it for LangGraph) is damaged.
            raise_if_damaged(serde, row, exc)
            raise
        for sql, params in (
            (_PUT_BLOBS_SQL, blobs),
            (_INSERT_WRITES_SQL, inserts),
            (_UPSERT_WRITES_SQL, upserts),
            (_PUT_CHECKPOINTS_SQL, checkpoints),
        ):
            if params:
                yield SqlMany(sql, params)


def jsonb_change(value: Any, path: str = "metadata") -> str | None:
    """What of JSON `value` a JSONB column would refuse or give back changed, in words; None
    when it keeps all of it.

    JSONB refuses a NUL character and a lone surrogate (in a key or a string). It keeps numbers
    as `numeric`, which has no -0.0, and prints a float that JSON wrote with an exponent and no
    fraction (from 1e16 on) as digits, which read back as an int.
    """
    if isinstance(value, str):
        return _jsonb_text(value, f"{path}, a string,")
    if isinstance(value, float):
        if value == 0.0 and math.copysign(1.0, value) < 0:
            return f"{path} is -0.0, which comes back as 0.0"
        if math.isfinite(value) and abs(value) >= 1e16:
            return f"{path} is the float {value!r}, which comes back as the int {int(value)}"
        return None
    if isinstance(value, list):
        for i, item in enumerate(value):
            change = jsonb_change(item, f"{path}[{i}]")
            if change is not None:
                return change
        return None
    if isinstance(value, dict):
        for key, item in value.items():
            change = _jsonb_text(str(key), f"{path} has a key {key!r} that") or jsonb_change(
                item, f"{path}[{key!r}]"
            )
            if change is not None:
                return change
    return None


def _jsonb_text(text: str, what: str) -> str | None:
    refused = next((ch for ch in text if jsonb_refuses(ch)), None)
    if refused is None:
        return None
    kind = "a NUL character (\\u0000)" if refused == "\x00" else "a lone surrogate"
    return f"{what} holds {kind}, which JSONB refuses"


def _versions(body_text: str) -> list[tuple[str, str]]:
    """The (channel, version) pairs a stored checkpoint body reads."""
    versions = json.loads(body_text).get("channel_versions") or {}
    return [(channel, str(version)) for channel, version in versions.items()]


def _rows(
    thread_id: str,
    checkpoints: Sequence[Any],
    blob_rows: Sequence[Any],
    write_rows: Sequence[Any],
) -> list[CheckpointRow]:
    """The records of one thread's rows of the official tables."""
    blobs = {
        (ns, channel, version): (type_, bytes(blob) if blob is not None else b"")
        for ns, channel, version, type_, blob in blob_rows
    }
    writes: dict[Key, list[WriteRecord]] = defaultdict(list)
    for ns, cid, task_id, path, idx, channel, type_, blob in write_rows:
        writes[(ns, cid)].append(
            WriteRecord(thread_id, ns, cid, task_id, idx, channel, type_, bytes(blob), path)
        )
    return [
        _row(thread_id, ns, cid, parent, body, meta, blobs, tuple(writes.get((ns, cid), ())))
        for ns, cid, parent, body, meta in checkpoints
    ]


def _row(
    thread_id: str,
    ns: str,
    checkpoint_id: str,
    parent_id: str | None,
    body_text: str,
    metadata_text: str | None,
    blobs: dict[tuple[str, str, str], tuple[str, bytes]],
    writes: tuple[WriteRecord, ...],
) -> CheckpointRow:
    body = json.loads(body_text)
    inline = body.pop("channel_values", None) or {}
    versions = {ch: str(v) for ch, v in (body.get("channel_versions") or {}).items()}
    records = []
    for channel, version in versions.items():
        stored = blobs.get((ns, channel, version))
        if stored is None and channel in inline:  # a blob wins over an inline marker
            value = inline[channel]
            stored = ("null", b"") if value is None else ("msgpack", pack_plain(value))
        if stored is not None:
            records.append(BlobRecord(thread_id, ns, channel, version, *stored))
    meta = decode_metadata(metadata_text.encode("utf-8")) if metadata_text else {}
    run_id = meta.get("run_id")
    record = CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns=ns,
        checkpoint_id=checkpoint_id,
        parent_checkpoint_id=parent_id or None,
        type="msgpack",
        checkpoint=pack_plain(body),
        metadata=encode_metadata(meta),
        channel_versions=versions,
        run_id=str(run_id) if run_id is not None else None,
        created_at=ts_to_epoch(body.get("ts")) or uuid6_epoch(checkpoint_id) or 0.0,
    )
    return CheckpointRow(record, tuple(records), writes)

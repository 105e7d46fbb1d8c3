"""A migration side over the tables of the official `langgraph-checkpoint-sqlite` saver.

Its `checkpoints` table holds each checkpoint as one `JsonPlusSerializer` msgpack map with the
channel values inline; `writes` holds pending writes. Reading cuts each map into a body and
one blob per channel by slicing bytes (`_migrate_msgpack`), so values keep their bytes and
type tags; writing composes the map back the same way. Only a value whose type tag cannot be
embedded as msgpack is decoded (with the source's serializer) and encoded again.
"""

from __future__ import annotations

import inspect
import sqlite3
from collections import defaultdict
from collections.abc import Sequence
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ._convert import UNREADABLE, blob_map, raise_if_damaged, whole_list
from ._errors import DamagedDataError, StorageError
from ._lists import HEAD, is_segment
from ._metadata import decode_metadata, encode_metadata
from ._migrate_msgpack import (
    JSONPLUS_READS,
    KEEP_IT,
    compose_checkpoint,
    for_jsonplus,
    jsonplus_write_rows,
    split_checkpoint,
    standalone_value,
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
from .serde import UnsupportedTypeError

__all__ = ["LangGraphSqliteSide"]

T = TypeVar("T")

_TABLES_SQL = "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'checkpoints'"
_HAS_TASK_PATH_SQL = "SELECT COUNT(*) FROM pragma_table_info('writes') WHERE name = 'task_path'"
# The size: checkpoints (channel values inline) with their metadata, and pending writes.
_THREADS_SQL = (
    "SELECT c.thread_id, COUNT(*), MAX(c.checkpoint_id), "
    "SUM(LENGTH(c.checkpoint) + LENGTH(c.metadata)) + COALESCE((SELECT SUM(LENGTH(w.value)) "
    "FROM writes w WHERE w.thread_id = c.thread_id), 0) FROM checkpoints c "
    "WHERE c.thread_id > ? GROUP BY c.thread_id ORDER BY c.thread_id LIMIT ?"
)
_NAMESPACES_SQL = "SELECT DISTINCT checkpoint_ns FROM checkpoints WHERE thread_id = ?"
_CHECKPOINTS_SQL = (
    "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint, metadata "
    "FROM checkpoints WHERE thread_id = ?"
)
_WRITES_SQL = (
    "SELECT checkpoint_ns, checkpoint_id, task_id, {task_path}, idx, channel, type, value "
    "FROM writes WHERE thread_id = ?"
)
_LINKS_SQL = (
    "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM checkpoints WHERE thread_id = ?"
)
# Some checkpoints of one namespace: `_by_ids` appends " IN (?, ?, ...)".
_SOME = " AND checkpoint_ns = ? AND checkpoint_id"
_IN_LIST = 500  # ids bound per statement, far below SQLite's smallest limit (999)
_PUT_CHECKPOINT_SQL = (
    "INSERT OR REPLACE INTO checkpoints (thread_id, checkpoint_ns, checkpoint_id, "
    "parent_checkpoint_id, type, checkpoint, metadata) VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_WRITE_COLUMNS = (
    "writes (thread_id, checkpoint_ns, checkpoint_id, task_id, task_path, idx, channel, "
    "type, value) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_INSERT_WRITES_SQL = "INSERT OR IGNORE INTO " + _WRITE_COLUMNS
_UPSERT_WRITES_SQL = "INSERT OR REPLACE INTO " + _WRITE_COLUMNS


class LangGraphSqliteSide(Side):
    """The storage of a `langgraph.checkpoint.sqlite` `SqliteSaver` or `AsyncSqliteSaver`.

    Args:
        saver: The official saver; its connection (sqlite3 or aiosqlite) and lock are used.
        label: How reports name it.
    """

    shared_blobs = False

    native_tags = JSONPLUS_READS

    def __init__(self, saver: Any, label: str | None = None) -> None:
        super().__init__(label or f"{type(saver).__name__} tables")
        self.saver = saver
        self._async = not isinstance(saver.conn, sqlite3.Connection)
        self._task_path: bool | None = None

    @property
    def serde(self) -> SerializerProtocol:
        serde: SerializerProtocol = self.saver.serde
        return serde

    # -- running ---------------------------------------------------------------------------

    def _execute(self, request: Any) -> Any:
        conn: sqlite3.Connection = self.saver.conn
        if not conn.in_transaction:
            conn.execute("BEGIN")
        if isinstance(request, SqlMany):
            conn.executemany(request.sql, request.rows)
            return None
        return conn.execute(request.sql, request.params).fetchall()

    def run(self, plan: Plan[T]) -> T:
        if self._async:
            raise StorageError(f"{self.label} is async: use amigrate()/averify()")
        conn: sqlite3.Connection = self.saver.conn
        with self.saver.lock:
            try:
                result = run(plan, self._execute)
            except sqlite3.Error as exc:
                conn.rollback()
                raise StorageError(f"{self.label}: {exc}") from exc
            except BaseException:
                conn.rollback()
                raise
            conn.commit()
            return result

    async def _aexecute(self, request: Any) -> Any:
        conn = self.saver.conn
        if not conn.in_transaction:
            await conn.execute("BEGIN")
        if isinstance(request, SqlMany):
            await conn.executemany(request.sql, request.rows)
            return None
        async with conn.execute(request.sql, request.params) as cursor:
            return list(await cursor.fetchall())

    async def arun(self, plan: Plan[T]) -> T:
        if not self._async:
            return self.run(plan)
        conn = self.saver.conn
        try:
            async with AsyncLock(self.saver.lock):
                result = await arun(plan, self._aexecute)
        except sqlite3.Error as exc:
            await conn.rollback()
            raise StorageError(f"{self.label}: {exc}") from exc
        except BaseException:
            await conn.rollback()
            raise
        await conn.commit()
        return result

    # -- plans -----------------------------------------------------------------------------

    def setup(self) -> None:
        if self._async:
            raise StorageError(f"{self.label} is async: use amigrate()/averify()")
        self.saver.setup()

    async def asetup(self) -> None:
        outcome = self.saver.setup()
        if inspect.isawaitable(outcome):
            await outcome

    def _ready(self) -> Plan[bool]:
        if self._task_path is None:
            rows = yield SqlQuery(_TABLES_SQL)
            if not rows[0][0]:
                return False
            rows = yield SqlQuery(_HAS_TASK_PATH_SQL)
            self._task_path = bool(rows[0][0])
        return True

    def thread_page(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        if not (yield from self._ready()):
            return []
        rows = yield SqlQuery(_THREADS_SQL, (after if after is not None else "", limit))
        infos = []
        for thread_id, count, newest, size in rows:
            if after is None or thread_id > after:
                namespaces = yield SqlQuery(_NAMESPACES_SQL, (thread_id,))
                infos.append(
                    ThreadInfo(
                        thread_id=thread_id,
                        checkpoint_count=count,
                        last_checkpoint_id=newest,
                        updated_at=uuid6_epoch(newest),
                        size_bytes=size,
                        namespaces=tuple(sorted(ns for (ns,) in namespaces)),
                    )
                )
        return infos

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
        writes: list[Any] = []
        for ns, ids in ids_by_namespace(keys).items():
            for start in range(0, len(ids), _IN_LIST):
                chunk = ids[start : start + _IN_LIST]
                params = (thread_id, ns, *chunk)
                checkpoints += yield SqlQuery(_by_ids(_CHECKPOINTS_SQL, len(chunk)), params)
                statement = _by_ids(_WRITES_SQL.format(task_path=task_path), len(chunk))
                writes += yield SqlQuery(statement, params)
        return self._rows(thread_id, checkpoints, writes)

    def read_thread(self, thread_id: str) -> Plan[list[CheckpointRow]]:
        if not (yield from self._ready()):
            return []
        checkpoints = yield SqlQuery(_CHECKPOINTS_SQL, (thread_id,))
        task_path = "task_path" if self._task_path else "''"
        writes = yield SqlQuery(_WRITES_SQL.format(task_path=task_path), (thread_id,))
        return self._rows(thread_id, checkpoints, writes)

    def _rows(
        self, thread_id: str, checkpoints: Sequence[Any], writes: Sequence[Any]
    ) -> list[CheckpointRow]:
        by_checkpoint: dict[Key, list[WriteRecord]] = defaultdict(list)
        for ns, cid, task_id, path, idx, channel, type_, value in writes:
            by_checkpoint[(ns, cid)].append(
                WriteRecord(thread_id, ns, cid, task_id, idx, channel, type_, value or b"", path)
            )
        return [
            self._row(thread_id, row, tuple(by_checkpoint.get((row[0], row[1]), ())))
            for row in checkpoints
        ]

    def _decoded(
        self, thread_id: str, ns: str, checkpoint_id: str, type_: str, data: bytes
    ) -> dict[str, Any]:
        """A checkpoint the saver's serializer decodes whole (values inline), or the error
        naming it: an encrypted one (`msgpack+aes`) needs the key (`LANGGRAPH_AES_KEY`)."""
        try:
            return dict(self.serde.loads_typed((type_, data)))
        except (NotImplementedError, *UNREADABLE) as exc:  # the official: unknown type tag
            encryption = None
            if "+" in type_:  # `{tag}+{cipher}`: LangGraph's EncryptedSerializer wrote it
                encryption = "failed" if isinstance(self.serde, EncryptedSerializer) else "no key"
            raise DamagedDataError(
                f"the checkpoint (type {type_!r})",
                thread_id=thread_id,
                checkpoint_ns=ns,
                checkpoint_id=checkpoint_id,
                detail=f"{type(exc).__name__}: {exc}",
                encryption=encryption,
            ) from exc

    def _row(
        self, thread_id: str, stored: Sequence[Any], writes: tuple[WriteRecord, ...]
    ) -> CheckpointRow:
        ns, checkpoint_id, parent_id, type_, data, metadata = stored
        if type_ == "msgpack":
            split = split_checkpoint(data)
            body_type, body = "msgpack", split.body
            values = {ch: standalone_value(raw) for ch, raw in split.values.items()}
            versions, ts = split.channel_versions, split.ts
        else:  # an old "json" or an encrypted checkpoint: decode it, encode it again
            full = self._decoded(thread_id, ns, checkpoint_id, type_, data)
            decoded = full.pop("channel_values", None) or {}
            body_type, body = self.serde.dumps_typed(full)
            values = {ch: self.serde.dumps_typed(v) for ch, v in decoded.items()}
            versions, ts = full.get("channel_versions") or {}, full.get("ts")
        str_versions = {ch: str(v) for ch, v in versions.items()}
        blobs = tuple(
            BlobRecord(thread_id, ns, ch, str_versions[ch], *values[ch])
            for ch in str_versions
            if ch in values
        )
        meta = decode_metadata(metadata) if metadata else {}
        run_id = meta.get("run_id")
        record = CheckpointRecord(
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=checkpoint_id,
            parent_checkpoint_id=parent_id or None,
            type=body_type,
            checkpoint=body,
            metadata=encode_metadata(meta),
            channel_versions=str_versions,
            run_id=str(run_id) if run_id is not None else None,
            created_at=ts_to_epoch(ts) or uuid6_epoch(checkpoint_id) or 0.0,
        )
        return CheckpointRow(record, blobs, writes)

    def write(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> Plan[None]:
        checkpoints = []
        inserts: list[tuple[Any, ...]] = []
        upserts: list[tuple[Any, ...]] = []
        try:
            for row in rows:
                rec = row.checkpoint
                type_, data = self._compose(row, serde)
                checkpoints.append(
                    (
                        rec.thread_id,
                        rec.checkpoint_ns,
                        rec.checkpoint_id,
                        rec.parent_checkpoint_id,
                        type_,
                        data,
                        rec.metadata,
                    )
                )
                jsonplus_write_rows(row.writes, serde, self.serde, inserts, upserts)
        except UNREADABLE as exc:
            # A value this migration must decode (to re-encode it for LangGraph) is damaged.
            raise_if_damaged(serde, row, exc)
            raise
        # Writes first, checkpoints last: in one transaction anyway, but the order keeps a
        # checkpoint from ever being visible without its writes under weaker isolation.
        if inserts:
            yield SqlMany(_INSERT_WRITES_SQL, inserts)
        if upserts:
            yield SqlMany(_UPSERT_WRITES_SQL, upserts)
        yield SqlMany(_PUT_CHECKPOINT_SQL, checkpoints)

    def _compose(self, row: CheckpointRow, serde: SerializerProtocol) -> tuple[str, bytes]:
        rec = row.checkpoint
        blobs = blob_map(row)
        values = {}
        for channel, version in rec.channel_versions.items():
            blob = blobs.get((channel, version))
            if blob is None or blob.type == EMPTY or is_segment(channel):
                continue
            what = value_of(rec, channel)
            if blob.type == HEAD:  # a list in segments: whole again
                blob = whole_list(serde, blob, blobs)
            if blob.type == "bytearray":
                raise UnsupportedTypeError(
                    f"{what} cannot go into LangGraph's SQLite storage unchanged: it is a "
                    "bytearray, and that format keeps channel values inside the checkpoint's "
                    f"msgpack, where a bytearray reads back as bytes. {KEEP_IT}."
                )
            values[channel] = for_jsonplus(blob.type, as_bytes(blob.data), serde, self.serde, what)
        body_type, body = rec.type, rec.checkpoint
        if body_type != "msgpack":  # another serializer's format: the body is plain data
            body_type, body = self.serde.dumps_typed(serde.loads_typed((body_type, body)))
        if body_type == "msgpack":
            composed = compose_checkpoint(body, values)
            if composed is not None:
                return "msgpack", composed
        full = dict(serde.loads_typed((rec.type, rec.checkpoint)))
        full["channel_values"] = {ch: serde.loads_typed(v) for ch, v in values.items()}
        typed: tuple[str, bytes] = self.serde.dumps_typed(full)
        return typed


def _by_ids(statement: str, count: int) -> str:
    """`statement` (of one thread) narrowed to one namespace and `count` bound ids."""
    return statement + _SOME + " IN (" + ", ".join("?" * count) + ")"

"""The SQLite schema and statements: constants and pure builders, plus row mappers.

Tables (prefix `cp_`, so a file may also hold the official saver's `checkpoints`/`writes`):

- `cp_checkpoints`: one row per checkpoint, without channel values. `metadata` is JSON text
  (filters run on it with `json_extract`); `channel_versions` is JSON text, so a read joins
  the blobs a checkpoint needs through `json_each` in the same statement.
- `cp_blobs`: one row per (thread, namespace, channel, version), written only for the
  channels of a put's `new_versions`.
- `cp_writes`: pending writes per (thread, namespace, checkpoint, task, idx).

One read statement returns a whole page: checkpoint rows, the distinct blobs they read and
their writes, told apart by a leading tag column (`UNION ALL` of three selects over one
materialized page). Measured on a 100-step thread (see `_backend.py`).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from checkpoint_base import BlobRecord, CheckpointRecord, CheckpointRow, ListQuery, WriteRecord

from ._filter import filter_sql
from ._requests import Row

__all__ = [
    "INSERT_BLOB",
    "MIGRATIONS",
    "UPSERT_CHECKPOINT",
    "UPSERT_WRITE",
    "blob_rows",
    "checkpoint_row",
    "history_sql",
    "page_rows",
    "page_sql",
    "put_rows",
    "put_statements",
    "write_rows",
    "write_statements",
]

MIGRATIONS: list[tuple[str, ...]] = [
    # v0: the storage model of ARCHITECTURE.md.
    (
        """CREATE TABLE cp_checkpoints (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            parent_checkpoint_id TEXT,
            type TEXT NOT NULL,
            checkpoint BLOB NOT NULL,
            metadata TEXT NOT NULL,
            channel_versions TEXT NOT NULL,
            run_id TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        # list(thread) over every namespace, newest first, without sorting the thread.
        "CREATE INDEX cp_checkpoints_newest ON cp_checkpoints"
        " (thread_id, checkpoint_id, checkpoint_ns)",
        "CREATE INDEX cp_checkpoints_run ON cp_checkpoints (run_id) WHERE run_id IS NOT NULL",
        """CREATE TABLE cp_blobs (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            channel TEXT NOT NULL,
            version TEXT NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        """CREATE TABLE cp_writes (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            task_path TEXT NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        )""",
    ),
    # v1: a put in one statement (see PUT_INTO): rows inserted into this view are routed to
    # their table by INSTEAD OF triggers, all inside the one statement's transaction.
    (
        "CREATE VIEW cp_put (kind, thread_id, checkpoint_ns, k1, k2, k3, type, data, t1, t2, n)"
        " AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
        """CREATE TRIGGER cp_put_blob INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'b' BEGIN
            INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.type, NEW.data)
            ON CONFLICT DO NOTHING;
        END""",
        """CREATE TRIGGER cp_put_write INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'w' BEGIN
            INSERT INTO cp_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                channel, type, data, task_path)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.n, NEW.k3, NEW.type,
                NEW.data, NEW.t1)
            ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
                channel = excluded.channel, type = excluded.type, data = excluded.data,
                task_path = excluded.task_path WHERE excluded.idx < 0;
        END""",
        """CREATE TRIGGER cp_put_checkpoint INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'c'
        BEGIN
            INSERT INTO cp_checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                parent_checkpoint_id, type, checkpoint, metadata, channel_versions, run_id,
                created_at)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.type, NEW.data,
                NEW.t1, NEW.t2, NEW.k3, NEW.n)
            ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
                parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,
                checkpoint = excluded.checkpoint, metadata = excluded.metadata,
                channel_versions = excluded.channel_versions, run_id = excluded.run_id;
        END""",
    ),
]
"""Schema migrations: position in the list is the version recorded in `cp_migrations`."""

MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS cp_migrations (v INTEGER PRIMARY KEY)"
HAS_MIGRATIONS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cp_migrations'"
CURRENT_VERSION = "SELECT max(v) FROM cp_migrations"
RECORD_VERSION = "INSERT INTO cp_migrations (v) VALUES (?)"

# -- writes -----------------------------------------------------------------------------------

_MAX_PARAMS = 999  # bound values per statement: SQLite's smallest default limit (< 3.32)

# A put in two forms (see `_requests.Atomic`). Plain: BEGIN, INSERT_BLOB (executemany),
# UPSERT_CHECKPOINT, COMMIT. Single: `INSERT INTO cp_put VALUES (...), (...)`, a row per
# blob, write and the checkpoint (last), atomic by itself, so run in autocommit. Measured on
# the benchmark's 100-step thread (payload 512, 2.4 blobs per put, SQLite 3.40, medians of
# 6 interleaved rounds): sqlite3 122 us plain vs 159 us single (the triggers copy each
# blob once more); aiosqlite 725 us plain (4 thread hops) vs 361 us single (1 hop), on a
# loaded 2-core machine. The sync flavor runs plain, the async flavor single.
_PUT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_PUT_WIDTH = 11
_WRITE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_WRITE_WIDTH = 9
_UPSERT_WRITE_TAIL = (
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET"
    " channel = excluded.channel, type = excluded.type, data = excluded.data,"
    " task_path = excluded.task_path WHERE excluded.idx < 0"
)


INSERT_BLOB = (
    "INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)"
    " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING"
)
# Replaces the checkpoint but keeps when it was first stored.
UPSERT_CHECKPOINT = (
    "INSERT INTO cp_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
    " type, checkpoint, metadata, channel_versions, run_id, created_at)"
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET"
    " parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,"
    " checkpoint = excluded.checkpoint, metadata = excluded.metadata,"
    " channel_versions = excluded.channel_versions, run_id = excluded.run_id"
)


def blob_rows(blobs: Sequence[BlobRecord]) -> list[tuple[object, ...]]:
    """The rows of `INSERT_BLOB`."""
    return [(b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.data) for b in blobs]


def checkpoint_row(r: CheckpointRecord) -> tuple[object, ...]:
    """The row of `UPSERT_CHECKPOINT`."""
    return (
        *(r.thread_id, r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id, r.type),
        *(r.checkpoint, _metadata_text(r), _versions_text(r), r.run_id, r.created_at),
    )


def put_rows(
    checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord], writes: Sequence[WriteRecord]
) -> list[tuple[object, ...]]:
    """The `cp_put` rows of a put: blobs, writes, then the checkpoint.

    Columns: kind, thread_id, checkpoint_ns, k1, k2, k3, type, data, t1, t2, n (see v1).
    """
    rows: list[tuple[object, ...]] = []
    for b in blobs:
        rows.append(
            (
                *("b", b.thread_id, b.checkpoint_ns, b.channel, b.version, None),
                *(b.type, b.data, None, None, None),
            )
        )
    for w in writes:
        rows.append(
            (
                *("w", w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.channel),
                *(w.type, w.data, w.task_path, None, w.idx),
            )
        )
    r = checkpoint
    rows.append(
        (
            *("c", r.thread_id, r.checkpoint_ns, r.checkpoint_id, r.parent_checkpoint_id),
            *(r.run_id, r.type, r.checkpoint, _metadata_text(r), _versions_text(r)),
            r.created_at,
        )
    )
    return rows


def write_rows(writes: Sequence[WriteRecord]) -> list[tuple[object, ...]]:
    """The rows of `UPSERT_WRITE` and of `write_statements`."""
    return [
        (
            *(w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx),
            *(w.channel, w.type, w.data, w.task_path),
        )
        for w in writes
    ]


def put_statements(rows: Sequence[tuple[object, ...]]) -> list[tuple[str, list[object]]]:
    """Multi-row `INSERT INTO cp_put` statements for `put_rows` (one unless very many)."""
    return _chunked("INSERT INTO cp_put VALUES ", _PUT_ROW, _PUT_WIDTH, "", rows)


_INSERT_WRITE = (
    "INSERT INTO cp_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,"
    " type, data, task_path) VALUES "
)
# One statement for both rules of `WriteRecord`: idx < 0 replaces, idx >= 0 keeps the first.
UPSERT_WRITE = _INSERT_WRITE + _WRITE_ROW + _UPSERT_WRITE_TAIL


def write_statements(rows: Sequence[tuple[object, ...]]) -> list[tuple[str, list[object]]]:
    """Multi-row `UPSERT_WRITE`s of `write_rows` (one unless very many)."""
    return _chunked(_INSERT_WRITE, _WRITE_ROW, _WRITE_WIDTH, _UPSERT_WRITE_TAIL, rows)


def _chunked(
    head: str, row: str, width: int, tail: str, rows: Sequence[tuple[object, ...]]
) -> list[tuple[str, list[object]]]:
    per = _MAX_PARAMS // width
    out = []
    for start in range(0, len(rows), per):
        chunk = rows[start : start + per]
        params = [value for r in chunk for value in r]
        out.append((head + ", ".join([row] * len(chunk)) + tail, params))
    return out


def _metadata_text(r: CheckpointRecord) -> str:
    return r.metadata.decode("utf-8")  # TEXT: the JSON functions read text, not BLOBs


def _versions_text(r: CheckpointRecord) -> str:
    return json.dumps(dict(r.channel_versions), ensure_ascii=False, separators=(",", ":"))


DELETE_THREAD = (
    "DELETE FROM cp_writes WHERE thread_id = ?",
    "DELETE FROM cp_blobs WHERE thread_id = ?",
    "DELETE FROM cp_checkpoints WHERE thread_id = ?",
)
DELETE_CHECKPOINT_WRITES = (
    "DELETE FROM cp_writes WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
DELETE_CHECKPOINT = (
    "DELETE FROM cp_checkpoints WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?"
)
DELETE_BLOB = (
    "DELETE FROM cp_blobs WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"
)
THREAD_CHECKPOINT_KEYS = (
    "SELECT checkpoint_ns, checkpoint_id FROM cp_checkpoints WHERE thread_id = ?"
)
THREAD_VERSIONS = "SELECT checkpoint_ns, channel_versions FROM cp_checkpoints WHERE thread_id = ?"
THREAD_BLOB_KEYS = "SELECT checkpoint_ns, channel, version FROM cp_blobs WHERE thread_id = ?"
# Per (thread, namespace) of the `limit` threads after a thread id; `after` is a fixed fragment.
THREAD_SUMMARIES = (
    "SELECT thread_id, checkpoint_ns, count(*), max(checkpoint_id), max(created_at),"
    " sum(length(checkpoint) + length(CAST(metadata AS BLOB))) FROM cp_checkpoints"
    " WHERE thread_id IN (SELECT DISTINCT thread_id FROM cp_checkpoints WHERE {after}"
    " ORDER BY thread_id LIMIT ?) GROUP BY thread_id, checkpoint_ns"
    " ORDER BY thread_id, checkpoint_ns"
)


def run_checkpoints_sql(count: int) -> str:
    """The keys of the checkpoints of `count` run ids (bound, one `?` each)."""
    marks = ", ".join("?" * count)
    return f"{_RUN_CHECKPOINTS} ({marks})"


_RUN_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id FROM cp_checkpoints WHERE run_id IN"
)


GET_BLOB = (
    "SELECT thread_id, checkpoint_ns, channel, version, type, data FROM cp_blobs"
    " WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"
)

COPY_THREAD = (
    "INSERT INTO cp_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
    " type, checkpoint, metadata, channel_versions, run_id, created_at)"
    " SELECT ?2, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
    " metadata, channel_versions, run_id, created_at FROM cp_checkpoints WHERE thread_id = ?1"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET"
    " parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,"
    " checkpoint = excluded.checkpoint, metadata = excluded.metadata,"
    " channel_versions = excluded.channel_versions, run_id = excluded.run_id",
    "INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)"
    " SELECT ?2, checkpoint_ns, channel, version, type, data FROM cp_blobs WHERE thread_id = ?1"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO cp_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,"
    " type, data, task_path)"
    " SELECT ?2, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, data, task_path"
    " FROM cp_writes WHERE thread_id = ?1"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET"
    " channel = excluded.channel, type = excluded.type, data = excluded.data,"
    " task_path = excluded.task_path WHERE excluded.idx < 0",
)


# -- reads ------------------------------------------------------------------------------------

_CHECKPOINT_COLUMNS = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
    " metadata, channel_versions, run_id, created_at"
)
CHECKPOINT_COLUMNS = _CHECKPOINT_COLUMNS

# Tag 0: a checkpoint (pos orders a history walk); tag 1: a blob; tag 2: a write.
# CROSS JOIN fixes the loop order (SQLite's documented planner control): the page drives
# index searches into blobs and writes. Left to itself, SQLite 3.51 scans every write.
# (S608: every f-string of this module joins constant fragments; values are bound.)
_PAGE_TAIL = f"""
SELECT 0, pos, {_CHECKPOINT_COLUMNS} FROM page
UNION ALL
SELECT 1, NULL, b.thread_id, b.checkpoint_ns, b.channel, b.version, b.type, b.data,
       NULL, NULL, NULL, NULL
FROM (SELECT DISTINCT p.thread_id, p.checkpoint_ns, j.key AS channel, j.value AS version
      FROM page AS p, json_each(p.channel_versions) AS j) AS k
CROSS JOIN cp_blobs AS b ON b.thread_id = k.thread_id AND b.checkpoint_ns = k.checkpoint_ns
    AND b.channel = k.channel AND b.version = k.version
UNION ALL
SELECT 2, w.idx, w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.type, w.data,
       w.channel, w.task_path, NULL, NULL
FROM page AS p CROSS JOIN cp_writes AS w ON w.thread_id = p.thread_id
    AND w.checkpoint_ns = p.checkpoint_ns AND w.checkpoint_id = p.checkpoint_id"""  # noqa: S608

_ORDER = "ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC"


def page_sql(query: ListQuery) -> tuple[str, list[object]]:
    """One statement that returns a `list_page`: checkpoints, their blobs and writes."""
    where: list[str] = []
    params: list[object] = []
    if query.thread_id is not None:
        where.append("thread_id = ?")
        params.append(query.thread_id)
    if query.checkpoint_ns is not None:
        where.append("checkpoint_ns = ?")
        params.append(query.checkpoint_ns)
    if query.checkpoint_id is not None:
        where.append("checkpoint_id = ?")
        params.append(query.checkpoint_id)
    if query.before is not None:
        where.append("checkpoint_id < ?")
        params.append(query.before)
    if query.cursor is not None:
        cid, tid, ns = query.cursor
        # Equal leading columns drop out of the row-value comparison, so the index on
        # (thread_id, checkpoint_ns | checkpoint_id, ...) serves it as a range.
        if tid == query.thread_id and ns == query.checkpoint_ns:
            where.append("checkpoint_id < ?")
            params.append(cid)
        elif tid == query.thread_id:
            where.append("(checkpoint_id, checkpoint_ns) < (?, ?)")
            params.extend((cid, ns))
        else:
            where.append("(checkpoint_id, thread_id, checkpoint_ns) < (?, ?, ?)")
            params.extend((cid, tid, ns))
    if query.filter:
        conditions, filter_params = filter_sql(query.filter)
        where.extend(conditions)
        params.extend(filter_params)
    where_sql = " AND ".join(where) if where else "1"
    params.append(query.limit)
    sql = (
        f"WITH page AS (SELECT NULL AS pos, {_CHECKPOINT_COLUMNS}"  # noqa: S608
        f" FROM cp_checkpoints WHERE {where_sql} {_ORDER} LIMIT ?){_PAGE_TAIL}"
    )
    return sql, params


HISTORY_SQL = f"""WITH RECURSIVE chain(pos, thread_id, checkpoint_ns, checkpoint_id, parent) AS (
    SELECT 0, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM cp_checkpoints
    WHERE thread_id = ?1 AND checkpoint_ns = ?2 AND checkpoint_id = ?3
    UNION ALL
    SELECT chain.pos + 1, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id
    FROM chain CROSS JOIN cp_checkpoints AS c ON c.thread_id = chain.thread_id
        AND c.checkpoint_ns = chain.checkpoint_ns AND c.checkpoint_id = chain.parent
    WHERE chain.pos + 1 < ?4
),
page AS (
    SELECT chain.pos AS pos, {", ".join("c." + c for c in _CHECKPOINT_COLUMNS.split(", "))}
    FROM chain CROSS JOIN cp_checkpoints AS c ON c.thread_id = chain.thread_id
        AND c.checkpoint_ns = chain.checkpoint_ns AND c.checkpoint_id = chain.checkpoint_id
){_PAGE_TAIL}"""  # noqa: S608


def history_sql(
    thread_id: str, checkpoint_ns: str, checkpoint_id: str, limit: int
) -> tuple[str, list[object]]:
    """One statement that follows parent links: up to `limit` rows with blobs and writes."""
    return HISTORY_SQL, [thread_id, checkpoint_ns, checkpoint_id, limit]


def checkpoint_record(row: Row) -> CheckpointRecord:
    """A `CheckpointRecord` from the ten `CHECKPOINT_COLUMNS`."""
    (tid, ns, cid, parent, type_, body, metadata, versions, run_id, created_at) = row
    return CheckpointRecord(
        thread_id=tid,
        checkpoint_ns=ns,
        checkpoint_id=cid,
        parent_checkpoint_id=parent,
        type=type_,
        checkpoint=body,
        metadata=metadata.encode("utf-8"),
        channel_versions=json.loads(versions),
        run_id=run_id,
        created_at=created_at,
    )


BlobKey = tuple[str, str, str, str]  # (thread_id, checkpoint_ns, channel, version)


def page_rows(
    rows: Sequence[Row], extra_blobs: Sequence[Row] = ()
) -> tuple[list[CheckpointRow], list[BlobKey]]:
    """Group the tagged rows of `page_sql` / `history_sql` into `CheckpointRow`s.

    Args:
        rows: The statement's rows.
        extra_blobs: Rows of `GET_BLOB` fetched for keys this function reported missing.

    Returns:
        The rows, newest first (history: in walk order), and the keys of blobs the
        statement could not join: channel names holding NUL, which `json_each` of SQLite
        before 3.45 cuts short. The caller fetches those by key.
    """
    checkpoints: list[tuple[int | None, CheckpointRecord]] = []
    blobs: dict[BlobKey, BlobRecord] = {}
    writes: dict[tuple[str, str, str], list[WriteRecord]] = {}
    for row in rows:
        tag = row[0]
        if tag == 0:
            checkpoints.append((row[1], checkpoint_record(row[2:])))
        elif tag == 1:
            _, _, tid, ns, channel, version, type_, data = row[:8]
            blobs[(tid, ns, channel, version)] = BlobRecord(tid, ns, channel, version, type_, data)
        else:
            _, idx, tid, ns, cid, task_id, type_, data, channel, task_path = row[:10]
            writes.setdefault((tid, ns, cid), []).append(
                WriteRecord(tid, ns, cid, task_id, idx, channel, type_, data, task_path)
            )
    for tid, ns, channel, version, type_, data in extra_blobs:
        key = (tid, ns, channel, version)
        blobs[key] = BlobRecord(tid, ns, channel, version, type_, data)
    if checkpoints and checkpoints[0][0] is not None:
        checkpoints.sort(key=lambda item: item[0] or 0)
    else:
        checkpoints.sort(
            key=lambda item: (item[1].checkpoint_id, item[1].thread_id, item[1].checkpoint_ns),
            reverse=True,
        )
    missing: list[BlobKey] = []
    page: list[CheckpointRow] = []
    for _, rec in checkpoints:
        found = []
        for channel, version in rec.channel_versions.items():
            key = (rec.thread_id, rec.checkpoint_ns, channel, version)
            blob = blobs.get(key)
            if blob is not None:
                found.append(blob)
            elif "\x00" in channel or "\x00" in version:
                missing.append(key)
        page.append(
            CheckpointRow(
                rec,
                tuple(found),
                tuple(writes.get((rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id), ())),
            )
        )
    return page, missing

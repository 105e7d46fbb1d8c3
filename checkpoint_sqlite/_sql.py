"""SQLite write statements: constants and pure builders of `(sql, params)`.

Every value is bound; the only text built at run time is a list of `?` placeholders.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from checkpoint_base import BlobRecord, CheckpointRecord, WriteRecord

from ._schema import WIDE_SLOTS

__all__ = [
    "CHECK_PARENT",
    "COPY_THREAD",
    "INSERT_BLOB",
    "LEASE",
    "PUT_CHILD_WIDE",
    "PUT_WIDE",
    "SPACE",
    "TAKE_LEASE",
    "TRUNCATE_WAL",
    "UPSERT_CHECKPOINT",
    "UPSERT_WRITE",
    "VACUUM",
    "blob_rows",
    "checkpoint_row",
    "parent_row",
    "put_rows",
    "put_statements",
    "run_checkpoints_sql",
    "wide_put_params",
    "write_rows",
    "write_statements",
]

# A lease (`Backend.claim`, v4): read, then taken, in one write transaction.
LEASE = "SELECT holder, until FROM cp_leases WHERE name = ?"
TAKE_LEASE = """INSERT INTO cp_leases (name, holder, until) VALUES (?, ?, ?)
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until"""

_MAX_PARAMS = 999  # bound values per statement: SQLite's smallest default limit (< 3.32)

# A put in two forms (see `_requests.Atomic`). Plain: BEGIN, INSERT_BLOB (executemany),
# UPSERT_CHECKPOINT, COMMIT. Single: one row of `cp_put_wide` (`PUT_WIDE`) when the put has
# at most WIDE_SLOTS blobs and no writes, else `INSERT INTO cp_put VALUES (...), (...)`, a
# row per blob, write and the checkpoint (last); atomic by itself, so run in autocommit.
# (The wide row spares the copy below: 80 instead of 105 us for a 20 KB put, see v2.) Measured on
# the benchmark's 100-step thread (payload 512, 2.4 blobs per put, SQLite 3.40, medians of
# 6 interleaved rounds): sqlite3 122 us plain vs 159 us single (the triggers copy each
# blob once more); aiosqlite 725 us plain (4 thread hops) vs 361 us single (1 hop), on a
# loaded 2-core machine. The async flavor and the sync flavor's pool of connections run
# single (a shorter hold of the write lock: see `_sync.PooledExecutor`); the sync flavor's
# one shared connection (`:memory:`, a connection passed in) runs plain. A put that reads
# blobs its parent stored (`Backend.put_child`) checks the parent in the same statement:
# `PUT_CHILD_WIDE`, a leading 'p' row of `cp_put`, or `CHECK_PARENT` first in the plain form.
_PUT_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_PUT_WIDTH = 11
_WRITE_ROW = "(?, ?, ?, ?, ?, ?, ?, ?, ?)"
_WRITE_WIDTH = 9
_UPSERT_WRITE_TAIL = (
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET"
    " channel = excluded.channel, type = excluded.type, data = excluded.data,"
    " task_path = excluded.task_path WHERE excluded.idx < 0"
)


# The database's pages and its free ones, in bytes (`Backend.space`).
SPACE = (
    "SELECT p.page_count * s.page_size, f.freelist_count * s.page_size"
    " FROM pragma_page_count() AS p, pragma_page_size() AS s, pragma_freelist_count() AS f"
)
VACUUM = "VACUUM"
TRUNCATE_WAL = "PRAGMA wal_checkpoint(TRUNCATE)"

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


PUT_WIDE = "INSERT INTO cp_put_wide VALUES (" + ", ".join(["?"] * (10 + 4 * WIDE_SLOTS)) + ")"  # noqa: S608
# The same put, stored only while its parent is (migration v3); else it aborts, storing nothing.
PUT_CHILD_WIDE = PUT_WIDE.replace("cp_put_wide", "cp_put_child_wide", 1)
# The check alone, first statement of a put's transaction (the plain form of a child put).
CHECK_PARENT = "INSERT INTO cp_put (kind, thread_id, checkpoint_ns, k1) VALUES ('p', ?, ?, ?)"
_NO_BLOB = (None, None, None, None)


def wide_put_params(
    checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]
) -> list[object] | None:
    """The one row of `PUT_WIDE` for a put, or None when it does not fit one row.

    It fits when there are at most `WIDE_SLOTS` blobs, all of the checkpoint's thread and
    namespace (a put's always are).
    """
    if len(blobs) > WIDE_SLOTS:
        return None
    params = list(checkpoint_row(checkpoint))
    tid, ns = checkpoint.thread_id, checkpoint.checkpoint_ns
    for b in blobs:
        if b.thread_id != tid or b.checkpoint_ns != ns:
            return None
        params += (b.channel, b.version, b.type, b.data)
    params += _NO_BLOB * (WIDE_SLOTS - len(blobs))
    return params


def parent_row(checkpoint: CheckpointRecord) -> tuple[object, ...]:
    """The row of `CHECK_PARENT`."""
    return (checkpoint.thread_id, checkpoint.checkpoint_ns, checkpoint.parent_checkpoint_id)


def put_rows(
    checkpoint: CheckpointRecord,
    blobs: Sequence[BlobRecord],
    writes: Sequence[WriteRecord],
    *,
    child: bool = False,
) -> list[tuple[object, ...]]:
    """The `cp_put` rows of a put: blobs, writes, then the checkpoint; with `child`, first
    the row that checks the parent is stored (v3).

    Columns: kind, thread_id, checkpoint_ns, k1, k2, k3, type, data, t1, t2, n (see v1).
    """
    rows: list[tuple[object, ...]] = []
    if child:
        rows.append(("p", *parent_row(checkpoint), *(None,) * (_PUT_WIDTH - 4)))
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


# One encoder, not json.dumps(..., separators=...), which builds a JSONEncoder per call: that
# was half of the 4.2 us this took per put.
_versions_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _versions_text(r: CheckpointRecord) -> str:
    return _versions_json(dict(r.channel_versions))


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
THREAD_CHECKPOINT_LINKS = (
    "SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM cp_checkpoints"
    " WHERE thread_id = ?"
)
THREAD_VERSIONS = "SELECT checkpoint_ns, channel_versions FROM cp_checkpoints WHERE thread_id = ?"
THREAD_BLOB_KEYS = "SELECT checkpoint_ns, channel, version FROM cp_blobs WHERE thread_id = ?"
# Per (thread, namespace) of the `limit` threads after a thread id; `after` is a fixed fragment.
# A page of threads: those with checkpoints and those holding only writes (of checkpoints
# deleted while a graph still ran), merged in thread order. The ids come from skip scans of
# the two primary keys (one probe per thread, however many rows it has). A page of 100
# threads of 3,000 checkpoints: 104 ms, where a DISTINCT over both keys took 178 and one
# over the checkpoints alone 116 (the summaries are most of it); of 30 checkpoints: 1.53 ms,
# against 1.28 for checkpoints alone.
# Per namespace: a thread's checkpoint summary, or for a writes-only thread (count 0) the
# newest checkpoint id its writes name and their bytes. `{after}` is "1" or
# "thread_id > ?"; the parameters: (after,) limit + 1, (after,) limit + 1, limit.
_THREADS = (
    "WITH RECURSIVE"
    " ct(thread_id) AS (SELECT min(thread_id) FROM cp_checkpoints WHERE {after}"
    " UNION ALL SELECT (SELECT min(thread_id) FROM cp_checkpoints"
    " WHERE thread_id > ct.thread_id) FROM ct WHERE ct.thread_id IS NOT NULL LIMIT ?),"
    " wt(thread_id) AS (SELECT min(thread_id) FROM cp_writes WHERE {after}"
    " UNION ALL SELECT (SELECT min(thread_id) FROM cp_writes"
    " WHERE thread_id > wt.thread_id) FROM wt WHERE wt.thread_id IS NOT NULL LIMIT ?),"
    " t AS (SELECT thread_id FROM ct WHERE thread_id IS NOT NULL"
    " UNION SELECT thread_id FROM wt WHERE thread_id IS NOT NULL ORDER BY thread_id LIMIT ?)"
    " SELECT c.thread_id, c.checkpoint_ns, count(*), max(c.checkpoint_id), max(c.created_at),"
    " SIZE FROM cp_checkpoints c WHERE c.thread_id IN t GROUP BY c.thread_id, c.checkpoint_ns"
    " UNION ALL"
    " SELECT thread_id, checkpoint_ns, 0, max(checkpoint_id), NULL, WRITES_SIZE"
    " FROM cp_writes WHERE thread_id IN (SELECT thread_id FROM t WHERE NOT EXISTS"
    " (SELECT 1 FROM cp_checkpoints c WHERE c.thread_id = t.thread_id))"
    " GROUP BY thread_id, checkpoint_ns"
    " ORDER BY 1, 2"
)
_SIZE = (
    "sum(length(c.checkpoint) + length(CAST(c.metadata AS BLOB)))"
    " + coalesce((SELECT sum(length(b.data)) FROM cp_blobs b"
    " WHERE b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns), 0)"
    " + coalesce((SELECT sum(length(w.data)) FROM cp_writes w"
    " WHERE w.thread_id = c.thread_id AND w.checkpoint_ns = c.checkpoint_ns), 0)"
)
THREAD_SUMMARIES = _THREADS.replace("WRITES_SIZE", "sum(length(data))").replace("SIZE", _SIZE)
# A sweep's listing (`list_thread_ages`): no sizes, so no blob or write rows read for them:
# 2,000 threads of 40 agent steps (an 886 MB file), a whole sweep that found none idle took
# 63 ms, the listing with sizes 177 ms.
THREAD_AGES = _THREADS.replace("WRITES_SIZE", "NULL").replace("SIZE", "NULL")


def run_checkpoints_sql(count: int) -> str:
    """The keys of the checkpoints of `count` run ids (bound, one `?` each)."""
    marks = ", ".join("?" * count)
    return f"{_RUN_CHECKPOINTS} ({marks})"


_RUN_CHECKPOINTS = (
    "SELECT thread_id, checkpoint_ns, checkpoint_id FROM cp_checkpoints WHERE run_id IN"
)


COPY_THREAD = (
    "INSERT INTO cp_checkpoints (thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id,"
    " type, checkpoint, metadata, channel_versions, run_id, created_at)"
    " SELECT ?, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
    " metadata, channel_versions, run_id, created_at FROM cp_checkpoints WHERE thread_id = ?"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET"
    " parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,"
    " checkpoint = excluded.checkpoint, metadata = excluded.metadata,"
    " channel_versions = excluded.channel_versions, run_id = excluded.run_id",
    "INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)"
    " SELECT ?, checkpoint_ns, channel, version, type, data FROM cp_blobs WHERE thread_id = ?"
    " ON CONFLICT DO NOTHING",
    "INSERT INTO cp_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx, channel,"
    " type, data, task_path)"
    " SELECT ?, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, data, task_path"
    " FROM cp_writes WHERE thread_id = ?"
    " ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET"
    " channel = excluded.channel, type = excluded.type, data = excluded.data,"
    " task_path = excluded.task_path WHERE excluded.idx < 0",
)

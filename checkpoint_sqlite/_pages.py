"""SQLite reads: one statement per page, and the pure mappers from its rows to records.

One statement returns a whole page: checkpoint rows, the distinct blobs they read and their
writes, told apart by a leading tag column (`UNION ALL` of three selects over the page, a
CTE that SQLite materializes once because it is used three times). Measured on the
benchmark's 100-step thread: 38 us for the statement of the latest checkpoint with sqlite3.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from checkpoint_base import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    DamagedDataError,
    ListQuery,
    WriteRecord,
)

from ._filter import filter_sql
from ._requests import Row

__all__ = [
    "CHECKPOINT_COLUMNS",
    "GET_BLOB",
    "checkpoint_record",
    "history_sql",
    "page_rows",
    "page_sql",
]

GET_BLOB = (
    "SELECT thread_id, checkpoint_ns, channel, version, type, data FROM cp_blobs"
    " WHERE thread_id = ? AND checkpoint_ns = ? AND channel = ? AND version = ?"
)


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

# One checkpoint reads each blob once: no DISTINCT needed (32 us instead of 38 us for the
# latest checkpoint of the benchmark's 100-step thread).
_ONE_TAIL = _PAGE_TAIL.replace("SELECT DISTINCT p.thread_id", "SELECT p.thread_id")

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
        f" FROM cp_checkpoints WHERE {where_sql} {_ORDER} LIMIT ?)"
        + (_PAGE_TAIL if query.limit > 1 else _ONE_TAIL)
    )
    return sql, params


# `get`'s statements, with their parameters in this order: thread_id, checkpoint_ns,
# (checkpoint_id,) 1. The same as `page_sql` builds for the query; built once, they spare
# a `get` the query, the statement's text and a plan layer: `get_tuple` of a missing
# thread 12.4 -> 10.0 us (40 alternating runs of 500 calls, medians).
LATEST_SQL = page_sql(ListQuery(thread_id="", checkpoint_ns="", limit=1))[0]
BY_ID_SQL = page_sql(ListQuery(thread_id="", checkpoint_ns="", checkpoint_id="", limit=1))[0]

HISTORY_SQL = f"""WITH RECURSIVE chain(pos, thread_id, checkpoint_ns, checkpoint_id, parent) AS (
    SELECT 0, thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id FROM cp_checkpoints
    WHERE thread_id = ? AND checkpoint_ns = ? AND checkpoint_id = ?
    UNION ALL
    SELECT chain.pos + 1, c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id
    FROM chain CROSS JOIN cp_checkpoints AS c ON c.thread_id = chain.thread_id
        AND c.checkpoint_ns = chain.checkpoint_ns AND c.checkpoint_id = chain.parent
    WHERE chain.pos + 1 < ?
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
    try:
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
    except (ValueError, TypeError, AttributeError) as exc:
        raise DamagedDataError(
            "its channel_versions or metadata column",
            thread_id=tid,
            checkpoint_ns=ns,
            checkpoint_id=cid,
            detail=f"{type(exc).__name__}: {exc}",
        ) from exc


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
        try:
            for channel, version in rec.channel_versions.items():
                key = (rec.thread_id, rec.checkpoint_ns, channel, version)
                blob = blobs.get(key)
                if blob is not None:
                    found.append(blob)
                elif "\x00" in channel or "\x00" in version:
                    missing.append(key)
        except (TypeError, AttributeError) as exc:
            # Valid JSON of another shape: an array, a number, a version that is no string.
            raise DamagedDataError.of(rec, "its channel_versions column", exc) from exc
        page.append(
            CheckpointRow(
                rec,
                tuple(found),
                tuple(writes.get((rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id), ())),
            )
        )
    return page, missing

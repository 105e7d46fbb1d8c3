"""`get_tuple` latest and `list(limit=10)` cost the same on a short and on a long thread.

Measured in SQLite virtual-machine instructions (a progress handler called at each one),
which, unlike a timer, does not depend on the machine's load.
"""

from __future__ import annotations

import sqlite3

import pytest

from checkpoint_base import ListQuery
from checkpoint_sqlite import SqliteSaver
from checkpoint_sqlite._pages import history_sql, page_sql
from tests.conformance.builders import checkpoint, config


def _thread(saver: SqliteSaver, thread_id: str, length: int) -> list[str]:
    ids = []
    parent = None
    for step in range(length):
        ns = "" if step % 3 else "child:1"  # two namespaces interleaved
        stored = saver.put(
            config(thread_id, ns, parent if ns == "" else None),
            checkpoint({"a": step}, {"a": step + 1}),
            {"step": step},
            {"a": step + 1},
        )
        saver.put_writes(stored, [("a", step)], "task")
        if ns == "":
            parent = stored["configurable"]["checkpoint_id"]
            ids.append(parent)
    return ids


def _instructions(conn: sqlite3.Connection, sql: str, params: list[object]) -> int:
    count = 0

    def tick() -> int:
        nonlocal count
        count += 1
        return 0

    conn.set_progress_handler(tick, 1)
    try:
        rows = conn.execute(sql, params).fetchall()
    finally:
        conn.set_progress_handler(None, 1)
    assert rows
    return count


QUERIES = {
    "get latest": lambda tid, ids: page_sql(ListQuery(thread_id=tid, checkpoint_ns="", limit=1)),
    "get by id": lambda tid, ids: page_sql(
        ListQuery(thread_id=tid, checkpoint_ns="", checkpoint_id=ids[len(ids) // 2], limit=1)
    ),
    "list limit 10": lambda tid, ids: page_sql(ListQuery(thread_id=tid, limit=10)),
    "list ns limit 10": lambda tid, ids: page_sql(
        ListQuery(thread_id=tid, checkpoint_ns="", limit=10)
    ),
    "list next page": lambda tid, ids: page_sql(
        ListQuery(thread_id=tid, limit=10, cursor=(ids[len(ids) // 2], tid, ""))
    ),
    "history 10": lambda tid, ids: history_sql(tid, "", ids[-1], 10),
}


@pytest.mark.parametrize("name", list(QUERIES))
def test_cost_does_not_grow_with_the_thread(db_path: str, name: str) -> None:
    with SqliteSaver.from_conn_string(db_path) as saver:
        short = _thread(saver, "short", 30)
        long = _thread(saver, "long", 900)
        _thread(saver, "other", 300)  # rows of other threads around them
    conn = sqlite3.connect(db_path)
    try:
        sql, params = QUERIES[name]("short", short)
        small = _instructions(conn, sql, params)
        sql, params = QUERIES[name]("long", long)
        big = _instructions(conn, sql, params)
        plan = " ".join(str(r) for r in conn.execute("EXPLAIN QUERY PLAN " + sql, params))
    finally:
        conn.close()
    assert "FOR ORDER BY" not in plan  # no sort of the thread's rows
    assert "SCAN cp_" not in plan  # every table access is an index search
    assert big <= small * 1.1 + 50, (small, big)


def test_one_checkpoint_needs_no_distinct_blob_keys() -> None:
    one, _ = page_sql(ListQuery(thread_id="t", checkpoint_ns="", limit=1))
    page, _ = page_sql(ListQuery(thread_id="t", limit=10))
    assert "DISTINCT" not in one
    assert "DISTINCT" in page  # blobs shared by checkpoints of a page come back once

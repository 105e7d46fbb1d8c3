"""Prepared reads keep their generic plan once the tables have statistics.

A prepared statement is planned for its parameters ("custom") at its first five runs; then
PostgreSQL keeps one generic plan unless it estimates it dearer than the custom ones. A
generic plan estimates a parameter's LIMIT at a tenth of the rows: after an ANALYZE
(autovacuum runs one on any busy table) every `get_tuple` and every page smaller than a tenth
of its thread was planned again, ~0.2 ms each on a 100-step thread. `pg_prepared_statements`
counts both kinds.
"""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, config

RUNS = 20


def _fill(saver: PostgresSaver, threads: int = 4, steps: int = 30) -> None:
    for t in range(threads):
        for step in range(1, steps + 1):
            versions = {"messages": step, "other": 1}
            cp = checkpoint({"messages": [f"m{i}" for i in range(step)], "other": t}, versions)
            stored = saver.put(config(f"t{t}"), cp, {"step": step}, versions)
            saver.put_writes(stored, [("messages", step)], f"task-{step}")


def _plans(conn: psycopg.Connection[Any], marker: str) -> tuple[int, int]:
    """(generic, custom) plans of this session's prepared statements whose text has `marker`."""
    row = conn.execute(
        "SELECT coalesce(sum(generic_plans), 0), coalesce(sum(custom_plans), 0)"
        " FROM pg_prepared_statements WHERE statement LIKE %s",
        (f"%{marker}%",),
    ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def _analyzed(conn: psycopg.Connection[Any], schema: str) -> PostgresSaver:
    """A saver that prepares every statement at once, on filled tables with statistics."""
    saver = PostgresSaver(conn, schema=schema, prepare_threshold=0)
    saver.setup()
    _fill(saver)
    for table in ("checkpoints", "blobs", "writes"):
        conn.execute(sql.SQL("ANALYZE {}.{}").format(sql.Identifier(schema), sql.Identifier(table)))
    return saver


def test_get_tuple_keeps_its_generic_plan_after_analyze(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=0) as conn:
        saver = _analyzed(conn, schema)
        for _ in range(RUNS):
            for t in range(4):
                got = saver.get_tuple(config(f"t{t}"))
                assert got is not None and got.metadata["step"] == 30
        generic, custom = _plans(conn, "WITH page AS MATERIALIZED")
        assert generic + custom >= RUNS * 4  # the statement was found, and prepared
        assert custom <= 5, f"{custom} custom plans: the get statement is planned at each call"


def test_a_small_list_page_keeps_its_generic_plan_after_analyze(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=0) as conn:
        saver = _analyzed(conn, schema)
        for _ in range(RUNS):
            for t in range(4):
                page = list(saver.list(config(f"t{t}"), limit=2))  # a fifteenth of the thread
                assert [p.metadata["step"] for p in page] == [30, 29]
        generic, custom = _plans(conn, "WITH page AS MATERIALIZED")
        assert generic + custom >= RUNS * 4
        assert custom <= 5, f"{custom} custom plans: the page statement is planned at each call"

"""Deleting runs does work linear in the thread, whatever the thread's length.

The work is counted by the server (`EXPLAIN ANALYZE`: rows each scan of the checkpoints
table read, kept or filtered out), which is exact where a time would depend on the machine.
"""

from __future__ import annotations

import json
from typing import Any

import psycopg

from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, cid, config

STEPS = 400


def _checkpoint_rows_read(plan: dict[str, Any]) -> int:
    """Rows every scan of the checkpoints table read, over all its loops."""
    read = 0
    if plan.get("Relation Name") == "checkpoints":
        per_loop = plan["Actual Rows"] + plan.get("Rows Removed by Filter", 0)
        read += per_loop * plan["Actual Loops"]
    for child in plan.get("Plans", ()):
        read += _checkpoint_rows_read(child)
    return read


def test_deleting_one_run_reads_the_thread_once(
    pg_url: str, schema: str, admin: psycopg.Connection[Any]
) -> None:
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        saver.setup()
        parent = None
        for step in range(STEPS):  # a run per step, as one graph invoke per turn
            stored = saver.put(
                config("long", checkpoint_id=parent),
                checkpoint({"step": step, "x": step}, {"step": step + 1, "x": step + 1}),
                {"source": "loop", "step": step, "run_id": f"run-{step}"},
                {"step": step + 1, "x": step + 1},
            )
            parent = cid(stored)
        statement = saver.backend.sql.delete_runs
        with admin.transaction(force_rollback=True):
            (row,) = admin.execute(
                b"EXPLAIN (ANALYZE, FORMAT JSON) " + statement, {"runs": ["run-7"]}
            ).fetchall()
        raw = row[0]
        plan = (json.loads(raw) if isinstance(raw, str) else raw)[0]["Plan"]
        read = _checkpoint_rows_read(plan)
        # The live blob versions are read once (one pass over the thread), not once per
        # blob: that read up to STEPS rows for each of the thread's 2 * STEPS blobs (160,802
        # here; deleting one run of a 2,000-step thread took 2.3 s, of 10,000 steps a minute).
        assert read <= 3 * STEPS, read

        saver.delete_for_runs(["run-7"])
        listed = list(saver.list(config("long")))
        assert len(listed) == STEPS - 1
        assert "run-7" not in {t.metadata.get("run_id") for t in listed}
        for t in listed[:: STEPS // 10]:  # the rest still rebuild from their blobs
            step = t.metadata["step"]
            assert t.checkpoint["channel_values"] == {"step": step, "x": step}

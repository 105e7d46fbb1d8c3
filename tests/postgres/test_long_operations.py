"""Deleting runs does work linear in the thread, whatever the thread's length.

The work is counted by the server (`pg_stat_xact_user_tables`: rows the scans of the
checkpoints table read in the transaction, by the statements inside the `delete_runs`
function too), which is exact where a time would depend on the machine.
"""

from __future__ import annotations

from typing import Any

import psycopg

from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, cid, config

STEPS = 400


def _checkpoint_rows_read(conn: psycopg.Connection[Any], schema: str) -> int:
    """Rows the scans of the checkpoints table read so far in `conn`'s transaction."""
    row = conn.execute(
        "SELECT coalesce(seq_tup_read, 0) + coalesce(idx_tup_fetch, 0) "
        "FROM pg_stat_xact_user_tables WHERE schemaname = %s AND relname = 'checkpoints'",
        (schema,),
    ).fetchone()
    return 0 if row is None else int(row[0])


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
            before = _checkpoint_rows_read(admin, schema)
            admin.execute(statement, {"runs": ["run-7"]})
            read = _checkpoint_rows_read(admin, schema) - before
        # The live blob versions are read once (one pass over the thread), not once per
        # blob: that read up to STEPS rows for each of the thread's 2 * STEPS blobs (160,802
        # here; deleting one run of a 2,000-step thread took 2.3 s, of 10,000 steps a minute).
        # The one pass reads every remaining checkpoint.
        assert STEPS - 1 <= read <= 3 * STEPS, read

        saver.delete_for_runs(["run-7"])
        listed = list(saver.list(config("long")))
        assert len(listed) == STEPS - 1
        assert "run-7" not in {t.metadata.get("run_id") for t in listed}
        for t in listed[:: STEPS // 10]:  # the rest still rebuild from their blobs
            step = t.metadata["step"]
            assert t.checkpoint["channel_values"] == {"step": step, "x": step}

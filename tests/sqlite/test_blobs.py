"""Blobs: one per channel version, shared by checkpoints, collected when nothing reads them."""

from __future__ import annotations

import sqlite3

from tests.conformance.builders import checkpoint, config, new_thread
from tests.conformance.harness import Harness

ODD_CHANNELS = ["a\x00b", "\x00", "é😀", 'q"uote', "back\\slash", "", "$.x"]


async def test_odd_channel_names_round_trip(sh: Harness) -> None:
    # json_each in SQLite before 3.45 cuts a name at NUL: those blobs are fetched by key.
    tid = new_thread()
    values = {name: f"value of {name!r}" for name in ODD_CHANNELS}
    first = await sh.put(config(tid), checkpoint(values), {}, dict.fromkeys(values, 1))
    changed = {ODD_CHANNELS[0]: "changed"}
    versions = {**dict.fromkeys(values, 1), ODD_CHANNELS[0]: 2}
    second = await sh.put(
        config(tid, checkpoint_id=first["configurable"]["checkpoint_id"]),
        checkpoint({**values, **changed}, versions),
        {},
        {ODD_CHANNELS[0]: 2},
    )
    got = await sh.get_tuple(second)
    assert got is not None and got.checkpoint["channel_values"] == {**values, **changed}
    listed = await sh.list(config(tid))
    assert [t.checkpoint["channel_values"] for t in listed] == [{**values, **changed}, values]
    # Pruning to the latest keeps every blob it reads, odd names included.
    await sh.prune([tid])
    got = await sh.get_tuple(config(tid))
    assert got is not None and got.checkpoint["channel_values"] == {**values, **changed}


def _blob_versions(db_path: str, thread_id: str) -> list[tuple[str, str]]:
    conn = sqlite3.connect(db_path)
    try:
        return conn.execute(
            "SELECT channel, version FROM cp_blobs WHERE thread_id = ? ORDER BY channel, version",
            (thread_id,),
        ).fetchall()
    finally:
        conn.close()


def test_unchanged_channels_are_written_once_and_collected(db_path: str) -> None:
    from checkpoint_sqlite import SqliteSaver

    with SqliteSaver.from_conn_string(db_path) as saver:
        parent = None
        for step in range(5):
            # "big" never changes after step 0; "step" changes every time.
            versions = {"big": 1, "step": step + 1}
            stored = saver.put(
                config("t", checkpoint_id=parent),
                checkpoint({"big": "x" * 1000, "step": step}, versions),
                {"run_id": f"run-{step}"},
                {"big": 1, "step": step + 1} if step == 0 else {"step": step + 1},
            )
            parent = stored["configurable"]["checkpoint_id"]
        assert _blob_versions(db_path, "t") == [("big", "1")] + [
            ("step", str(v)) for v in range(1, 6)
        ]
        saver.delete_for_runs(["run-1", "run-3"])
        assert [t.metadata["run_id"] for t in saver.list(config("t"))] == [
            "run-4",
            "run-2",
            "run-0",
        ]
        # Checkpoints of runs 1 and 3 are gone, and so are the versions only they read.
        kept = [("big", "1"), ("step", "1"), ("step", "3"), ("step", "5")]
        assert _blob_versions(db_path, "t") == kept
        saver.prune(["t"])
        assert _blob_versions(db_path, "t") == [("big", "1"), ("step", "5")]
        latest = saver.get_tuple(config("t"))
        assert latest is not None
        assert latest.checkpoint["channel_values"] == {"big": "x" * 1000, "step": 4}


async def test_many_writes_and_channels_in_one_call(sh: Harness) -> None:
    # More rows than one statement binds: the put and put_writes span statements, atomically.
    tid = new_thread()
    values = {f"ch{i}": i for i in range(250)}
    stored = await sh.put(config(tid), checkpoint(values), {}, dict.fromkeys(values, 1))
    writes = [(f"w{i}", i) for i in range(300)]
    await sh.put_writes(stored, writes, "task")
    await sh.put_writes(stored, [("w0", "ignored")], "task")  # idx 0 exists: kept
    got = await sh.get_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == values
    assert got.pending_writes == [("task", ch, v) for ch, v in writes]


async def test_puts_of_each_blob_count_around_the_wide_row(sh: Harness) -> None:
    # Up to WIDE_SLOTS blobs a put is one row of cp_put_wide, beyond that rows of cp_put;
    # either way a stored put reads back whole, and storing it again replaces the
    # checkpoint's own fields while its blobs stay as first written.
    from checkpoint_sqlite._schema import WIDE_SLOTS

    for count in range(WIDE_SLOTS + 3):
        tid = new_thread()
        values = {f"ch{i}": f"value {i} " * (i + 1) for i in range(count)}
        cp = checkpoint(values)
        stored = await sh.put(config(tid), cp, {"n": count}, dict.fromkeys(values, 1))
        got = await sh.get_tuple(stored)
        assert got is not None
        assert got.checkpoint["channel_values"] == values
        assert got.metadata["n"] == count
        again = await sh.put(config(tid), cp, {"n": count + 100}, dict.fromkeys(values, 1))
        assert again == stored
        got = await sh.get_tuple(stored)
        assert got is not None
        assert got.checkpoint["channel_values"] == values
        assert got.metadata["n"] == count + 100
        assert len(await sh.list(config(tid))) == 1

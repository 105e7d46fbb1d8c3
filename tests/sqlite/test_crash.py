"""A process killed (SIGKILL) in the middle of a put leaves the whole checkpoint or nothing."""

from __future__ import annotations

import random
import signal
import sqlite3
import sys
from typing import Any

import pytest

from checkpoint_sqlite import SqliteSaver

from ._worker import CHANNELS, channel_size, value
from .conftest import worker

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROUNDS = 4


def _kill_during_a_put(db_path: str, channels: int = CHANNELS, flavor: str = "sync") -> int:
    """Run the looping writer, SIGKILL it right after it starts a put; the step it was in."""
    proc = worker("loop", db_path, "crash", str(channels), flavor)
    return _await_kill(proc, kill=True)


def _die_inside_the_put(
    db_path: str, flavor: str, channels: int, statement: str, count: int, step: int
) -> int:
    """The writer kills itself in the put of `step`, at the `count`-th trace of `statement`."""
    args = (str(channels), flavor, statement, str(count), str(step))
    proc = worker("loop", db_path, "crash", *args)
    return _await_kill(proc, kill=False)


def _await_kill(proc: Any, *, kill: bool) -> int:
    assert proc.stdout is not None
    target = random.randint(2, 6)
    step = "-1"
    try:
        for line in proc.stdout:
            kind, step = line.split()
            if kill and kind == "begin" and int(step) >= target:
                proc.send_signal(signal.SIGKILL)
                break
        else:
            if kill:
                pytest.fail(f"writer exited early: {proc.communicate(timeout=10)[1]}")
    finally:
        proc.kill()
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL, err
    return int(step)


def _latest_step(db_path: str) -> int:
    with SqliteSaver.from_conn_string(db_path) as saver:
        latest = saver.get_tuple({"configurable": {"thread_id": "crash"}})
        assert latest is not None
        return int(latest.metadata["step"])


# Both savers put 4 channels in one statement as one row of the cp_put_wide view (traced 4
# times: the statement, its trigger, the blobs' INSERT, the checkpoint's INSERT), 6 channels
# as one statement of 7 rows into the cp_put view (traced again as each trigger of each row
# runs: 1 + 4 per row), and 100 channels (too many rows for one statement) as BEGIN, blobs,
# checkpoint, COMMIT. The sync cases run on a connection passed in (one shared connection).
WIDE = "INSERT INTO cp_put_wide"
ROWS = "INSERT INTO cp_put VALUES"
DEATHS = {
    "sync, one wide row, blobs written": ("sync", CHANNELS, WIDE, 4),
    "sync, one statement of rows, mid-blobs": ("sync", 6, ROWS, 9),
    "sync, transaction, blobs written": ("sync", 100, "INSERT INTO cp_checkpoints", 1),
    "sync, transaction, at COMMIT": ("sync", 100, "COMMIT", 1),
    "async, one wide row, before its blobs": ("async", CHANNELS, WIDE, 3),
    "async, one wide row, blobs written": ("async", CHANNELS, WIDE, 4),
    "async, one statement of rows, mid-blobs": ("async", 6, ROWS, 9),
    "async, one statement of rows, checkpoint row": ("async", 6, ROWS, 27),
    "async, transaction, blobs written": ("async", 100, "INSERT INTO cp_checkpoints", 1),
    "async, transaction, at COMMIT": ("async", 100, "COMMIT", 1),
}


@pytest.mark.parametrize("death", list(DEATHS))
def test_death_inside_a_put_stores_nothing_of_it(db_path: str, death: str) -> None:
    flavor, channels, statement, count = DEATHS[death]
    _kill_during_a_put(db_path, channels, flavor)  # some whole checkpoints first
    before = _latest_step(db_path)
    died_in = _die_inside_the_put(db_path, flavor, channels, statement, count, before + 3)
    assert died_in == before + 3
    # Steps before + 1 and + 2 committed; the put of + 3 (partly written) is gone.
    assert _latest_step(db_path) == before + 2
    _assert_whole(db_path, channels)


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_kill_mid_put_leaves_every_checkpoint_whole(db_path: str, flavor: str) -> None:
    killed_at = [_kill_during_a_put(db_path, CHANNELS, flavor) for _ in range(ROUNDS)]
    steps = _assert_whole(db_path)
    # Every put the writer reported ended is stored (the writer may have run a little past
    # the line the kill answered: lines wait in the pipe).
    assert steps[-1] >= killed_at[-1] - 1


def _assert_whole(db_path: str, channels: int = CHANNELS) -> list[int]:
    """Every stored checkpoint is complete and holds exactly its values; the steps stored."""
    raw = sqlite3.connect(db_path)
    try:
        assert raw.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        # Every stored checkpoint has every blob it reads: none half-written.
        orphans = raw.execute(
            "SELECT c.checkpoint_id, j.key FROM cp_checkpoints AS c,"
            " json_each(c.channel_versions) AS j WHERE NOT EXISTS (SELECT 1 FROM cp_blobs AS b"
            " WHERE b.thread_id = c.thread_id AND b.checkpoint_ns = c.checkpoint_ns"
            " AND b.channel = j.key AND b.version = j.value)"
        ).fetchall()
        assert orphans == []
    finally:
        raw.close()

    with SqliteSaver.from_conn_string(db_path) as saver:
        listed = list(saver.list({"configurable": {"thread_id": "crash"}}))
        steps = sorted(t.metadata["step"] for t in listed)
        # Each round resumes after the latest whole checkpoint: the steps run without a gap.
        assert steps == list(range(len(steps)))
        for tup in listed:
            step = tup.metadata["step"]
            assert tup.checkpoint["channel_values"] == {
                f"c{j}": value(step, j, channel_size(channels)) for j in range(channels)
            }
    return steps

"""A process killed (SIGKILL) in the middle of a put leaves the whole checkpoint or nothing."""

from __future__ import annotations

import random
import signal
import sqlite3
import sys
from typing import Any

import pytest

from checkpoint_sqlite import SqliteSaver

from ._worker import BIG, CHANNELS, value
from .conftest import worker

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

ROUNDS = 4


def _kill_during_a_put(db_path: str) -> int:
    """Run the looping writer, SIGKILL it right after it starts a put; the step it was in."""
    proc = worker("loop", db_path, "crash")
    return _await_kill(proc, kill=True)


def _die_inside_the_transaction(db_path: str, statement: str, step: int) -> int:
    """The writer kills itself as the put of `step` starts `statement`."""
    proc = worker("loop", db_path, "crash", statement, str(step))
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


@pytest.mark.parametrize("statement", ["INSERT INTO cp_checkpoints", "COMMIT"])
def test_death_inside_the_transaction_stores_nothing(db_path: str, statement: str) -> None:
    _kill_during_a_put(db_path)  # some whole checkpoints first
    before = _latest_step(db_path)
    died_in = _die_inside_the_transaction(db_path, statement, before + 3)
    assert died_in == before + 3
    # Steps before + 1 and + 2 committed; the put of + 3 (blobs written, not committed) is gone.
    assert _latest_step(db_path) == before + 2
    _assert_whole(db_path)


@pytest.mark.slow
def test_kill_mid_put_leaves_every_checkpoint_whole(db_path: str) -> None:
    killed_at = [_kill_during_a_put(db_path) for _ in range(ROUNDS)]
    steps = _assert_whole(db_path)
    # The last round's put either landed whole or not at all.
    assert steps[-1] in (killed_at[-1], killed_at[-1] - 1)


def _assert_whole(db_path: str) -> list[int]:
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
                f"c{j}": value(step, j, BIG) for j in range(CHANNELS)
            }
    return steps

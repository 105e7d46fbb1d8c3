"""Rows damaged in the SQLite file itself (by hand, a tool, a torn copy): clear errors, and
the damaged thread can still be pruned and deleted."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from checkpoint_base import DamagedDataError, StorageError
from checkpoint_sqlite import SqliteSaver

from ..conformance.builders import checkpoint, cid, config, new_thread


def _thread(saver: SqliteSaver) -> tuple[str, list[Any]]:
    tid = new_thread()
    configs = []
    parent = config(tid)
    for step in range(3):
        parent = saver.put(
            parent,
            checkpoint({"msg": f"m{step}"}, {"msg": step + 1}),
            {"source": "loop", "step": step},
            {"msg": step + 1},
        )
        configs.append(parent)
    return tid, configs


_CUT = {
    "metadata": "UPDATE cp_checkpoints SET metadata = substr(metadata, 1, 5)"
    " WHERE thread_id = ? AND checkpoint_id = ?",
    "channel_versions": "UPDATE cp_checkpoints SET channel_versions = substr(channel_versions,"
    " 1, 5) WHERE thread_id = ? AND checkpoint_id = ?",
}


def _damage(path: Path, column: str, tid: str, checkpoint_id: str) -> None:
    with sqlite3.connect(path) as db:
        db.execute(_CUT[column], (tid, checkpoint_id))
    db.close()


def test_damaged_metadata_of_the_latest_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        tid, (_first, mid, last) = _thread(saver)
        _damage(path, "metadata", tid, cid(last))
        with pytest.raises(DamagedDataError, match="metadata") as raised:
            saver.get_tuple(config(tid))
        assert raised.value.thread_id == tid and raised.value.checkpoint_id == cid(last)
        got = saver.get_tuple(mid)
        assert got is not None and got.checkpoint["channel_values"] == {"msg": "m1"}
        # keep_latest must still run: it cannot tell the delta channels, so it keeps the
        # latest checkpoint and what its channels need (here the latest holds the value).
        saver.prune([tid])
        with sqlite3.connect(path) as db:
            left = db.execute(
                "SELECT checkpoint_id FROM cp_checkpoints WHERE thread_id = ?", (tid,)
            ).fetchall()
        db.close()
        assert left == [(cid(last),)]
        saver.delete_thread(tid)
        assert saver.get_tuple(config(tid)) is None


def test_damaged_channel_versions(tmp_path: Path) -> None:
    path = tmp_path / "c.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        tid, (first, mid, last) = _thread(saver)
        other, _ = _thread(saver)
        _damage(path, "channel_versions", tid, cid(last))
        with pytest.raises(StorageError, match="json_valid"):
            saver.get_tuple(config(tid))
        assert len(list(saver.list(config(other)))) == 3
        # keep_latest cannot tell what the latest checkpoint needs: it refuses, naming it.
        with pytest.raises(DamagedDataError, match="channel_versions") as raised:
            saver.prune([tid])
        assert raised.value.thread_id == tid and raised.value.checkpoint_id == cid(last)
        assert saver.get_tuple(mid) is not None  # nothing was deleted
        # A damaged row that is not the latest: keep_latest deletes it.
        tid2, (_a, mid2, last2) = _thread(saver)
        _damage(path, "channel_versions", tid2, cid(mid2))
        saver.prune([tid2])
        assert [cid(t.config) for t in saver.list(config(tid2))] == [cid(last2)]
        # Deleting a run beside a damaged row collects no blob (which it reads is unknown).
        run = saver.put(last2, checkpoint({"msg": "r"}, {"msg": 9}), {"run_id": "r1"}, {"msg": 9})
        _damage(path, "channel_versions", tid2, cid(last2))
        saver.delete_for_runs(["r1"])
        assert saver.get_tuple(run) is None
        with sqlite3.connect(path) as db:
            blobs = db.execute("SELECT count(*) FROM cp_blobs WHERE thread_id = ?", (tid2,))
            assert blobs.fetchone() == (2,)
        db.close()
        saver.delete_thread(tid)
        assert saver.get_tuple(config(tid)) is None
        assert saver.get_tuple(first) is None


@pytest.mark.parametrize(
    "stored", ["[1]", '"x"', '{"msg": 3}', '{"msg": null}', '{"msg": {"a": 1}}']
)
def test_channel_versions_of_another_shape(tmp_path: Path, stored: str) -> None:
    # Valid JSON, so SQLite reads it: building the page failed with a bare TypeError or
    # AttributeError ("unhashable type: 'dict'") naming nothing.
    path = tmp_path / "c.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        tid, (first, mid, last) = _thread(saver)
        with sqlite3.connect(path) as db:
            db.execute(
                "UPDATE cp_checkpoints SET channel_versions = ? "
                "WHERE thread_id = ? AND checkpoint_id = ?",
                (stored, tid, cid(last)),
            )
        db.close()
        for read in (
            lambda: saver.get_tuple(config(tid)),
            lambda: list(saver.list(config(tid))),
            lambda: saver.get_delta_channel_history(config=last, channels=["msg"]),
        ):
            with pytest.raises(DamagedDataError, match="channel_versions") as raised:
                read()
            assert raised.value.thread_id == tid and raised.value.checkpoint_id == cid(last)
        assert [cid(t.config) for t in saver.list(config(tid), before=last)] == [
            cid(mid),
            cid(first),
        ]
        # keep_latest keeps the latest; which blobs it reads is unknown, so all of them stay.
        saver.prune([tid])
        with sqlite3.connect(path) as db:
            left = db.execute(
                "SELECT count(*) FROM cp_blobs WHERE thread_id = ?", (tid,)
            ).fetchone()
        db.close()
        assert left == (3,)
        saver.delete_thread(tid)
        assert saver.get_tuple(config(tid)) is None


def test_the_command_line_deletes_a_thread_it_cannot_read(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from checkpoint_base._cli import main

    path = tmp_path / "c.db"
    with SqliteSaver.from_conn_string(str(path)) as saver:
        tid, (_first, _mid, last) = _thread(saver)
        other, _ = _thread(saver)
    _damage(path, "channel_versions", tid, cid(last))
    url = f"sqlite:///{path}"
    # `delete --thread`, which the error advises, read the newest checkpoint first and
    # failed on it with the same error.
    assert main(["delete", url, "--thread", tid]) == 0
    assert "deleted 1 thread of 1 named" in capsys.readouterr().out
    assert main(["delete", url, "--thread", tid]) == 1
    assert "no thread" in capsys.readouterr().err
    with SqliteSaver.from_conn_string(str(path)) as saver:
        assert saver.get_tuple(config(tid)) is None
        assert len(list(saver.list(config(other)))) == 3

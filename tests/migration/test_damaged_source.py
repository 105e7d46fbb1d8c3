"""Migrating a source that holds a damaged value: into a saver of this package the bytes are
copied as they are (and `--verify` finds both sides identical); into LangGraph's official
format, which must decode the value to encode it again, the migration stops with a
`DamagedDataError` naming the thread and the checkpoint, never a bare decoder error."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from checkpoint_base._cli import main
from checkpoint_sqlite import SqliteSaver

from ..conformance.builders import checkpoint, cid, config, new_thread

_DAMAGE = {
    "checkpoint": (
        "UPDATE cp_checkpoints SET checkpoint = substr(checkpoint, 1, 5) "
        "WHERE thread_id = :tid AND checkpoint_id = :cid",
        "the checkpoint (type",
    ),
    "blob": (
        "UPDATE cp_blobs SET data = substr(data, 1, 2) WHERE thread_id = :tid AND version = "
        "(SELECT json_extract(channel_versions, '$.msg') FROM cp_checkpoints "
        "WHERE thread_id = :tid AND checkpoint_id = :cid)",
        "channel 'msg'",
    ),
}


def _source(path: Path, statement: str) -> tuple[str, str]:
    with SqliteSaver.from_conn_string(str(path)) as saver:
        tid = new_thread()
        parent = config(tid)
        for step in range(3):
            parent = saver.put(
                parent,
                checkpoint({"msg": f"m{step}"}, {"msg": step + 1}),
                {"source": "loop", "step": step},
                {"msg": step + 1},
            )
    with sqlite3.connect(path) as db:
        assert db.execute(statement, {"tid": tid, "cid": cid(parent)}).rowcount == 1
    db.close()
    return tid, cid(parent)


@pytest.mark.parametrize("damage", list(_DAMAGE))
def test_damaged_source_values(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], damage: str
) -> None:
    source = tmp_path / "source.db"
    tid, bad = _source(source, _DAMAGE[damage][0])

    ours = f"sqlite:///{tmp_path / 'ours.db'}"
    assert main(["migrate", f"sqlite:///{source}", ours, "--verify"]) == 0
    assert "3 checkpoints identical" in capsys.readouterr().out

    official = f"langgraph-sqlite:///{tmp_path / 'official.db'}"
    for _ in range(2):  # and again: the failed batch left nothing that a rerun skips
        assert main(["migrate", f"sqlite:///{source}", official]) == 1
        err = capsys.readouterr().err
        assert "Traceback" not in err
        assert repr(tid) in err and repr(bad) in err, err
        assert _DAMAGE[damage][1] in err and "damaged" in err, err
    # Never half a checkpoint: the damaged one is not in the target.
    with sqlite3.connect(tmp_path / "official.db") as db:
        stored = db.execute(
            "SELECT count(*) FROM checkpoints WHERE thread_id = ? AND checkpoint_id = ?",
            (tid, bad),
        ).fetchone()
    db.close()
    assert stored == (0,)


def test_metadata_too_deep_to_read_is_copied_and_verified(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Deeper than Python's json reads: `--verify` raised a bare RecursionError before. The
    # bytes are copied as they are (into the official format too: it stores metadata as
    # JSON text), and compared as they are.
    source = tmp_path / "source.db"
    _source(
        source,
        "UPDATE cp_checkpoints SET metadata = '{\"d\":' || printf('%.*c', 100000, '[') || "
        "printf('%.*c', 100000, ']') || '}' WHERE thread_id = :tid AND checkpoint_id = :cid",
    )
    ours = f"sqlite:///{tmp_path / 'ours.db'}"
    assert main(["migrate", f"sqlite:///{source}", ours, "--verify"]) == 0
    assert "3 checkpoints identical" in capsys.readouterr().out

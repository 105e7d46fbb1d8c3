"""Rows damaged in PostgreSQL itself (by hand, a tool, a bad restore): every read names the
thread and the checkpoint in a `DamagedDataError`, never a bare psycopg, json or KeyError
error; other threads and checkpoints stay readable; the damaged thread can still be copied,
pruned and deleted, from Python and from the command line."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from langchain_core.runnables import RunnableConfig
from psycopg import sql

from checkpoint_base import DamagedDataError
from checkpoint_base._cli import main
from checkpoint_postgres import PostgresSaver

from ..conformance.builders import checkpoint, cid, config, new_thread

_WHERE = " WHERE thread_id = %s AND checkpoint_id = %s"
_SET_VERSIONS = "UPDATE {s}.checkpoints SET channel_versions = %s::jsonb" + _WHERE
_SET_METADATA = "UPDATE {s}.checkpoints SET metadata = %s" + _WHERE
_CUT_CHECKPOINT = (
    "UPDATE {s}.checkpoints SET checkpoint = substring(checkpoint from 1 for 5)" + _WHERE
)
_RETAG_WRITES = "UPDATE {s}.writes SET type = 'msgpack.cp9'" + _WHERE
_CUT_BLOB = """UPDATE {s}.blobs b SET data = substring(b.data from 1 for 2) FROM {s}.checkpoints c
    WHERE c.thread_id = %s AND c.checkpoint_id = %s AND b.thread_id = c.thread_id
        AND b.checkpoint_ns = c.checkpoint_ns
        AND c.channel_versions @> jsonb_build_object(b.channel, b.version)"""

# channel_versions that is valid JSON of another shape than {channel: "version"}.
_VERSIONS = {
    "array": "[1, 2]",
    "string": '"x"',
    "number": "7",
    "int-version": '{"msg": 3}',
    "null-version": '{"msg": null}',
    "object-version": '{"msg": {"a": 1}}',
}


@pytest.fixture
def saver(pg_url: str, schema: str) -> Iterator[PostgresSaver]:
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        saver.setup()
        yield saver


def _thread(saver: PostgresSaver, steps: int = 3) -> tuple[str, list[RunnableConfig]]:
    tid = new_thread()
    configs: list[RunnableConfig] = []
    parent = config(tid)
    for step in range(steps):
        parent = saver.put(
            parent,
            checkpoint({"msg": f"m{step}"}, {"msg": step + 1}),
            {"source": "loop", "step": step, "run_id": f"run-{tid}"},
            {"msg": step + 1},
        )
        saver.put_writes(parent, [("msg", f"w{step}")], "task-1")
        configs.append(parent)
    return tid, configs


def _damage(admin: psycopg.Connection[Any], schema: str, statement: str, *params: Any) -> None:
    """Run one of the statements above: the schema quoted as an identifier, values bound."""
    cur = admin.execute(sql.SQL(statement).format(s=sql.Identifier(schema)), params)
    assert cur.rowcount >= 1


def _names(exc: DamagedDataError, tid: str, checkpoint_id: str, part: str) -> None:
    message = str(exc)
    assert exc.thread_id == tid and repr(tid) in message
    assert exc.checkpoint_id == checkpoint_id and repr(checkpoint_id) in message
    assert part in message, message
    assert exc.__cause__ is not None


@pytest.mark.parametrize("shape", list(_VERSIONS))
def test_channel_versions_of_another_shape(
    saver: PostgresSaver, admin: psycopg.Connection[Any], schema: str, shape: str
) -> None:
    other, other_configs = _thread(saver)
    tid, (first, mid, last) = _thread(saver)
    _damage(admin, schema, _SET_VERSIONS, _VERSIONS[shape], tid, cid(last))

    # Before: a StorageError "cannot call jsonb_each_text on a non-object" naming nothing
    # (which also failed every list of all threads), or a bare TypeError / AttributeError.
    reads = {
        "get latest": lambda: saver.get_tuple(config(tid)),
        "get by id": lambda: saver.get_tuple(last),
        "list": lambda: list(saver.list(config(tid))),
        "list limit 1": lambda: list(saver.list(config(tid), limit=1)),
        "list every thread": lambda: list(saver.list(None)),
        "delta history": lambda: saver.get_delta_channel_history(config=last, channels=["msg"]),
    }
    for name, read in reads.items():
        with pytest.raises(DamagedDataError) as raised:
            read()
        _names(raised.value, tid, cid(last), "channel_versions")
        assert name  # (the failing read is in the traceback)

    older = list(saver.list(config(tid), before=last))
    assert [cid(t.config) for t in older] == [cid(mid), cid(first)]
    assert older[0].checkpoint["channel_values"] == {"msg": "m1"}
    latest_other = saver.get_tuple(config(other))
    assert latest_other is not None and cid(latest_other.config) == cid(other_configs[-1])

    copied = new_thread()
    saver.copy_thread(tid, copied)
    with pytest.raises(DamagedDataError) as raised:
        saver.get_tuple(config(copied))
    _names(raised.value, copied, cid(last), "channel_versions")

    # keep_latest cannot tell what the latest checkpoint reads: it refuses, naming it.
    with pytest.raises(DamagedDataError) as raised:
        saver.prune([tid])
    _names(raised.value, tid, cid(last), "channel_versions")
    assert saver.get_tuple(mid) is not None  # nothing was deleted

    # The copy keeps the run ids: deleting the run deletes both, damaged rows included.
    saver.delete_for_runs([f"run-{tid}"])
    assert saver.get_tuple(config(copied)) is None and saver.get_tuple(config(tid)) is None
    saver.delete_thread(tid)
    assert saver.get_tuple(first) is None
    assert len(list(saver.list(config(other)))) == 3


def test_damaged_channel_versions_of_an_older_checkpoint_is_pruned(
    saver: PostgresSaver, admin: psycopg.Connection[Any], schema: str
) -> None:
    tid, (first, mid, last) = _thread(saver)
    _damage(admin, schema, _SET_VERSIONS, "[1]", tid, cid(mid))
    with pytest.raises(DamagedDataError) as raised:
        list(saver.list(config(tid), before=last))
    _names(raised.value, tid, cid(mid), "channel_versions")
    latest = saver.get_tuple(config(tid))
    assert latest is not None and latest.checkpoint["channel_values"] == {"msg": "m2"}
    saver.prune([tid])
    assert [cid(t.config) for t in saver.list(config(tid))] == [cid(last)]
    assert saver.get_tuple(first) is None


@pytest.mark.parametrize("shape", ["array", "string", "number"])
def test_delete_for_runs_beside_damaged_channel_versions(
    saver: PostgresSaver, admin: psycopg.Connection[Any], schema: str, shape: str
) -> None:
    """Deleting one run of a thread where a checkpoint of another run has channel_versions
    of another shape than an object works, and leaves that checkpoint as it was."""
    tid = new_thread()
    parent = config(tid)
    stored = []
    for step, run in enumerate(["a", "a", "b"]):
        parent = saver.put(
            parent,
            checkpoint({"msg": f"m{step}"}, {"msg": step + 1}),
            {"source": "loop", "step": step, "run_id": f"run-{run}-{tid}"},
            {"msg": step + 1},
        )
        stored.append(parent)
    _damage(admin, schema, _SET_VERSIONS, _VERSIONS[shape], tid, cid(stored[-1]))
    saver.delete_for_runs([f"run-a-{tid}"])
    assert saver.get_tuple(stored[0]) is None and saver.get_tuple(stored[1]) is None
    with pytest.raises(DamagedDataError) as raised:
        saver.get_tuple(stored[-1])
    _names(raised.value, tid, cid(stored[-1]), "channel_versions")


# Deeper than Python's json can read: a bare RecursionError escaped before.
_DEEP = b'{"source":"loop","step":1,"d":' + b"[" * 100_000 + b"]" * 100_000 + b"}"


@pytest.mark.parametrize(
    "stored",
    [b'{"source', b"[1, 2]", b'"loop"', b"5", _DEEP],
    ids=["cut", "array", "str", "int", "deep"],
)
def test_damaged_metadata_in_a_filtered_list(
    saver: PostgresSaver, admin: psycopg.Connection[Any], schema: str, stored: bytes
) -> None:
    # The indexed JSONB copy still matches the filter, the exact metadata is unreadable:
    # the filter check decoded it with json's bare JSONDecodeError / ValueError before.
    tid, (first, mid, last) = _thread(saver)
    _damage(admin, schema, _SET_METADATA, stored, tid, cid(mid))
    with pytest.raises(DamagedDataError) as raised:
        list(saver.list(config(tid), filter={"source": "loop"}))
    _names(raised.value, tid, cid(mid), "metadata")
    with pytest.raises(DamagedDataError) as raised:
        list(saver.list(None, filter={"step": 1, "source": "loop"}))
    _names(raised.value, tid, cid(mid), "metadata")
    with pytest.raises(DamagedDataError) as raised:
        saver.get_tuple(mid)
    _names(raised.value, tid, cid(mid), "metadata")
    assert [cid(t.config) for t in saver.list(config(tid), filter={"step": 2})] == [cid(last)]
    saver.prune([tid])
    assert [cid(t.config) for t in saver.list(config(tid))] == [cid(last)]
    assert saver.get_tuple(first) is None


@pytest.mark.parametrize(
    ("damage", "part"),
    [
        (_CUT_CHECKPOINT, "the checkpoint (type"),
        (_CUT_BLOB, "channel 'msg'"),
        (_RETAG_WRITES, "task 'task-1'"),
    ],
)
def test_damaged_values_of_the_latest_checkpoint(
    saver: PostgresSaver,
    admin: psycopg.Connection[Any],
    schema: str,
    damage: str,
    part: str,
) -> None:
    tid, (first, mid, last) = _thread(saver)
    _damage(admin, schema, damage, tid, cid(last))
    for read in (
        lambda: saver.get_tuple(config(tid)),
        lambda: saver.get_tuple(last),
        lambda: list(saver.list(config(tid))),
        lambda: list(saver.list(config(tid), limit=1)),
        lambda: list(saver.list(config(tid), filter={"step": 2})),
    ):
        with pytest.raises(DamagedDataError) as raised:
            read()
        _names(raised.value, tid, cid(last), part)
    older = list(saver.list(config(tid), before=last, limit=1))
    assert [cid(t.config) for t in older] == [cid(mid)]
    copied = new_thread()
    saver.copy_thread(tid, copied)
    assert len(list(saver.list(config(copied), before=last))) == 2
    saver.prune([tid])  # keeps the damaged latest, as it keeps any latest
    assert list(saver.list(config(tid), before=last)) == []
    saver.delete_thread(tid)
    saver.delete_thread(copied)
    assert saver.get_tuple(config(tid)) is None and saver.get_tuple(config(copied)) is None
    assert saver.get_tuple(first) is None


def test_the_command_line_names_and_deletes_a_damaged_thread(
    pg_url: str, admin: psycopg.Connection[Any], capsys: pytest.CaptureFixture[str]
) -> None:
    # The command line opens the default schema: fresh thread ids keep this test apart.
    def cli(*argv: str) -> tuple[int, str, str]:
        capsys.readouterr()
        status = main(list(argv))
        captured = capsys.readouterr()
        return status, captured.out, captured.err

    with PostgresSaver.from_conn_string(pg_url) as saver:
        saver.setup()
        schema = saver.backend.schema  # type: ignore[attr-defined]
        body, (_f, _m, body_last) = _thread(saver)
        versions, (_f2, _m2, versions_last) = _thread(saver)
    _damage(admin, schema, _CUT_CHECKPOINT, body, cid(body_last))
    _damage(admin, schema, _SET_VERSIONS, "[1]", versions, cid(versions_last))

    # history decoded each row itself: a bare "invalid msgpack.cp2 data" naming nothing.
    status, _, err = cli("history", pg_url, body)
    assert status == 1 and "Traceback" not in err
    assert repr(body) in err and repr(cid(body_last)) in err and "the checkpoint" in err
    status, _, err = cli("show", pg_url, versions)
    assert status == 1 and repr(cid(versions_last)) in err and "channel_versions" in err

    # The error says to delete the thread; reading its newest checkpoint stopped that.
    for tid in (body, versions):
        status, out, err = cli("delete", pg_url, "--thread", tid)
        assert status == 0, err
        assert "deleted 1 thread of 1 named" in out
    with PostgresSaver.from_conn_string(pg_url) as saver:
        assert saver.get_tuple(config(body)) is None
        assert saver.get_tuple(config(versions)) is None
    status, _, err = cli("delete", pg_url, "--thread", versions)
    assert status == 1 and "no thread" in err

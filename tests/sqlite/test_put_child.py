"""A put that leaves channels to its parent's blobs checks, in its one statement, that the
parent is still stored (migration v3): in every form the put takes on SQLite."""

from __future__ import annotations

import sqlite3
from typing import Any

import pytest

from checkpoint_base import StorageError
from checkpoint_sqlite import SqliteSaver
from checkpoint_sqlite._schema import MIGRATIONS, MIGRATIONS_TABLE, RECORD_VERSION, WIDE_SLOTS
from tests.conformance.builders import checkpoint, cid, config, new_thread
from tests.conformance.harness import Harness

from .conftest import applied_migrations

# The changed channels of the second put pick its form: one row of `cp_put_child_wide`, a
# multi-row `cp_put` insert led by the parent row, or (past 999 bound values) a
# transaction led by `CHECK_PARENT`. The in-memory sync target always runs the last one.
FORMS = [pytest.param(2, id="wide"), pytest.param(WIDE_SLOTS + 2, id="rows")]
FORMS.append(pytest.param(120, id="transaction"))


async def _put_twice(sh: Harness, changed: int, *, delete_between: bool) -> None:
    tid = new_thread()
    values = {f"c{i}": i for i in range(changed + 1)}  # c0 is stored by the first put only
    first = await sh.put(config(tid), checkpoint(values), {}, dict.fromkeys(values, 1))
    if delete_between:
        await sh.delete_thread(tid)
    new = {name: v + 100 for name, v in values.items() if name != "c0"}
    versions = {**dict.fromkeys(values, 1), **dict.fromkeys(new, 2)}
    second = await sh.put(
        config(tid, checkpoint_id=cid(first)),
        checkpoint({**values, **new}, versions),
        {},
        dict.fromkeys(new, 2),
    )
    got = await sh.get_tuple(second)
    assert got is not None
    assert got.checkpoint["channel_values"] == {**values, **new}
    listed = await sh.list(config(tid))
    assert len(listed) == (1 if delete_between else 2)


@pytest.mark.parametrize("changed", FORMS)
async def test_a_put_after_its_parent_was_deleted_stores_a_whole_checkpoint(
    sh: Harness, changed: int
) -> None:
    await _put_twice(sh, changed, delete_between=True)


@pytest.mark.parametrize("changed", FORMS)
async def test_a_put_whose_parent_is_stored_reads_its_unchanged_channels(
    sh: Harness, changed: int
) -> None:
    await _put_twice(sh, changed, delete_between=False)


def _database_at_v2(db_path: str) -> None:
    """A database as an earlier version (schema v2) left it."""
    raw = sqlite3.connect(db_path)
    raw.execute(MIGRATIONS_TABLE)
    for version in range(3):
        for statement in MIGRATIONS[version]:
            raw.execute(statement)
        raw.execute(RECORD_VERSION, (version,))
    raw.commit()
    raw.close()


def _child_of(first: Any) -> tuple[Any, ...]:
    """A put's arguments: a child of `first` that changes `b` and leaves `a` to its parent."""
    tid = first["configurable"]["thread_id"]
    versions = {"a": 1, "b": 2}
    return (
        config(tid, checkpoint_id=cid(first)),
        checkpoint({"a": 1, "b": 2}, versions),
        {},
        {"b": 2},
    )


def test_a_database_at_v2_gets_the_parent_checks(db_path: str) -> None:
    _database_at_v2(db_path)
    with SqliteSaver.from_conn_string(db_path) as saver:
        tid = new_thread()
        first = saver.put(config(tid), checkpoint({"a": 1, "b": 1}), {}, {"a": 1, "b": 1})
        saver.delete_thread(tid)
        got = saver.get_tuple(saver.put(*_child_of(first)))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1, "b": 2}
    assert applied_migrations(db_path) == list(range(len(MIGRATIONS)))


def test_a_database_left_at_v2_names_the_missing_setup(db_path: str) -> None:
    """A saver that opens a database an earlier version set up and is not set up since the
    upgrade (`SqliteSaver.open` leaves setup() to its caller): the put that needs migration
    v3 says to run setup(). (A saver handed a connection sets the schema up by itself.)"""
    _database_at_v2(db_path)
    saver = SqliteSaver.open(db_path)
    try:
        tid = new_thread()
        first = saver.put(config(tid), checkpoint({"a": 1, "b": 1}), {}, {"a": 1, "b": 1})
        child = _child_of(first)
        with pytest.raises(StorageError, match=r"earlier version.*saver\.setup\(\)"):
            saver.put(*child)
        saver.setup()
        got = saver.get_tuple(saver.put(*child))
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1, "b": 2}
    finally:
        saver.close()

"""A saver on a sqlite3 connection the caller opened, carried into a forked child: SQLite
forbids using a connection across fork, so the child gets a clear error and the parent goes
on; a `:memory:` saver's database is the child's own copy."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import pytest

from checkpoint_base import StorageError
from checkpoint_sqlite import SqliteSaver

from ..conformance.builders import checkpoint, config, new_thread
from ..conformance.test_hygiene import _in_child

pytestmark = pytest.mark.skipif(not hasattr(os, "fork"), reason="no os.fork on this platform")


def test_a_passed_connection_refuses_the_forked_child(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.db", check_same_thread=False)
    saver = SqliteSaver(conn)
    tid = new_thread()
    stored = saver.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})

    def child() -> str:
        try:
            saver.get_tuple(stored)
        except StorageError as exc:
            return str(exc)
        return "no error"

    _, _, wait = _in_child(child)
    message = wait()
    assert "opened before os.fork()" in message and "from_conn_string" in message
    # The parent's connection is untouched and still serves it.
    again = saver.put(config(tid), checkpoint({"a": 2}, {"a": 2}), {}, {"a": 2})
    got = saver.get_tuple(again)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 2}
    conn.close()


def test_an_in_memory_saver_is_the_childs_own_copy() -> None:
    with SqliteSaver.from_conn_string(":memory:") as saver:
        tid = new_thread()
        saver.put(config(tid), checkpoint({"a": "parent"}), {}, {"a": 1})

        def child() -> list[str]:
            saver.put(config(tid), checkpoint({"a": "child"}, {"a": 2}), {}, {"a": 2})
            return [t.checkpoint["channel_values"]["a"] for t in saver.list(config(tid))]

        _, _, wait = _in_child(child)
        assert wait() == ["child", "parent"]
        assert [t.checkpoint["channel_values"]["a"] for t in saver.list(config(tid))] == ["parent"]

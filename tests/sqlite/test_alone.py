"""A plan that is one standalone write runs as that statement alone; anything else, and any
failure of it, takes the transaction wrapper as before."""

from __future__ import annotations

import sqlite3
import time
from typing import Any

import pytest

from checkpoint_base import ListQuery, StorageError
from checkpoint_sqlite import SqliteSaver, _alone, _sync
from checkpoint_sqlite._pages import BY_ID_SQL, LATEST_SQL, page_sql
from checkpoint_sqlite._requests import Atomic, Execute, Query
from checkpoint_sqlite._sync import _run_on
from tests.conformance.builders import checkpoint, config
from tests.sqlite._conns import connect


def _traced(conn: sqlite3.Connection) -> list[str]:
    seen: list[str] = []
    conn.set_trace_callback(seen.append)
    return seen


def _conn() -> sqlite3.Connection:
    conn = connect(":memory:", isolation_level=None, check_same_thread=False)
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return conn


def test_a_put_and_a_put_writes_are_one_statement_each(tmp_path: Any) -> None:
    conn = connect(str(tmp_path / "x.db"), isolation_level=None, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    seen = _traced(conn)
    first = saver.put(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
    saver.put_writes(first, [("a", 2), ("b", 3)], "task")
    # The trace repeats a statement once per trigger program it runs: count distinct ones.
    statements = list(dict.fromkeys(seen))
    assert len(statements) == 2, statements  # no BEGIN, COMMIT or SAVEPOINT around them
    assert statements[0].startswith("INSERT INTO cp_put_wide")
    assert statements[1].startswith("INSERT INTO cp_writes")
    got = saver.get_tuple(config("t"))
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    assert got.pending_writes == [("task", "a", 2), ("task", "b", 3)]


def test_inside_your_transaction_the_put_joins_it(tmp_path: Any) -> None:
    conn = connect(str(tmp_path / "x.db"), isolation_level=None, check_same_thread=False)
    saver = SqliteSaver(conn)
    saver.setup()
    conn.execute("BEGIN")
    seen = _traced(conn)
    saver.put(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
    assert seen[0].startswith("SAVEPOINT")  # the wrapper's path, not the statement alone
    conn.execute("ROLLBACK")
    assert saver.get_tuple(config("t")) is None


def test_a_failed_statement_goes_through_the_wrapper_retried_and_translated() -> None:
    conn = _conn()
    conn.execute("INSERT INTO t VALUES (1)")
    seen = _traced(conn)

    def plan() -> Any:
        yield Execute("INSERT INTO t VALUES (?)", ((1,),), standalone=True)

    with pytest.raises(StorageError, match="UNIQUE constraint failed"):
        _run_on(conn, plan())
    assert seen == ["INSERT INTO t VALUES (1)"] * 2  # alone, then by the wrapper
    assert conn.execute("SELECT count(*) FROM t").fetchone() == (1,)


class _ReleasingClock:
    """`time` for the sync executor whose first `sleep` (the wrapper's pause after a busy
    attempt) ends the other connection's transaction: no race with a timer."""

    def __init__(self, other: sqlite3.Connection) -> None:
        self.other = other
        self.sleeps: list[float] = []

    def sleep(self, seconds: float) -> None:
        if not self.sleeps:
            self.other.execute("COMMIT")
        self.sleeps.append(seconds)

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


def test_a_busy_database_is_retried_by_the_wrapper(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "busy.db")
    conn = connect(path, isolation_level=None, timeout=0, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    other = connect(path, isolation_level=None, check_same_thread=False)
    other.execute("BEGIN IMMEDIATE")  # holds the write lock
    clock = _ReleasingClock(other)
    monkeypatch.setattr(_sync, "time", clock)

    def plan() -> Any:
        yield Execute("INSERT INTO t VALUES (?)", ((7,),), standalone=True)
        return "done"

    assert _run_on(conn, plan()) == "done"  # the first attempt met the lock; a retry did not
    assert len(clock.sleeps) == 1  # the wrapper paused once, then its next attempt went in
    assert conn.execute("SELECT x FROM t").fetchall() == [(7,)]
    other.close()
    conn.close()


def test_a_plan_asking_for_more_after_its_standalone_write_fails() -> None:
    conn = _conn()

    def plan() -> Any:
        yield Execute("INSERT INTO t VALUES (?)", ((1,),), standalone=True)
        yield Query("SELECT x FROM t")

    with pytest.raises(StorageError, match="only request"):
        _run_on(conn, plan())


def test_an_atomic_that_does_not_fit_one_statement_builds_it_once() -> None:
    conn = _conn()
    calls: list[str] = []

    def single() -> Execute | None:
        calls.append("single")
        return None

    def statements() -> tuple[Execute, ...]:
        calls.append("statements")
        return (
            Execute("INSERT INTO t VALUES (?)", ((1,),)),
            Execute("INSERT INTO t VALUES (?)", ((2,),)),
        )

    def plan() -> Any:
        yield Atomic(statements, single)
        return "ok"

    seen = _traced(conn)
    assert _run_on(conn, plan()) == "ok"
    assert calls == ["single", "statements"]
    assert seen[0].startswith("BEGIN") and seen[-1] == "COMMIT"
    assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(1,), (2,)]


def test_reads_and_results_pass_through_the_wrapper_unchanged() -> None:
    conn = _conn()
    conn.execute("INSERT INTO t VALUES (5)")

    def plan() -> Any:
        rows = yield Query("SELECT x FROM t")
        more = yield Query("SELECT x + ? FROM t", (1,))
        return rows + more

    assert _run_on(conn, plan()) == [(5,), (6,)]

    def failing() -> Any:
        try:
            yield Query("SELECT nope FROM t")
        except StorageError as exc:  # thrown into the plan, translated, as before
            return f"caught {type(exc).__name__}"

    assert _run_on(conn, failing()) == "caught StorageError"


def test_a_plan_starting_with_a_query_runs_it_without_the_wrapper() -> None:
    conn = _conn()
    conn.execute("INSERT INTO t VALUES (5)")
    seen = _traced(conn)
    calls: list[str] = []

    def plan() -> Any:
        rows = yield Query("SELECT x FROM t")
        calls.append("resumed")
        return rows

    done, out = _alone.run_alone(conn, plan())
    assert (done, out) == (True, [(5,)])  # the plan ran to its end on the direct path
    assert calls == ["resumed"] and seen == ["SELECT x FROM t"]


def test_a_plan_that_goes_on_after_its_first_query_continues_in_the_wrapper() -> None:
    conn = _conn()
    conn.execute("INSERT INTO t VALUES (5)")
    seen = _traced(conn)

    def plan() -> Any:
        (row,) = yield Query("SELECT max(x) FROM t")
        yield Execute("INSERT INTO t VALUES (?)", ((row[0] + 1,),))
        return "wrote"

    assert _run_on(conn, plan()) == "wrote"
    # The write after the read still gets its transaction, as it did through the wrapper.
    assert seen == ["SELECT max(x) FROM t", "BEGIN IMMEDIATE", "INSERT INTO t VALUES (6)", "COMMIT"]
    assert conn.execute("SELECT x FROM t ORDER BY x").fetchall() == [(5,), (6,)]


def test_a_failed_first_query_is_run_again_by_the_wrapper_and_translated() -> None:
    conn = _conn()
    seen = _traced(conn)

    def plan() -> Any:
        try:
            yield Query("SELECT nope FROM t")
        except StorageError as exc:
            return f"caught {type(exc).__name__}"

    assert _run_on(conn, plan()) == "caught StorageError"
    assert seen == []  # a statement that does not prepare is never traced


def test_get_statements_are_the_page_statements_of_its_queries() -> None:
    latest = ListQuery(thread_id="t", checkpoint_ns="ns", limit=1)
    assert page_sql(latest) == (LATEST_SQL, ["t", "ns", 1])
    by_id = ListQuery(thread_id="t", checkpoint_ns="ns", checkpoint_id="c", limit=1)
    assert page_sql(by_id) == (BY_ID_SQL, ["t", "ns", "c", 1])

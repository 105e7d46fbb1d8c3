"""A plan that is one standalone write, run on a sqlite3 connection without the wrapper.

`put` and `put_writes` plans yield a single request that is one autocommit statement
(`Atomic.single`, `Execute(standalone=True)`). Outside a transaction `_session.transaction`
would run it by itself anyway, through three generator layers, its retry loop and its state;
here the statement runs directly. Only success takes this path: when the statement fails
(the database is busy, a constraint), nothing was written, and the caller runs the plan
through `transaction` from its first request, which retries, translates the error and
throws it into the plan exactly as before.

A plan whose first request is a `Query` (every read) has that query run directly too, as
`transaction` would run it in autocommit, and goes on to `transaction` only if it asks for
more. A `get_tuple` of a missing thread took 12.9 instead of 15.7 us on a file, of a 20-step
thread's latest checkpoint 71.2 instead of 74.7 us, an async one of a missing thread 13.4
instead of 15.4 us (30 alternating runs of 300 calls each, medians).

The sync executors run every plan through here first, and the async flavor's quick path
(`run_quick`, on the event loop's thread) every plan it runs. A plan that is anything else
goes on to `transaction` behind `resumed`, one generator layer more.

Measured in one process, calls alternating between this path and the wrapper's (the agent
graph's 10-step thread, thread CPU time, medians of ~700 calls each, two runs): in memory,
put 171-180 -> 160-169 us and put_writes 90-95 -> 81-86 us; on a file, put 267 -> 256 us and
put_writes 152 -> 139 us.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Generator
from typing import Any, TypeVar

from checkpoint_base import Plan, StorageError

from ._group import GroupCommit
from ._requests import Atomic, Execute, Query

__all__ = ["DONE", "after_write", "resumed", "run_alone", "standalone_write"]

T = TypeVar("T")


DONE: Any = object()
"""`standalone_write`'s first item when the plan returned without a request."""


def standalone_write(plan: Plan[T]) -> tuple[Any, Any]:
    """Take the plan's first request; with it, the statement to run when it is a standalone
    write of one row (else None).

    Returns `(DONE, result)` when the plan returned without a request. Otherwise the first
    item is what to resume the plan with (`resumed`) if the statement is not run or fails.
    """
    try:
        first = next(plan)
    except StopIteration as stop:
        return DONE, stop.value
    try:
        op = first
        if type(op) is Atomic:
            single = op.single() if op.single is not None else None
            if single is None:  # the general path builds the statements, not this again
                return Atomic(op.statements), None
            op = single
        if type(op) is not Execute or not op.standalone or len(op.rows) != 1:
            return first, None
    except BaseException:
        plan.close()
        raise
    return first, op


def after_write(plan: Plan[T]) -> T:
    """The plan's result once its standalone write is committed."""
    try:
        plan.send(None)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]
    plan.close()
    raise StorageError("a standalone write must be its plan's only request")


def run_alone(
    conn: sqlite3.Connection,
    plan: Plan[T],
    group: GroupCommit | None = None,
    *,
    writes: bool = True,
) -> tuple[bool, Any]:
    """Run `plan` at once when its first request is a standalone write and it succeeds;
    run its first request directly when that is a `Query`.

    `conn` must be in autocommit mode and outside a transaction. With `group` the statement
    is committed through it, with those of other writers (`_group.py`). `writes`: False
    leaves a standalone write to `transaction`.

    Returns:
        `(True, result)` when the plan ran (or returned without a request); else
        `(False, rest)`: the plan from its next request, already taken from it, to run
        through `transaction`.

    Raises:
        StorageError: The plan asked for anything after its standalone write.
    """
    first, op = standalone_write(plan)
    if first is DONE:
        return True, op
    if op is None:
        if type(first) is Query:
            return _read_first(conn, first, plan)
        return False, resumed(first, plan)
    if not writes:
        return False, resumed(first, plan)
    try:
        if group is not None:
            ok = group.write(conn, op.sql, op.rows[0])
        else:
            try:
                conn.execute(op.sql, op.rows[0])
                ok = True
            except sqlite3.Error:
                ok = False
    except BaseException:
        plan.close()
        raise
    if not ok:  # nothing written: `transaction` runs it again, retries, translates errors
        return False, resumed(first, plan)
    return True, after_write(plan)


def _read_first(conn: sqlite3.Connection, query: Query, plan: Plan[T]) -> tuple[bool, Any]:
    """`run_alone` for a plan that starts with a `Query`.

    In autocommit mode `transaction` runs a query outside any transaction too; here it runs
    without the wrapper's generator layers. A plan that goes on after it (a page whose
    blobs moved, a read that then writes) continues through `transaction` from its next
    request, in the state the wrapper would be in. When the query fails, nothing was
    changed: `transaction` runs it again, retries a busy database, translates the error.
    """
    try:
        rows = conn.execute(query.sql, query.params).fetchall()
    except sqlite3.Error:
        return False, resumed(query, plan)
    except BaseException:
        plan.close()
        raise
    try:
        request = plan.send(rows)
    except StopIteration as stop:
        return True, stop.value
    return False, resumed(request, plan)


def resumed(first: Any, plan: Plan[T]) -> Generator[Any, Any, T]:
    """`plan` from its first request, `first`, which was already taken from it."""
    request = first
    while True:
        try:
            sent = yield request
        except GeneratorExit:
            plan.close()
            raise
        except BaseException as exc:  # thrown by the transaction wrapper
            try:
                request = plan.throw(exc)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]
        else:
            try:
                request = plan.send(sent)
            except StopIteration as stop:
                return stop.value  # type: ignore[no-any-return]

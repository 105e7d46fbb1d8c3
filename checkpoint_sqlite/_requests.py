"""The requests a SQLite plan yields; both executors perform them on one connection.

A plan's transaction follows from its requests: the first `Execute` opens a write
transaction (`BEGIN IMMEDIATE`) unless one is open or it is `standalone`, `Begin` opens one
explicitly, and the executor commits when the plan returns (or rolls back when it raises).
A plan made only of `Query` requests runs in autocommit mode: each statement sees one
consistent snapshot.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Atomic", "Begin", "Execute", "Query", "Request", "Row"]

Row = tuple[Any, ...]
"""A row as sqlite3 returns it: values typed by what the column holds."""


@dataclass(frozen=True, slots=True)
class Query:
    """Run one statement and return all its rows (a `list[Row]`)."""

    sql: str
    params: Sequence[object] = ()


@dataclass(frozen=True, slots=True)
class Execute:
    """Run one writing statement once per parameter row (`executemany`); returns None.

    `standalone`: the plan's only write, one statement with one parameter row, atomic by
    itself; with no transaction open it runs in autocommit, without BEGIN and COMMIT (two
    statements fewer, and for aiosqlite two thread hops fewer).
    """

    sql: str
    rows: Sequence[Sequence[object]] = ((),)
    standalone: bool = False


@dataclass(frozen=True, slots=True)
class Atomic:
    """Writes that land together, in two equivalent forms; `_session.transaction` picks one.

    `statements` builds the statements that run in one transaction. `single`, when given,
    builds one standalone statement doing the same, or returns None when one statement
    cannot. `single` runs whenever the connection is in autocommit and outside a caller's
    transaction, on every executor: the async flavor (one thread hop instead of one per
    statement, BEGIN and COMMIT included), a pool of sqlite3 connections (the write lock
    held for one statement) and a single shared sqlite3 connection (an in-memory database:
    a put of the benchmarks' 10-step thread took 117 us as one statement against 131 us as
    BEGIN, INSERTs and COMMIT; 438 against 510 us on the 100-step thread with 4 KiB
    messages).
    Only the form an executor runs is built: building the single statement took 7 of the
    sync flavor's ~110 us per put on an in-memory database.
    """

    statements: Callable[[], tuple[Execute, ...]]
    single: Callable[[], Execute | None] | None = None


@dataclass(frozen=True, slots=True)
class Begin:
    """Open the plan's transaction now: `write` takes the write lock at once.

    A plan that reads and then writes begins with `Begin(write=True)`, so what it read
    cannot change before it writes. A plan of several reads that must agree begins with
    `Begin(write=False)` (a read snapshot); such a plan must not write.
    """

    write: bool


Request = Query | Execute | Atomic | Begin

"""Transactions, retries and error translation, written once for both executors.

`transaction(plan)` wraps a backend plan into a plan of plain statements: it opens the
transaction the plan's requests ask for, commits when the plan returns, rolls back when it
raises, retries what is safe to retry when SQLite reports the database busy, and turns
`sqlite3` errors into `checkpoint_base` errors before the plan sees them. The sync and the
async executor only perform `Query`, `Execute` and `Sleep` on one connection.

Locking: a write takes the write lock first (`BEGIN IMMEDIATE`, or one autocommit
statement), so a transaction never upgrades from reading to writing, which SQLite would
refuse at once with SQLITE_BUSY (deadlock avoidance) instead of waiting. Waiting is SQLite's
`busy_timeout`; when it runs out, `BEGIN`, `COMMIT`, autocommit reads and standalone writes
are retried a bounded number of times (nothing has been done yet, or the transaction is
still whole), with a growing, jittered pause.

Writers of one saver are not queued on a lock of ours: measured with 8 writers of 60 puts
each, a per-saver writer lock cost throughput (aiosqlite 701-938 vs 1132-1300 puts/s,
sqlite3 threads 1385-1471 vs 1585-2064 puts/s) and median latency, for a better p99 only
with sqlite3 threads.
"""

from __future__ import annotations

import random
import sqlite3
import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from checkpoint_base import (
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    ValueTooLargeError,
)

from ._requests import Atomic, Begin, Execute
from ._schema import PARENT_GONE

__all__ = [
    "ParentGoneError",
    "Sleep",
    "autocommits",
    "busy_pauses",
    "is_busy",
    "takes_write_lock",
    "transaction",
    "translate",
]

T = TypeVar("T")

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_SQLITE_TOOBIG = 18
_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
)
_SQLITE_FULL = 13
_FULL = "database or disk is full"
_MAKE_ROOM = (
    "the disk that holds the database (and its -wal file) has no room left, or the "
    "database reached its max_page_count. Nothing of this call was stored. Free space on "
    "that disk first (while it is full, SQLite cannot record a delete either); then "
    "delete or prune threads (`checkpointers delete --idle 30d`, `checkpointers prune`) "
    "and compact (`checkpointers compact`) to give their space back to the disk"
)
_SAVEPOINT = "cp_plan"
_BEGIN_WRITE = "BEGIN IMMEDIATE"

Op = Generator[Any, Any, T]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause before a retry (performed by the executor: `time.sleep` or `asyncio.sleep`)."""

    seconds: float


def autocommits(conn: Any) -> bool:
    """Whether a sqlite3 (or aiosqlite) connection leaves transactions to its statements."""
    mode = getattr(conn, "autocommit", None)  # Python >= 3.12; LEGACY (-1) by default
    if mode is True or mode is False:
        return mode
    return conn.isolation_level is None


def _coded(
    exc: BaseException, kind: type[sqlite3.Error], codes: tuple[int, ...], words: tuple[str, ...]
) -> bool:
    """Whether `exc` is a `kind` whose primary result code is one of `codes`; before Python
    3.11 (no code on the exception), whether its message holds one of `words`."""
    if not isinstance(exc, kind):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in codes
    message = str(exc).lower()
    return any(word in message for word in words)


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock."""
    return _coded(exc, sqlite3.OperationalError, (_SQLITE_BUSY, _SQLITE_LOCKED), ("locked", "busy"))


def is_full(exc: BaseException) -> bool:
    """True for SQLITE_FULL: no room on the disk, or the database at its `max_page_count`."""
    return _coded(exc, sqlite3.Error, (_SQLITE_FULL,), (_FULL,))


_MALFORMED_JSON = (
    "a stored JSON column (metadata or channel_versions of cp_checkpoints) was damaged or "
    "written by another program. Find its thread and checkpoint with: SELECT thread_id, "
    "checkpoint_ns, checkpoint_id FROM cp_checkpoints WHERE NOT json_valid(metadata) OR NOT "
    "json_valid(channel_versions); then delete the thread (saver.delete_thread) or repair the row"
)


_LATER_TABLES = ("cp_put_child_wide", "cp_leases")
"""Tables and views of migrations after the first (v3, v4): missing from a database that an
earlier version of the package set up, until `setup()` runs again."""


class ParentGoneError(StorageError):
    """A put that checks its parent (`Backend.put_child`) found it gone and stored nothing.

    Caught by the put's plan, which returns False; never reaches a caller.
    """


def translate(exc: sqlite3.Error) -> StorageError:
    """The `checkpoint_base` error for a `sqlite3` error (the caller chains it)."""
    message = str(exc)
    if message == PARENT_GONE and isinstance(exc, sqlite3.IntegrityError):
        return ParentGoneError(f"SQLite: {message}")
    lowered = message.lower()
    if is_full(exc):
        return StorageFullError(f"SQLite: {message}: {_MAKE_ROOM}")
    if is_busy(exc) or any(part in lowered for part in _UNAVAILABLE):
        return StorageUnavailableError(f"SQLite: {message}")
    if any(f"no such table: {name}" in lowered for name in _LATER_TABLES):
        return StorageError(
            f"SQLite: {message}; the database was set up by an earlier version of "
            "checkpointers: call saver.setup() (or `checkpointers setup URL`) to apply the "
            "newer migrations"
        )
    if "no such table: cp_" in lowered:
        return StorageError(
            f"SQLite: {message}; the checkpoint tables are missing: call saver.setup() "
            "(connect() and from_conn_string() do it for you)"
        )
    if "readonly database" in lowered:
        return StorageError(
            f"SQLite: {message}: this connection may only read (a saver opened with "
            "read_only=true, or a file or medium this process may not write); a write, or "
            "setup() of a database whose schema is not up to date, needs one that may write"
        )
    if "malformed json" in lowered:
        return StorageError(f"SQLite: {message}; {_MALFORMED_JSON}")
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_TOOBIG or "too big" in lowered:
        return ValueTooLargeError(
            f"SQLite: {message}: a value is longer than the connection's length limit "
            "(SQLITE_LIMIT_LENGTH: 1,000,000,000 bytes unless SQLite was built or set lower)."
        )
    return StorageError(f"SQLite: {message}")


def takes_write_lock(op: object) -> bool:
    """Whether performing `op` (a request of a wrapped plan) takes SQLite's write lock.

    The first write of a plan is either `BEGIN IMMEDIATE` or a standalone statement (see
    `transaction`); the lock is then held until the plan's end.
    """
    return type(op) is Execute and (op.standalone or op.sql == _BEGIN_WRITE)


def _pause(attempt: int) -> Sleep:
    return Sleep(0.01 * 2**attempt * (0.5 + random.random()))


_MAX_SETTLE_PAUSE = 0.1


def busy_pauses(timeout: float) -> Iterator[float | None]:
    """Pauses between attempts at a connection setting SQLite refused as busy; None: give up.

    SQLite refuses some statements at once, without its busy handler, when waiting could
    deadlock: `PRAGMA journal_mode=WAL` on a new connection while another one converts the
    file to WAL or holds the lock it needs. Six savers opening one new file at once met
    that (tests/sqlite/test_processes.py, 2 of 30 runs on a loaded machine). Such a refusal
    is retried with a growing, jittered pause (at most 0.1 s) until `timeout` seconds, the
    connection's own wait for a lock, have passed.
    """
    deadline = time.monotonic() + timeout
    attempt = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            yield None
            return
        yield min(_pause(attempt).seconds, _MAX_SETTLE_PAUSE, left)
        attempt += 1


def _statement(sql: str) -> Execute:
    return Execute(sql)


def _retrying(request: Any, attempts: int) -> Op[Any]:
    """Perform `request`, retrying while SQLite reports the database busy."""
    for attempt in range(attempts):
        try:
            return (yield request)
        except sqlite3.OperationalError as exc:
            if not is_busy(exc) or attempt == attempts - 1:
                raise
            yield _pause(attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def _rollback(nested: bool) -> Op[None]:
    statements = (f"ROLLBACK TO {_SAVEPOINT}", f"RELEASE {_SAVEPOINT}") if nested else ("ROLLBACK",)
    for sql in statements:
        try:
            yield _statement(sql)
        except sqlite3.Error:  # no transaction left to roll back: SQLite already did
            return


class _State:
    """The transaction a wrapped plan is in."""

    __slots__ = ("mode", "wrote_alone")

    def __init__(self) -> None:
        self.mode: str | None = None  # None (autocommit), "read" or "write"
        self.wrote_alone = False


def transaction(
    plan: Op[T],
    *,
    nested: bool = False,
    autocommit: bool = True,
    attempts: int = 4,
) -> Op[T]:
    """Run `plan` inside the transaction its requests ask for.

    Args:
        plan: A backend plan yielding `Query`, `Execute`, `Atomic` and `Begin`.
        nested: The connection is already inside the caller's transaction: use a savepoint
            (the caller's commit makes the writes durable).
        autocommit: The connection is in autocommit mode, so a standalone write commits by
            itself. False for a connection with sqlite3's legacy transaction control
            (`isolation_level` not None), which would open a transaction before it and leave
            it open: there the write gets an explicit transaction like any other.
        attempts: How many times a busy `BEGIN`, `COMMIT`, autocommit read or standalone
            write is tried.

    Returns:
        The plan's result, after its transaction committed.

    Raises:
        StorageUnavailableError: The database stayed locked through every attempt, or
            cannot be opened or written.
        StorageError: Any other SQLite error.
    """
    state = _State()
    alone_ok = autocommit and not nested
    send: Any = None
    error: BaseException | None = None
    try:
        while True:
            try:
                request = plan.throw(error) if error is not None else plan.send(send)
            except StopIteration as stop:
                result: T = stop.value
                break
            send, error = None, None
            if isinstance(request, Atomic):
                single = request.single() if alone_ok and request.single else None
                steps: tuple[Any, ...] = (single,) if single is not None else request.statements()
            else:
                steps = (request,)
            try:
                for step in steps:
                    send = yield from _step(state, step, nested, alone_ok, attempts)
            except sqlite3.Error as exc:
                error = translate(exc)
                error.__cause__ = exc
            except StorageError as exc:
                error = exc
        if state.mode is not None:
            yield from _commit(nested, attempts)
            state.mode = None
        return result
    except GeneratorExit:
        raise
    except BaseException:
        if state.mode is not None:
            yield from _rollback(nested)
        raise
    finally:
        plan.close()


def _step(state: _State, request: Any, nested: bool, alone_ok: bool, attempts: int) -> Op[Any]:
    """Perform one request in the plan's transaction, opening it when the request needs it."""
    if isinstance(request, Begin):
        want: str | None = "write" if request.write else "read"
    elif isinstance(request, Execute):
        want = "write"
        if state.wrote_alone:
            raise StorageError("a standalone write must be its plan's only write")
    else:
        want = None
    if state.mode is None and alone_ok and isinstance(request, Execute) and request.standalone:
        state.wrote_alone = True
        return (yield from _retrying(request, attempts))
    if want is not None and state.mode is None:
        yield from _begin(want, nested, attempts)
        state.mode = want
    elif want == "write" and state.mode == "read":
        raise StorageError("a plan that began a read snapshot tried to write")
    if isinstance(request, Begin):
        return None
    if state.mode is None:
        return (yield from _retrying(request, attempts))
    return (yield request)


def _begin(mode: str, nested: bool, attempts: int) -> Op[None]:
    if nested:
        sql = f"SAVEPOINT {_SAVEPOINT}"
    else:
        sql = _BEGIN_WRITE if mode == "write" else "BEGIN DEFERRED"
    yield from _retrying(_statement(sql), attempts)


def _commit(nested: bool, attempts: int) -> Op[None]:
    try:
        # In rollback-journal mode COMMIT may wait for readers; the transaction stays whole.
        yield from _retrying(_statement(f"RELEASE {_SAVEPOINT}" if nested else "COMMIT"), attempts)
    except sqlite3.Error as exc:
        raise translate(exc) from exc

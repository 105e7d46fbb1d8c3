"""Transactions, retries and error translation, written once for both executors.

`transaction(plan)` wraps a backend plan into a plan of plain statements: it opens the
transaction the plan's requests ask for, commits when the plan returns, rolls back when it
raises, retries what is safe to retry when SQLite reports the database busy, and turns
`sqlite3` errors into `checkpoint_base` errors before the plan sees them. The sync and the
async executor only perform `Query`, `Execute` and `Sleep` on one connection.

Locking: a write takes the write lock first (`BEGIN IMMEDIATE`), so a transaction never
upgrades from reading to writing, which SQLite would refuse at once with SQLITE_BUSY
(deadlock avoidance) instead of waiting. Waiting is SQLite's `busy_timeout`; when it runs
out, `BEGIN`, `COMMIT` and autocommit reads are retried a bounded number of times (nothing
has been done yet, or the transaction is still whole), with a growing, jittered pause.
"""

from __future__ import annotations

import random
import sqlite3
from collections.abc import Generator
from dataclasses import dataclass
from typing import Any, TypeVar

from checkpoint_base import StorageError, StorageUnavailableError

from ._requests import Begin, Execute

__all__ = ["Sleep", "is_busy", "transaction", "translate"]

T = TypeVar("T")

_SQLITE_BUSY = 5
_SQLITE_LOCKED = 6
_UNAVAILABLE = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)
_SAVEPOINT = "cp_plan"

Op = Generator[Any, Any, T]


@dataclass(frozen=True, slots=True)
class Sleep:
    """Pause before a retry (performed by the executor: `time.sleep` or `asyncio.sleep`)."""

    seconds: float


def is_busy(exc: BaseException) -> bool:
    """True for SQLITE_BUSY / SQLITE_LOCKED: another connection holds the lock."""
    if not isinstance(exc, sqlite3.OperationalError):
        return False
    code = getattr(exc, "sqlite_errorcode", None)  # Python >= 3.11
    if code is not None:
        return code & 0xFF in (_SQLITE_BUSY, _SQLITE_LOCKED)
    message = str(exc).lower()
    return "locked" in message or "busy" in message


def translate(exc: sqlite3.Error) -> StorageError:
    """The `checkpoint_base` error for a `sqlite3` error (the caller chains it)."""
    message = str(exc)
    lowered = message.lower()
    if is_busy(exc) or any(part in lowered for part in _UNAVAILABLE):
        return StorageUnavailableError(f"SQLite: {message}")
    if "no such table: cp_" in lowered:
        return StorageError(
            f"SQLite: {message}; the checkpoint tables are missing: call saver.setup() "
            "(connect() and from_conn_string() do it for you)"
        )
    return StorageError(f"SQLite: {message}")


def _pause(attempt: int) -> Sleep:
    return Sleep(0.01 * 2**attempt * (0.5 + random.random()))


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


def transaction(plan: Op[T], *, nested: bool = False, attempts: int = 4) -> Op[T]:
    """Run `plan` inside the transaction its requests ask for.

    Args:
        plan: A backend plan yielding `Query`, `Execute` and `Begin`.
        nested: The connection is already inside the caller's transaction: use a savepoint
            (the caller's commit makes the writes durable).
        attempts: How many times a busy `BEGIN`, `COMMIT` or autocommit read is tried.

    Returns:
        The plan's result, after its transaction committed.

    Raises:
        StorageUnavailableError: The database stayed locked through every attempt, or
            cannot be opened or written.
        StorageError: Any other SQLite error.
    """
    mode: str | None = None  # None (autocommit), "read" or "write"
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
            want = (
                ("write" if request.write else "read")
                if isinstance(request, Begin)
                else "write"
                if isinstance(request, Execute)
                else None
            )
            try:
                if want is not None and mode is None:
                    yield from _begin(want, nested, attempts)
                    mode = want
                elif want == "write" and mode == "read":
                    raise StorageError("a plan that began a read snapshot tried to write")
                if isinstance(request, Begin):
                    continue
                if mode is None:
                    send = yield from _retrying(request, attempts)
                else:
                    send = yield request
            except sqlite3.Error as exc:
                error = translate(exc)
                error.__cause__ = exc
            except StorageError as exc:
                error = exc
        if mode is not None:
            yield from _commit(nested, attempts)
            mode = None
        return result
    except GeneratorExit:
        raise
    except BaseException:
        if mode is not None:
            yield from _rollback(nested)
        raise
    finally:
        plan.close()


def _begin(mode: str, nested: bool, attempts: int) -> Op[None]:
    if nested:
        sql = f"SAVEPOINT {_SAVEPOINT}"
    else:
        sql = "BEGIN IMMEDIATE" if mode == "write" else "BEGIN DEFERRED"
    yield from _retrying(_statement(sql), attempts)


def _commit(nested: bool, attempts: int) -> Op[None]:
    try:
        # In rollback-journal mode COMMIT may wait for readers; the transaction stays whole.
        yield from _retrying(_statement(f"RELEASE {_SAVEPOINT}" if nested else "COMMIT"), attempts)
    except sqlite3.Error as exc:
        raise translate(exc) from exc

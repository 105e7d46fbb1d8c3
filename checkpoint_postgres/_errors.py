"""Driver errors: which ones a retry may cure, and their translation to checkpoint_base errors."""

from __future__ import annotations

import inspect
from typing import Any

import psycopg
from psycopg import pq
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from checkpoint_base import StorageError, StorageFullError, StorageUnavailableError

__all__ = [
    "FIRST_WAIT",
    "answered",
    "aprobe_pool",
    "connection_lost",
    "pool_timeout",
    "probe_pool",
    "read_only",
    "refusal",
    "reports_read_only",
    "retryable_conflict",
    "translate",
]

FIRST_WAIT = 2.0
"""Seconds a pool's first connection is waited for before the saver connects once
itself to learn why it is late (`probe_pool`): a server that refuses the connection, a
database or role that does not exist, a wrong password then fail the call at once, with
the server's own words, where the pool retried them for its whole `timeout` (30 s) and
then said only that it had no connection. A server that answered but is not ready
(`answered`: a standby before its promotion, a server starting up) is waited for."""
_PROBE_TIMEOUT = 10

# Class 08: connection exception. 57P01-03: the server is shutting down, crashed or starting.
_LOST_STATES = frozenset({"57P01", "57P02", "57P03"})
# The statement was rolled back as a whole: running it again is always safe.
_CONFLICT_STATES = frozenset({"40001", "40P01"})
# The schema or its tables are missing: the most likely cause is a missing setup().
_NOT_SET_UP = frozenset({"42P01", "3F000"})
# A function of a later migration is missing: the schema predates this version.
_UNDEFINED_FUNCTION = "42883"
# Class 54, program limit exceeded (psycopg: an OperationalError): the request itself is
# too big or too deep, not the server unreachable.
_LIMIT_CLASS = "54"
_READ_ONLY = "25006"
"""SQLSTATE read_only_sql_transaction: a write sent to a standby, or in a read-only session."""
_DISK_FULL = "53100"
"""SQLSTATE disk_full: the server could not extend a file (a table, its index or TOAST)."""


def connection_lost(exc: BaseException, conn: psycopg.BaseConnection[object] | None) -> bool:
    """True when `exc` means the connection is gone (server restart, proxy drop, network)."""
    if not isinstance(exc, psycopg.Error):
        return False
    state = exc.sqlstate or ""
    if state.startswith("08") or state in _LOST_STATES:
        return True
    if not isinstance(exc, psycopg.OperationalError):
        return False
    if not state and isinstance(exc.__cause__, OSError):
        # psycopg's wait on the socket failed ("connection socket closed"): the server or a
        # proxy closed it, and libpq may not have marked the connection bad yet.
        return True
    if conn is None:
        return False
    return conn.closed or conn.broken or conn.pgconn.status == pq.ConnStatus.BAD


def read_only(exc: BaseException) -> bool:
    """True when the server refused a write as read-only (SQLSTATE 25006): a standby, a
    primary demoted or fenced by a failover (Aurora's old writer, now a reader), or a
    read-only session."""
    return isinstance(exc, psycopg.Error) and exc.sqlstate == _READ_ONLY


def reports_read_only(conn: psycopg.BaseConnection[Any]) -> bool:
    """Whether the server of `conn` said, when it last answered, that it takes no writes:
    a standby, or `default_transaction_read_only` (reported by PostgreSQL 14 and later)."""
    status = conn.info.parameter_status
    return status("in_hot_standby") == "on" or status("default_transaction_read_only") == "on"


def retryable_conflict(exc: BaseException) -> bool:
    """True for a deadlock or serialization failure (the statement was rolled back)."""
    return isinstance(exc, psycopg.Error) and (exc.sqlstate or "") in _CONFLICT_STATES


def translate(exc: BaseException, schema: str) -> StorageError:
    """The checkpoint_base error for a driver or pool error (the caller chains it)."""
    if isinstance(exc, PoolTimeout):
        return StorageUnavailableError(f"no PostgreSQL connection available from the pool: {exc}")
    if isinstance(exc, psycopg.Error):
        state = exc.sqlstate or ""
        detail = f"PostgreSQL error{f' {state}' if state else ''}: {exc}".rstrip()
        if state in _NOT_SET_UP:
            return StorageError(
                f"{detail} -- the checkpoint tables are missing in schema {schema!r}; "
                "run saver.setup() (or `checkpointers setup URL`) first"
            )
        if state == _UNDEFINED_FUNCTION:
            return StorageError(
                f"{detail} -- schema {schema!r} was set up by an earlier version of "
                "checkpointers; run saver.setup() (or `checkpointers setup URL`) to apply the "
                "newer migrations"
            )
        if state.startswith(_LIMIT_CLASS):
            return StorageError(
                f"{detail} -- the request is beyond a PostgreSQL limit (an index row of at "
                "most 8 kB, which thread ids, namespaces, channel and task names of several "
                "kB exceed; a field of at most 1 GB; JSON no deeper than max_stack_depth "
                "allows): it fails the same way when sent again; make it smaller"
            )
        if state == _READ_ONLY:
            return StorageError(
                f"{detail} -- the server takes no writes: it is a standby (a read replica, "
                "or a primary demoted by a failover), or the session is read-only "
                "(default_transaction_read_only). Point the saver at the primary; with "
                "several hosts in the conninfo, target_session_attrs=read-write picks it"
            )
        if state == _DISK_FULL:
            return StorageFullError(
                f"{detail} -- the disk of the PostgreSQL server (where the saver's tables or "
                "their tablespace live) is full; nothing of this call was stored. Free space "
                "on that disk (while it is full, even VACUUM may fail); then delete or prune "
                "threads (`checkpointers delete --idle 30d`, `checkpointers prune`) and run "
                "`checkpointers compact`, so that new checkpoints reuse their room"
            )
        if isinstance(exc, psycopg.OperationalError) or state.startswith("08"):
            hint = refusal(" ".join(str(exc).split()))  # a reconnection refused so
            if hint is not None:
                return StorageError(f"{detail} -- {hint}")
            return StorageUnavailableError(detail)
        return StorageError(detail)
    return StorageError(f"PostgreSQL operation failed: {exc!r}")


def _probe_kwargs(pool: Any) -> dict[str, Any]:
    """The pool's connection arguments, with a connect timeout of at most `_PROBE_TIMEOUT`."""
    kwargs = dict(pool.kwargs or {})
    try:
        seconds = float(kwargs.get("connect_timeout") or _PROBE_TIMEOUT)
    except (TypeError, ValueError):
        seconds = _PROBE_TIMEOUT
    kwargs["connect_timeout"] = max(1, min(int(seconds), _PROBE_TIMEOUT))
    return kwargs


# What libpq and the server say when a connection is refused in a way that sending it again
# cannot cure (TLS, credentials), and what to change (psycopg 3.2 with libpq 16 and 17,
# PostgreSQL 15).
_REFUSALS = (
    (
        ("password authentication failed", "no password supplied"),
        "the server refused the credentials: give the role's password in the URL "
        "(postgresql://user:password@host/db, percent-encoded), PGPASSWORD or ~/.pgpass",
    ),
    (
        ("certificate verify failed", "root certificate file", "does not match host name"),
        "the server's TLS certificate is not trusted: give the CA that signed it in the "
        "conninfo (sslrootcert=/path/ca.pem, with sslmode=verify-full)",
    ),
    (
        (
            "requires a valid client certificate",
            "certificate authentication failed",
            "alert certificate required",
            "alert bad certificate",
            "alert unknown ca",
        ),
        "the server asks for a client certificate it trusts: give it in the conninfo "
        "(sslcert=/path/cert.pem&sslkey=/path/key.pem)",
    ),
    (
        ("no encryption",),  # no pg_hba.conf line takes a plain connection (hostssl only)
        "if the server takes only TLS connections from this host (hostssl in pg_hba.conf), "
        "ask for TLS: sslmode=require, or sslmode=verify-full with sslrootcert=/path/ca.pem",
    ),
    (
        ("server does not support SSL",),
        "the server does not speak TLS: turn ssl on at the server, or drop sslmode=require "
        "(verify-ca, verify-full) from the conninfo",
    ),
)


def _cannot_connect(exc: psycopg.Error) -> StorageError:
    """The error for a connection that failed: a StorageError naming the fix when the
    credentials or TLS (or pg_hba.conf's want of it) refused it, as sending it again fails
    again; else a StorageUnavailableError with the server's or libpq's words."""
    text = " ".join(str(exc).split())
    hint = refusal(text)
    if hint is not None:
        return StorageError(f"cannot connect to PostgreSQL: {text} -- {hint}")
    return StorageUnavailableError(f"cannot connect to PostgreSQL: {text}")


def refusal(text: str) -> str | None:
    """What to change when `text` says the credentials or TLS (or pg_hba.conf's want of it)
    refused a connection; None when it does not."""
    for needles, hint in _REFUSALS:
        if any(needle in text for needle in needles):
            return hint
    return None


def probe_pool(pool: ConnectionPool[Any]) -> StorageError | None:
    """Connect once as `pool` would: the error that says why it has no connection, or None
    when connecting works (the pool is only slow or busy)."""
    conninfo: Any = pool.conninfo
    try:
        if callable(conninfo):  # psycopg_pool's dynamic conninfo
            conninfo = conninfo()
        psycopg.connect(conninfo, **_probe_kwargs(pool)).close()
    except psycopg.Error as exc:
        return _cannot_connect(exc)
    return None


async def aprobe_pool(pool: AsyncConnectionPool[Any]) -> StorageError | None:
    """Async twin of `probe_pool`."""
    conninfo: Any = pool.conninfo
    try:
        if callable(conninfo):  # psycopg_pool's dynamic conninfo
            conninfo = conninfo()
            if inspect.isawaitable(conninfo):
                conninfo = await conninfo
        conn = await psycopg.AsyncConnection.connect(conninfo, **_probe_kwargs(pool))
    except psycopg.Error as exc:
        return _cannot_connect(exc)
    await conn.close()
    return None


# What libpq reports of a server that answered but does not take the session yet: the
# standby of a failover before its promotion (target_session_attrs=read-write, or
# =primary), a server starting up or recovering, or one whose connection slots are taken.
# (PgBouncer takes the connection itself when its server is down; the first query then
# fails, and is retried for the reconnect budget like any call's.)
_NOT_YET = (
    "session is read-only",
    "server is in hot standby mode",
    "the database system is starting up",
    "the database system is in recovery mode",
    "the database system is not yet accepting connections",
    "too many clients already",
    "remaining connection slots are reserved",
)


def answered(probed: StorageError) -> bool:
    """Whether a connection that `probe_pool` saw fail reached a server that will take it
    soon (`_NOT_YET`): the first call then waits the pool's whole `timeout`, as a later
    call would, instead of failing after `FIRST_WAIT` as it does when nothing answered (a
    wrong address) or the answer will not change (a wrong password)."""
    return type(probed) is StorageUnavailableError and any(
        words in str(probed) for words in _NOT_YET
    )


def pool_timeout(exc: PoolTimeout, probed: StorageError | None) -> StorageError:
    """The error for a pool that gave no connection in time, with why when `probed` says
    (of its class: a refusal over TLS is no StorageUnavailableError)."""
    if probed is not None:
        return type(probed)(f"{probed} (the pool: {exc})")
    return StorageUnavailableError(
        f"no PostgreSQL connection available from the pool: {exc}; connecting works, so "
        "every connection was in use: raise the pool's max_size, or hold fewer at once"
    )

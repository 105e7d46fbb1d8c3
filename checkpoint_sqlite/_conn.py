"""Where a SQLite database is and how the saver's own connections are opened."""

from __future__ import annotations

import os
import urllib.parse
from dataclasses import dataclass
from typing import Any

from checkpoint_base import ConfigError
from checkpoint_base._connect import SWEEP_KEYS
from checkpoint_base._flags import url_flag
from checkpoint_base._schemes import canonical_url

__all__ = [
    "MEMORY",
    "READ_PROBE",
    "ConnectOptions",
    "connect_target",
    "connection_pragmas",
    "database_path",
    "open_options",
    "synchronous_pragma",
    "why_unopened",
]

MEMORY = ":memory:"

DEFAULT_TIMEOUT = 5.0
# The `synchronous` settings a saver offers, with their statement (never formatted).
# OFF is left out: an operating-system crash or power loss may then corrupt the file.
_SYNCHRONOUS = {"normal": "PRAGMA synchronous=NORMAL", "full": "PRAGMA synchronous=FULL"}


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How the saver opens its own connections.

    Attributes:
        timeout: Seconds a connection waits for another one's lock (`busy_timeout`)
            before a bounded retry; only then does the caller see an error. A writer of a
            sync saver waits as long for its turn among the saver's writers
            (`PooledExecutor.writer_lock`), then goes ahead without it.
        max_idle: Idle connections kept open for reuse (sync: per saver; async: per saver,
            each one is a thread of aiosqlite).
        max_connections: Async only: at most this many connections (threads) at once.
        synchronous: `"normal"` (default) or `"full"`: when a commit reaches the disk (see
            `connection_pragmas`).
        read_only: Open every connection read-only (`mode=ro`): a file this process may
            read but not write, or one it must not change; any write fails.
    """

    timeout: float = DEFAULT_TIMEOUT
    max_idle: int = 8
    max_connections: int = 16
    synchronous: str = "normal"
    read_only: bool = False

    def __post_init__(self) -> None:
        if self.timeout < 0 or self.max_idle < 0 or self.max_connections < 1:
            raise ConfigError(
                "timeout and max_idle must be >= 0 and max_connections >= 1, got "
                f"timeout={self.timeout}, max_idle={self.max_idle}, "
                f"max_connections={self.max_connections}"
            )
        if self.synchronous not in _SYNCHRONOUS:
            raise ConfigError(f"synchronous must be 'normal' or 'full', got {self.synchronous!r}")


def open_options(
    conn_string: str,
    *,
    timeout: float | None,
    synchronous: str | None,
    read_only: bool | None = None,
    **limits: Any,
) -> tuple[str, ConnectOptions]:
    """The database path and connection options of `SqliteSaver.open` and its async twin.

    A `sqlite:///` URL may carry `timeout`, `synchronous` and `read_only` in its query
    (`sqlite:///app.db?synchronous=full&timeout=10`); a keyword argument gives the same
    option. An unknown query option, or one given both ways with different values, is an
    error: nothing in the URL is ignored.

    Raises:
        ConfigError: The URL or an option is invalid.
    """
    query = url_options(conn_string)
    chosen: dict[str, Any] = {}
    given = (("timeout", timeout), ("synchronous", synchronous), ("read_only", read_only))
    for name, value in given:
        in_url = query.get(name)
        if value is not None and in_url is not None and in_url != value:
            raise ConfigError(
                f"{name} is given twice, {in_url!r} in {conn_string!r} and {value!r} as an "
                "argument: give it once"
            )
        picked = value if value is not None else in_url
        if picked is not None:
            chosen[name] = picked
    path = database_path(conn_string)
    if path == MEMORY and chosen.get("read_only"):
        raise ConfigError(
            "read_only=true on an in-memory SQLite database: it starts empty, with nothing to "
            "read; give a file (sqlite:///path.db)"
        )
    return path, ConnectOptions(**chosen, **limits)


# Options of sqlite3.connect and SQLite's URI filenames that SQLAlchemy URLs carry, with what
# to write instead: the saver opens and configures its own connections.
_FOREIGN_OPTIONS = {
    "mode": "for a read-only database write read_only=true (mode=ro is SQLite's URI form)",
    "uri": "give the file's path (sqlite:///path.db): the saver builds any URI itself",
    "check_same_thread": "drop it: the saver's connections are its own, safe across threads",
    "immutable": "open it with read_only=true (immutable=1 is not taken: SQLite would read a "
    "file that another process changes without its locks)",
}


def url_options(target: str) -> dict[str, Any]:
    """The options in the query of a `sqlite:///` URL: `timeout` (seconds), `synchronous`,
    `read_only` (true or false).

    Raises:
        ConfigError: An option is unknown, repeated or malformed.
    """
    if "://" not in target or "?" not in target:
        return {}
    query = target.split("?", 1)[1]
    try:
        pairs = urllib.parse.parse_qsl(query, keep_blank_values=True, strict_parsing=True)
    except ValueError as exc:
        raise ConfigError(f"malformed query in SQLite URL {target!r}: {exc}") from exc
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key not in ("timeout", "synchronous", "read_only"):
            raise ConfigError(
                f"unknown option {key!r} in SQLite URL {target!r}; known: "
                "timeout (seconds), synchronous (normal or full), read_only (true or false)"
                + (
                    "; ttl, sweep_every and ttl_strategy are read by "
                    "checkpoint_base.connect(url), which sweeps idle threads"
                    if key in SWEEP_KEYS
                    else f"; {_FOREIGN_OPTIONS[key]}"
                    if key in _FOREIGN_OPTIONS
                    else ""
                )
            )
        if key in found:
            raise ConfigError(f"option {key!r} appears twice in SQLite URL {target!r}")
        if key == "timeout":
            try:
                found[key] = float(value)
            except ValueError:
                raise ConfigError(
                    f"timeout in SQLite URL {target!r} must be a number of seconds, got {value!r}"
                ) from None
        elif key == "read_only":
            flag = url_flag(value)
            if flag is None:
                raise ConfigError(
                    f"read_only in SQLite URL {target!r} must be true or false, got {value!r}"
                )
            found[key] = flag
        else:
            found[key] = value.lower()
    return found


def database_path(target: str) -> str:
    """The database of a `sqlite:///...` URL or a plain path; `:memory:` for memory.

    `sqlite:///rel/path.db` is relative, `sqlite:////abs/path.db` absolute, and
    `sqlite:///:memory:` (or `sqlite://`) an in-memory database. A plain string that is not a
    URL is taken as a path, as `langgraph-checkpoint-sqlite`'s `from_conn_string` does.

    Raises:
        ConfigError: The URL's scheme is not `sqlite`, or it names a host.
    """
    if "://" not in target:
        return target
    scheme, rest = canonical_url(target).split("://", 1)  # sqlite+aiosqlite:// too
    if scheme.lower() != "sqlite":
        raise ConfigError(f"not a SQLite URL: {target!r}; expected sqlite:///path.db")
    if rest in ("", "/"):
        return MEMORY
    if not rest.startswith("/"):
        raise ConfigError(
            f"SQLite URL {target!r} names a host; use sqlite:///relative.db or "
            "sqlite:////absolute/path.db"
        )
    path = urllib.parse.unquote(rest[1:].split("?", 1)[0])
    if not path:
        return MEMORY
    return path


READ_PROBE = ("PRAGMA schema_version",)
"""What a read-only connection runs when opened, instead of the settings of
`connection_pragmas` (it changes neither the journal mode nor how commits sync): SQLite opens
a file lazily, and this read fails at once where the connection cannot read."""


def connect_target(path: str, read_only: bool) -> tuple[str, bool]:
    """What `sqlite3.connect` takes for `path`: the path itself, or a `file:` URI with
    `mode=ro` for a read-only connection; and whether it is a URI."""
    if not read_only:
        return path, False
    return f"file:{urllib.parse.quote(os.path.abspath(path))}?mode=ro", True


def connection_pragmas(path: str, synchronous: str = "normal") -> tuple[str, ...]:
    """The settings of every connection the saver opens itself.

    WAL lets readers run while one connection writes. `synchronous="normal"` (the default)
    keeps every committed transaction through a crash or kill of the process (the WAL is
    synced at checkpoints, not at each commit), but a power loss or an operating-system
    crash may lose the last commits. `"full"` syncs the WAL at every commit, so nothing
    committed is lost even then (what the official LangGraph SqliteSaver gets from SQLite's
    default); an autocommit INSERT of 20 KB took 250 us instead of 54 us on the 2-core test
    machine (sqlite3, WAL). A `:memory:` database has no journal to set.
    """
    if path == MEMORY:
        return ()
    return ("PRAGMA journal_mode=WAL", _SYNCHRONOUS[synchronous])


def synchronous_pragma(synchronous: str) -> str:
    """The statement that sets `synchronous` ("normal" or "full") on a connection."""
    return _SYNCHRONOUS[synchronous]


def why_unopened(path: str, message: str, read_only: bool = False) -> ConfigError | None:
    """What stops SQLite from opening `path`, when its error ("unable to open database
    file", "attempt to write a readonly database") says only that it could not: a directory
    that does not exist, a directory where the file should be, missing permissions, and for
    a read-only connection (`read_only`) a missing file or a WAL index it cannot have. None
    when none of these is the cause (a passing lock, a full disk: the caller's error)."""
    lowered = message.lower()
    if path == MEMORY or not ("unable to open" in lowered or "readonly" in lowered):
        return None
    full = os.path.abspath(path)
    where = os.path.dirname(full)
    if os.path.isdir(full):
        return ConfigError(f"cannot open SQLite database {path!r}: it is a directory")
    if not os.path.isdir(where):
        return ConfigError(
            f"cannot open SQLite database {path!r}: its directory {where!r} does not exist; "
            "create it first (SQLite creates the file, not the directories above it)"
        )
    if read_only:
        return _why_unread(path, full, where)
    if os.path.exists(full) and not os.access(full, os.R_OK | os.W_OK):
        return ConfigError(
            f"cannot open SQLite database {path!r}: this process may not read and write it; "
            "to read it only, open it read-only (sqlite:///path.db?read_only=true)"
        )
    if not os.access(where, os.W_OK | os.X_OK):
        return ConfigError(
            f"cannot open SQLite database {path!r}: this process may not create files in "
            f"{where!r}, where SQLite keeps the database's -wal and -shm files beside it"
        )
    return None


def _why_unread(path: str, full: str, where: str) -> ConfigError | None:
    if not os.path.exists(full):
        return ConfigError(
            f"cannot open SQLite database {path!r} read-only: it does not exist (read_only "
            "opens an existing file, never creates one)"
        )
    if not os.access(full, os.R_OK):
        return ConfigError(f"cannot open SQLite database {path!r}: this process may not read it")
    if not os.path.exists(full + "-shm") and not os.access(where, os.W_OK | os.X_OK):
        return ConfigError(
            f"cannot read SQLite database {path!r} read-only: the file is in WAL mode, and "
            f"SQLite reads it only through its -shm file, which does not exist (no process "
            f"has the database open) and which this process may not create in {where!r}. "
            "Read it while the application that writes it has it open, or read a copy in a "
            "directory this process may write (cp the .db file, with its -wal file if any)"
        )
    if os.path.exists(full + "-shm") and not os.access(full + "-shm", os.R_OK):
        return ConfigError(
            f"cannot read SQLite database {path!r} read-only: this process may not read its "
            f"WAL index {path + '-shm'!r}"
        )
    return None

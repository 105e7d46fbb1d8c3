"""Where a SQLite database is and how the saver's own connections are opened."""

from __future__ import annotations

import urllib.parse
from dataclasses import dataclass

from checkpoint_base import ConfigError

__all__ = ["MEMORY", "ConnectOptions", "connection_pragmas", "database_path"]

MEMORY = ":memory:"


@dataclass(frozen=True, slots=True)
class ConnectOptions:
    """How the saver opens its own connections.

    Attributes:
        timeout: Seconds a connection waits for another one's lock (`busy_timeout`)
            before a bounded retry; only then does the caller see an error.
        max_idle: Idle connections kept open for reuse (sync: per saver; async: per saver,
            each one is a thread of aiosqlite).
        max_connections: Async only: at most this many connections (threads) at once.
    """

    timeout: float = 5.0
    max_idle: int = 8
    max_connections: int = 16

    def __post_init__(self) -> None:
        if self.timeout < 0 or self.max_idle < 0 or self.max_connections < 1:
            raise ConfigError(
                "timeout and max_idle must be >= 0 and max_connections >= 1, got "
                f"timeout={self.timeout}, max_idle={self.max_idle}, "
                f"max_connections={self.max_connections}"
            )


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
    scheme, rest = target.split("://", 1)
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


def connection_pragmas(path: str) -> tuple[str, ...]:
    """The settings of every connection the saver opens itself.

    WAL lets readers run while one connection writes; `synchronous=NORMAL` in WAL mode
    keeps every committed transaction through a crash or kill of the process (the WAL is
    synced at checkpoints, not at each commit), but a power loss may lose the last
    commits. A `:memory:` database has no journal to set.
    """
    if path == MEMORY:
        return ()
    return ("PRAGMA journal_mode=WAL", "PRAGMA synchronous=NORMAL")

"""Open what a command-line URL names, as a migration side.

- `sqlite:///...`, `postgresql://...`, `redis://...`, `memory://`, ...: a saver of this
  package, through `connect()` (any installed backend).
- `langgraph-sqlite:///path.db`: the database file of LangGraph's official SQLite saver.
- `langgraph-postgres://user@host/db` (or `langgraph-postgresql://`): the tables of
  LangGraph's official Postgres saver (`?options=-csearch_path%3Dmyschema` picks a schema).
- `py:package.module:factory`: any `BaseCheckpointSaver` that `factory()` returns (or yields,
  as a context manager), read and written through its public API.

With `LANGGRAPH_AES_KEY` set, the savers opened here (ours and the official ones) encrypt
and decrypt values with that key, as LangGraph's server does: LangGraph's
`EncryptedSerializer` (AES, from pycryptodome) around their own serializer. Values stored
without encryption are still read.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import urllib.parse
from collections.abc import Iterator, Sequence
from typing import Any

from ._allow import allowed_pairs, import_local
from ._connect import backend_url, connect, unswept
from ._encryption import serde_option
from ._errors import (
    ConfigError,
    MissingDriverError,
    StorageError,
    StorageUnavailableError,
    UnknownBackendError,
)
from ._migrate import as_side
from ._migrate_side import SaverSide, Side
from ._records import ThreadInfo

__all__ = [
    "URL_HELP",
    "add_allow_argument",
    "allow_types",
    "every_thread",
    "listed_thread",
    "missing_thread",
    "open_side",
    "saver_side",
]

URL_HELP = """\
URLs:
  sqlite:///rel.db  sqlite:////abs/path.db    a saver of this package (any installed
  postgresql://user@host:5432/db[?schema=s]   backend: memory://, sqlite, postgresql,
  redis://host:6379/0  redis+cluster://h:7000  redis, redis+cluster, ...); SQLAlchemy's
  postgresql+asyncpg://...  valkey://h:6379/0   and Valkey's spellings name the same store
  langgraph-sqlite:///path.db                 LangGraph's official SqliteSaver database
  langgraph-postgres://user@host/db           LangGraph's official PostgresSaver tables
                                              (?options=-csearch_path%3Dschema for a schema)
  py:package.module:factory                   any BaseCheckpointSaver that factory()
                                              returns or yields (through its public API)
"""

_ALLOW_HELP = (
    "rebuild this class of your own from stored values: MODULE:CLASS, or MODULE for every "
    "class it defines (repeat); the command imports MODULE from the current directory or "
    "PYTHONPATH"
)

_CONNECT_TIMEOUT = 5


def _official_options() -> dict[str, Any]:
    """`serde=` for an official saver: its own serializer, encrypting with `LANGGRAPH_AES_KEY`."""
    from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

    return serde_option(JsonPlusSerializer())


def _sqlite_path(url: str, scheme: str) -> str:
    rest = url[len(scheme) + len("://") :]
    if not rest.startswith("/") or rest in ("/", ""):
        raise ConfigError(
            f"bad URL {url!r}: use {scheme}:///relative/path.db or {scheme}:////absolute/path.db"
        )
    path = urllib.parse.unquote(rest[1:].split("?", 1)[0])
    if path == ":memory:":
        raise ConfigError(f"{url!r} names an in-memory database: it would be empty; use a file")
    return path


def _require_file(path: str, url: str) -> None:
    if not os.path.exists(path):
        raise ConfigError(
            f"no database file at {path!r} (from {url!r}); check the path "
            "(sqlite:///rel.db is relative to the current directory, sqlite:////abs.db absolute)"
        )


def _unwritable(path: str) -> bool:
    """Whether this process may read the SQLite file at `path` but not write it, or not
    create its -wal and -shm files beside it."""
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        return False
    where = os.path.dirname(os.path.abspath(path))
    return not os.access(path, os.W_OK) or not os.access(where, os.W_OK | os.X_OK)


_REDIS_SCHEMES = ("redis", "rediss", "redis+cluster", "redis+sentinel", "unix")


def _redis_prefix(url: str) -> str:
    from checkpoint_redis._backend import DEFAULT_PREFIX
    from checkpoint_redis._urls import saver_options

    return str(saver_options(url)[1].get("key_prefix") or DEFAULT_PREFIX)


def _probe_redis(url: str, shown: str) -> bool:
    """Whether a saver was set up under the URL's key prefix (its layout key exists): a
    command that must not write looks first, since opening a saver runs `setup()`, which
    would write that key under a mistyped `?key_prefix=` too."""
    try:
        from checkpoint_redis._backend import RedisBackend
        from checkpoint_redis._errors import translate
        from checkpoint_redis._urls import saver_options, sync_client
    except ImportError as exc:
        raise MissingDriverError(
            "Redis needs redis-py: pip install 'checkpointers[redis]'"
        ) from exc
    plain, _ = saver_options(url)
    try:
        layout = RedisBackend(key_prefix=_redis_prefix(url)).layout
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc
    client: Any = None
    try:
        client = sync_client(plain)  # a cluster's reads its slot map here
        return bool(client.exists(layout.schema_key))
    except ConfigError:
        raise
    except Exception as exc:
        reason = exc if isinstance(exc, StorageError) else translate(exc)
        raise StorageUnavailableError(
            f"cannot reach {shown}: {reason}; is the server running on that host and port?"
        ) from exc
    finally:
        if client is not None:
            client.close()


def _probe_postgres(url: str, shown: str, tables_of: str | None = None) -> bool:
    """Fail fast, in one line, when the server cannot be reached (a pool would wait 30 s).

    Returns whether schema `tables_of` holds the saver's tables (True when not asked): a
    command that must not create them looks first, since opening a saver runs `setup()`,
    which would create them, in a mistyped `?schema=` too.
    """
    try:
        import psycopg
    except ImportError as exc:
        raise MissingDriverError(
            "PostgreSQL needs psycopg: pip install 'checkpointers[postgres]'"
        ) from exc
    from psycopg.conninfo import conninfo_to_dict

    try:
        conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"malformed PostgreSQL URL {shown}: {exc}") from exc
    try:
        with psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT) as conn:
            if tables_of is None:
                return True
            from checkpoint_postgres._sql import MIGRATIONS_EXIST

            return conn.execute(MIGRATIONS_EXIST, {"schema": tables_of}).fetchone() is not None
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        from checkpoint_postgres._errors import refusal

        hint = refusal(" ".join(str(exc).split()))
        if hint is not None:  # nothing to do with the server being up
            raise StorageError(
                f"cannot connect to PostgreSQL at {shown}: {reason} -- {hint}"
            ) from exc
        raise StorageUnavailableError(
            f"cannot reach PostgreSQL at {shown}: {reason}; "
            "is the server running, and are host, port, database and credentials right?"
        ) from exc


def _missing_file(url: str, scheme: str) -> bool:
    return not os.path.exists(_sqlite_path(url, scheme))


@contextlib.contextmanager
def _empty(shown: str) -> Iterator[Side]:
    """A stand-in for a database file that does not exist yet: empty, and never written."""
    from ._memory import MemorySaver

    with MemorySaver() as saver:
        yield as_side(saver, f"{shown} (does not exist yet)")


def _connected(url: str, shown: str) -> Any:
    options = serde_option()
    try:
        return connect(url, **options)
    except StorageUnavailableError as exc:
        raise StorageUnavailableError(
            f"cannot reach {shown}: {exc}; is the server running on that host and port?"
        ) from exc


@contextlib.contextmanager
def _ours(url: str, shown: str, *, write: bool, create: bool, missing_ok: bool) -> Iterator[Side]:
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme != "memory":
        # The application's URL may say how long idle threads live (`?ttl=`): a command
        # that reads, copies or changes a store does not sweep it as well.
        url = unswept(url)
    if scheme == "sqlite" and not create:
        _require_file(_sqlite_path(url, "sqlite"), shown)
    if scheme == "sqlite" and not write and _unwritable(_sqlite_path(url, "sqlite")):
        # a command that only reads may read a file this process may not write (another
        # user's, a read-only mount); read-write, SQLite would refuse to open it
        url += ("&" if "?" in url else "?") + "read_only=true"
    missing: str | None = None  # why the store the URL names is not there
    if scheme in ("postgresql", "postgres"):
        from checkpoint_postgres._backend import DEFAULT_SCHEMA
        from checkpoint_postgres._entry import url_schema
        from checkpoint_postgres._urls import libpq_url

        conninfo, schema = url_schema(url)  # schema= is the saver's, not libpq's
        conninfo = libpq_url(conninfo)  # the probe connects itself, before connect() does
        schema = schema or DEFAULT_SCHEMA
        if not _probe_postgres(conninfo, shown, None if create else schema):
            missing = (
                f"no checkpoint tables in schema {schema!r} at {shown}: check the schema "
                "(?schema=name in the URL; 'checkpointers' by default), or create them "
                "with `checkpointers setup URL`"
            )
    elif scheme in _REDIS_SCHEMES and not create and not _probe_redis(url, shown):
        missing = (
            f"no checkpoints under key prefix {_redis_prefix(url)!r} at {shown}: check the "
            "prefix (?key_prefix=name in the URL; 'checkpointers' by default), or set it up "
            "with `checkpointers setup URL`"
        )
    if missing is not None:
        if not missing_ok:
            raise ConfigError(missing)
        with _empty(shown) as side:  # nothing created, as for a missing SQLite file
            yield side
        return
    if scheme == "memory":
        raise ConfigError(
            "memory:// lives only as long as this command: there is nothing to read and what "
            "is written is lost; use a durable URL (sqlite:///file.db, postgresql://..., "
            "redis://...)"
        )
    with _connected(url, shown) as saver:
        yield as_side(saver, shown)


@contextlib.contextmanager
def _langgraph_sqlite(
    url: str, scheme: str, shown: str, *, write: bool, create: bool
) -> Iterator[Side]:
    try:
        from langgraph.checkpoint.sqlite import SqliteSaver
    except ImportError as exc:
        raise MissingDriverError(
            "reading LangGraph's SQLite saver needs it: pip install langgraph-checkpoint-sqlite"
        ) from exc
    path = _sqlite_path(url, scheme)
    if not create:
        _require_file(path, shown)
    if write:
        conn = sqlite3.connect(path, check_same_thread=False)
    else:
        uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
        conn = sqlite3.connect(uri, uri=True, check_same_thread=False)
    with contextlib.closing(conn):
        yield as_side(SqliteSaver(conn, **_official_options()), shown)


@contextlib.contextmanager
def _langgraph_postgres(url: str, scheme: str, shown: str) -> Iterator[Side]:
    try:
        from langgraph.checkpoint.postgres import PostgresSaver
    except ImportError as exc:
        raise MissingDriverError(
            "reading LangGraph's Postgres saver needs it: pip install langgraph-checkpoint-postgres"
        ) from exc
    real = "postgresql" + url[len(scheme) :]
    _probe_postgres(real, shown)
    import psycopg
    from psycopg.rows import dict_row

    with psycopg.connect(
        real,
        autocommit=True,
        prepare_threshold=0,
        row_factory=dict_row,
        connect_timeout=_CONNECT_TIMEOUT,
    ) as conn:
        yield as_side(PostgresSaver(conn, **_official_options()), shown)


@contextlib.contextmanager
def _python_factory(url: str, shown: str) -> Iterator[Side]:
    target = url[len("py:") :]
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise ConfigError(f"bad URL {url!r}: use py:package.module:factory")
    module = import_local(module_name, f"from {url!r}")
    factory: Any = module
    for part in attr.split("."):
        factory = getattr(factory, part, None)
    if not callable(factory):
        raise ConfigError(f"{module_name}:{attr} is not a callable that returns a checkpointer")
    try:
        made = factory()
    except Exception as exc:  # the user's code: say whose, in one line
        raise ConfigError(f"{module_name}:{attr}() failed: {type(exc).__name__}: {exc}") from exc
    with contextlib.ExitStack() as stack:
        from langgraph.checkpoint.base import BaseCheckpointSaver

        if not isinstance(made, BaseCheckpointSaver) and hasattr(made, "__enter__"):
            made = stack.enter_context(made)
        if not isinstance(made, BaseCheckpointSaver):
            raise ConfigError(
                f"{module_name}:{attr}() gave {type(made).__name__}, not a checkpointer "
                "(a BaseCheckpointSaver, or a context manager that yields one)"
            )
        yield as_side(made, shown)


@contextlib.contextmanager
def open_side(
    url: str, *, write: bool = False, missing_ok: bool = False, create: bool | None = None
) -> Iterator[Side]:
    """Open the storage `url` names (see the module docstring) as a migration side.

    Args:
        url: The URL.
        write: The command will write (a missing SQLite file is then created, unless
            `create` is False).
        create: Whether a missing SQLite file, or the saver's PostgreSQL tables, are
            created (default: when `write`). False for commands that read or change what is
            there (prune, delete, compact): a mistyped path or schema is then an error, not
            a new empty store.
        missing_ok: A SQLite file that does not exist, or a PostgreSQL schema without the
            saver's tables, reads as empty (and is not created).

    Raises:
        UnknownBackendError: the scheme is unknown.
        ConfigError: the URL is malformed, or names nothing readable.
        MissingDriverError: a driver is missing; the message names what to install.
        StorageUnavailableError: the server cannot be reached.
    """
    logging.getLogger("psycopg.pool").setLevel(logging.CRITICAL)  # one line, not a log dump
    shown = _redact(url)
    if url.startswith("py:"):
        with _python_factory(url, shown) as side:
            yield side
        return
    if "://" not in url:
        raise UnknownBackendError(
            f"not a URL: {shown!r}; expected scheme://..., for example sqlite:///checkpoints.db"
        )
    if not url.lower().startswith("langgraph-"):
        url = backend_url(url)  # postgresql+asyncpg:// as postgresql://, valkey:// as redis://
    scheme = url.split("://", 1)[0].lower()
    create = write if create is None else create
    if missing_ok and scheme in ("sqlite", "langgraph-sqlite") and _missing_file(url, scheme):
        with _empty(shown) as side:
            yield side
    elif scheme == "langgraph-sqlite":
        with _langgraph_sqlite(url, scheme, shown, write=write, create=create) as side:
            yield side
    elif scheme in ("langgraph-postgres", "langgraph-postgresql"):
        with _langgraph_postgres(url, scheme, shown) as side:
            yield side
    else:
        with _ours(url, shown, write=write, create=create, missing_ok=missing_ok) as side:
            yield side


def add_allow_argument(parser: Any) -> None:
    """`--allow MODULE[:CLASS]` (repeatable), for a command that reads values (`allow_types`)."""
    parser.add_argument(
        "--allow", action="append", default=[], metavar="MODULE[:CLASS]", help=_ALLOW_HELP
    )


def allow_types(side: Side, specs: Sequence[str]) -> None:
    """Let `side`'s serializer rebuild the classes `specs` name (`--allow`; see `_allow`):
    a graph allows its state schema's types when it is compiled, which a command does not.

    Raises:
        ConfigError: a spec is malformed, its module does not import, or it names no class.
    """
    if not specs:
        return
    pairs = allowed_pairs(specs, "--allow")
    saver = getattr(side, "saver", None)
    if saver is None or not hasattr(saver, "with_allowlist"):
        return  # a `py:` saver reads through its own serializer, with its own allowlist
    saver.serde = saver.with_allowlist(pairs).serde


def _redact(url: str) -> str:
    from ._cli_format import redact

    return redact(url)


def saver_side(side: Side, command: str, official: str) -> SaverSide:
    """`side` when it is a saver of this package; else the error saying what to do instead
    (`official`: what LangGraph's official savers offer for the same job)."""
    if not isinstance(side, SaverSide):
        raise ConfigError(
            f"{command} works on savers of this package, not on {side.label}; for LangGraph's "
            f"official savers {official}, or migrate first"
        )
    return side


def every_thread(side: Side, page: int = 1000) -> Iterator[ThreadInfo]:
    """Every thread of `side`, by id, fetched `page` at a time."""
    after = None
    while True:
        found = side.run(side.thread_page(after, page))
        yield from found
        if len(found) < page:
            return
        after = found[-1].thread_id


def listed_thread(side: Side, thread_id: str) -> ThreadInfo | None:
    """The listing's entry for `thread_id` (as `threads` shows it), or None when not listed.

    One page of one thread, from a bound just below the id. An id ending in eight or more
    U+10FFFF could have others between that bound and itself, and then reads as not listed.
    """
    found = side.run(side.thread_page(_just_below(thread_id), 1))
    return found[0] if found and found[0].thread_id == thread_id else None


def _just_below(thread_id: str) -> str | None:
    """A string below `thread_id` that, in practice, no other thread id falls between."""
    if not thread_id:
        return None  # "" is the least string: the first page starts with it
    last = ord(thread_id[-1])
    if last == 0:
        return thread_id[:-1]  # nothing sorts between s and s + NUL
    below = last - 1
    if 0xD800 <= below <= 0xDFFF:  # a surrogate cannot be stored: the code point below them
        below = 0xD7FF
    return thread_id[:-1] + chr(below) + "\U0010ffff" * 8


def missing_thread(side: Side, thread_id: str) -> ConfigError:
    """The error for a thread with no checkpoint: a thread of writes only (as `threads` lists
    them, on savers of this package) is told apart from one that is not there at all."""
    if isinstance(side, SaverSide):
        listed = listed_thread(side, thread_id)
        if listed is not None and listed.checkpoint_count == 0:
            return ConfigError(
                f"thread {thread_id!r} has no checkpoint in {side.label}, only writes stored "
                "after its checkpoints were deleted; remove them with: checkpointers delete "
                f"URL --thread {thread_id}"
            )
    return ConfigError(
        f"no thread {thread_id!r} in {side.label}; list the threads with: checkpointers threads URL"
    )

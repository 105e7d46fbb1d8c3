"""checkpoint_postgres: LangGraph checkpointers on PostgreSQL, over psycopg 3 and psycopg_pool.

    from checkpoint_postgres import PostgresSaver

    with PostgresSaver.from_conn_string("postgresql://user@host/db") as saver:
        saver.setup()
        graph = builder.compile(checkpointer=saver)

Or open one from a URL with `checkpoint_base.connect("postgresql://...")`, which builds a
connection pool and runs the migrations.
"""

from __future__ import annotations

from checkpoint_base import MissingDriverError

try:
    import psycopg  # noqa: F401
    import psycopg_pool  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise MissingDriverError(
        f"checkpoint_postgres needs psycopg 3 and psycopg_pool ({exc}); "
        "install them with: pip install 'checkpointers[postgres]'"
    ) from exc

from ._backend import DEFAULT_SCHEMA, PostgresBackend
from ._migrations import MIGRATIONS
from ._saver import CONNECTION_DEFAULTS, POOL_DEFAULTS, AsyncPostgresSaver, PostgresSaver

__all__ = [
    "CONNECTION_DEFAULTS",
    "DEFAULT_SCHEMA",
    "MIGRATIONS",
    "POOL_DEFAULTS",
    "AsyncPostgresSaver",
    "PostgresBackend",
    "PostgresSaver",
]

"""checkpoint_sqlite: LangGraph checkpointers on SQLite, sync (sqlite3) and async (aiosqlite).

    from checkpoint_sqlite import SqliteSaver

    with SqliteSaver.from_conn_string("checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)

or, through the URL registry, `checkpoint_base.connect("sqlite:///checkpoints.db")`.
The async flavor needs `pip install 'checkpointers[sqlite]'` (aiosqlite).
"""

from __future__ import annotations

from ._async import AsyncSqliteSaver
from ._backend import SqliteBackend
from ._fs import NetworkFilesystemWarning
from ._sync import SqliteSaver

__all__ = ["AsyncSqliteSaver", "NetworkFilesystemWarning", "SqliteBackend", "SqliteSaver"]

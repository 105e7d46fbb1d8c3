"""checkpoint_base: the checkpointer contract written once, the backend interface, and tools.

Open a saver from a URL and compile a LangGraph graph with it:

    from checkpoint_base import connect

    with connect("sqlite:///checkpoints.db") as saver:
        graph = builder.compile(checkpointer=saver)
"""

from __future__ import annotations

from ._backend import Backend, Capabilities, prune_fence
from ._connect import BackendEntry, aconnect, connect, installed_schemes
from ._errors import (
    CheckpointerError,
    ConfigError,
    DamagedDataError,
    MissingDriverError,
    PrunedHistoryError,
    SchemaVersionError,
    StorageError,
    StorageFullError,
    StorageUnavailableError,
    SyncCallInEventLoopError,
    UnknownBackendError,
    ValueTooLargeError,
)
from ._memory import MemorySaver, MemoryStore
from ._metadata import jsonb_refuses
from ._migrate import (
    MigrationProgress,
    MigrationReport,
    VerifyReport,
    amigrate,
    averify,
    migrate,
    verify,
)
from ._plan import AsyncExecutor, Plan, SyncExecutor, arun, run
from ._records import (
    EMPTY,
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    Compaction,
    ListQuery,
    StorageSpace,
    ThreadInfo,
    WriteRecord,
    writes_only_thread,
)
from ._saver import CheckpointSaver, default_serde
from ._sweeper import Sweeper

__all__ = [
    "EMPTY",
    "AsyncExecutor",
    "Backend",
    "BackendEntry",
    "BlobRecord",
    "Capabilities",
    "CheckpointRecord",
    "CheckpointRow",
    "CheckpointSaver",
    "CheckpointerError",
    "Compaction",
    "ConfigError",
    "DamagedDataError",
    "ListQuery",
    "MemorySaver",
    "MemoryStore",
    "MigrationProgress",
    "MigrationReport",
    "MissingDriverError",
    "Plan",
    "PrunedHistoryError",
    "SchemaVersionError",
    "StorageError",
    "StorageFullError",
    "StorageSpace",
    "StorageUnavailableError",
    "Sweeper",
    "SyncCallInEventLoopError",
    "SyncExecutor",
    "ThreadInfo",
    "UnknownBackendError",
    "ValueTooLargeError",
    "VerifyReport",
    "WriteRecord",
    "aconnect",
    "amigrate",
    "arun",
    "averify",
    "connect",
    "default_serde",
    "installed_schemes",
    "jsonb_refuses",
    "migrate",
    "prune_fence",
    "run",
    "verify",
    "writes_only_thread",
]

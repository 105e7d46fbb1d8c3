"""The errors every backend raises, so callers catch one hierarchy whatever the database."""

from __future__ import annotations

import datetime
from typing import Any

__all__ = [
    "CheckpointerError",
    "ConfigError",
    "DamagedDataError",
    "MissingDriverError",
    "PrunedHistoryError",
    "SchemaVersionError",
    "StorageError",
    "StorageUnavailableError",
    "SyncCallInEventLoopError",
    "UnknownBackendError",
    "ValueTooLargeError",
]


class CheckpointerError(Exception):
    """Base class of every error raised by this package."""


class ConfigError(CheckpointerError, ValueError):
    """A `RunnableConfig`, URL, option or argument is malformed or incomplete."""


class UnknownBackendError(ConfigError):
    """A URL names a scheme that no installed backend registers."""


class MissingDriverError(CheckpointerError, ImportError):
    """The database driver of a backend is not installed; the message names the extra."""


class StorageError(CheckpointerError):
    """The database failed an operation; the driver's exception is chained as `__cause__`."""


class StorageUnavailableError(StorageError):
    """The database cannot be reached (refused, timed out, connection lost)."""


class StorageFullError(StorageUnavailableError):
    """The storage has no room left for the call's data: a full disk under SQLite or
    PostgreSQL, a SQLite database at its `max_page_count`, a Redis server at `maxmemory`
    that evicts nothing.

    Nothing of the call was stored (a `put` stores its checkpoint whole or not at all), and
    the saver works again once there is room: the message says how to make some. A subclass
    of `StorageUnavailableError`, as which a full SQLite or PostgreSQL disk was raised before.
    """


class ValueTooLargeError(StorageError, ValueError):
    """The database refused a value larger than it takes in one field or argument.

    SQLite takes at most `SQLITE_MAX_LENGTH` bytes in a string or blob (1,000,000,000 by
    default), PostgreSQL 1 GB in a field, Redis `proto-max-bulk-len` in one argument (512 MB
    by default). Nothing of the checkpoint (or of the writes) was stored, and sending the
    same value again fails the same way; a `put` names the largest values it held.
    """


class DamagedDataError(StorageError, ValueError):
    """Stored data cannot be read back: damaged, cut short, not written by this package, or
    encrypted (LangGraph's `EncryptedSerializer`) with a key this saver's serializer lacks.

    The message names the thread, the namespace and the checkpoint (when known) and what of
    it is unreadable; the serializer's or decoder's error is chained as `__cause__`. Other
    checkpoints of the thread stay readable, and `delete_thread` / `prune` still remove it.

    Attributes:
        thread_id: The thread of the unreadable data, when known.
        checkpoint_ns: Its namespace.
        checkpoint_id: The checkpoint, when known.
        encryption: None; `"no key"` when the data is encrypted and the serializer holds no
            key; `"failed"` when decrypting it failed (another key, or damaged ciphertext).
    """

    def __init__(
        self,
        what: str,
        *,
        thread_id: str | None,
        checkpoint_ns: str = "",
        checkpoint_id: str | None = None,
        detail: str = "",
        encryption: str | None = None,
    ) -> None:
        self.thread_id = thread_id
        self.checkpoint_ns = checkpoint_ns
        self.checkpoint_id = checkpoint_id
        self.encryption = encryption
        where = f"checkpoint {checkpoint_id!r}" if checkpoint_id else "a checkpoint"
        if thread_id is not None:
            where += f" of thread {thread_id!r}"
        if checkpoint_ns:
            where += f" (namespace {checkpoint_ns!r})"
        thread = repr(thread_id) if thread_id is not None else "THREAD"
        if encryption is not None:
            problem = (
                "this saver's serializer holds no key"
                if encryption == "no key"
                else f"decrypting it failed ({detail}): a key other than the one that wrote it, "
                "or damaged data"
            )
            super().__init__(
                f"cannot read {where}: {what} is encrypted, and {problem}. Open the saver with "
                "the serializer and key that wrote it, as in serde=EncryptedSerializer."
                "from_pycryptodome_aes(serde=MsgpackSerializer(), key=...) (LangGraph's "
                "langgraph.checkpoint.serde.encrypted); the checkpointers command reads it when "
                "LANGGRAPH_AES_KEY holds that key"
            )
            return
        super().__init__(
            f"cannot read {where}: {what} is damaged or was not written by this package"
            + (f" ({detail})" if detail else "")
            + ". Other checkpoints of the thread may still be read (list(config, before=...)); to "
            "remove the "
            f"thread: saver.delete_thread({thread}) or `checkpointers delete URL --thread "
            f"{thread_id if thread_id is not None else 'THREAD'}`"
        )

    @classmethod
    def of(
        cls, record: Any, what: str, exc: BaseException, *, encryption: str | None = None
    ) -> DamagedDataError:
        """The error for `what` of a checkpoint `record` (anything with its `thread_id`,
        `checkpoint_ns` and `checkpoint_id`), with the reader's error `exc` as detail."""
        return cls(
            what,
            thread_id=record.thread_id,
            checkpoint_ns=record.checkpoint_ns,
            checkpoint_id=record.checkpoint_id,
            detail=f"{type(exc).__name__}: {exc}",
            encryption=encryption,
        )


class PrunedHistoryError(StorageError):
    """A `DeltaChannel` value cannot be rebuilt: the ancestors it folds were deleted.

    `prune` and `keep_last` keep, besides the newest checkpoints, the ancestors their delta
    channels rebuild from; such an ancestor's own value of another delta channel may reach
    further back, past what was kept. Reading it raises this error instead of folding the
    writes that remain onto an empty value, which would give a wrong value in silence.
    """


class SchemaVersionError(StorageError):
    """The database schema is newer than this version of the package understands."""


class SyncCallInEventLoopError(CheckpointerError, RuntimeError):
    """A synchronous method of an async-only saver was called from its own event loop.

    Blocking there would deadlock: the loop that must run the query is the one waiting.
    """


def too_large(
    exc: ValueTooLargeError, what: str, sizes: list[tuple[int, str]]
) -> ValueTooLargeError:
    """`exc` again, naming what was being stored and its largest values (`(bytes, name)`):
    the database's own error names neither the channel nor, often, the size."""
    largest = ", ".join(f"{name} ({size:,} bytes)" for size, name in sorted(sizes)[::-1][:3])
    return ValueTooLargeError(
        f"cannot store {what}: {exc} Nothing of it was stored. Its largest values, "
        f"serialized: {largest}."
    )


def check_keep_last(keep_last: object) -> None:
    """Refuse a `keep_last` that is not None or an int >= 1, naming what was given."""
    if keep_last is not None and (
        isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1
    ):
        raise ConfigError(
            f"keep_last must be None (keep every checkpoint) or an int >= 1 (how many of the "
            f"newest checkpoints of each namespace of a thread to keep), got {keep_last!r}"
        )


def duration_seconds(value: datetime.timedelta | float, name: str, example: str) -> float:
    """`value` (a `timedelta` or seconds) in seconds; positive, else `ConfigError` naming it."""
    seconds = value.total_seconds() if isinstance(value, datetime.timedelta) else value
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not seconds > 0:
        raise ConfigError(
            f"{name} must be a positive duration, a timedelta or seconds; got {value!r} "
            f"(for example {example})"
        )
    if seconds == float("inf"):
        raise ConfigError(f"{name} must be a finite duration; got {value!r}")
    return float(seconds)

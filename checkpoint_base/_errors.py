"""The errors every backend raises, so callers catch one hierarchy whatever the database."""

from __future__ import annotations

__all__ = [
    "CheckpointerError",
    "ConfigError",
    "MissingDriverError",
    "SchemaVersionError",
    "StorageError",
    "StorageUnavailableError",
    "SyncCallInEventLoopError",
    "UnknownBackendError",
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


class SchemaVersionError(StorageError):
    """The database schema is newer than this version of the package understands."""


class SyncCallInEventLoopError(CheckpointerError, RuntimeError):
    """A synchronous method of an async-only saver was called from its own event loop.

    Blocking there would deadlock: the loop that must run the query is the one waiting.
    """

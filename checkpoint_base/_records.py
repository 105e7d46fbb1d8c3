"""Records: what a backend stores and returns. Bytes plus the fields storage indexes on.

A backend never sees a Python channel value: the saver turns checkpoints into these records
(serializing once, in one place) and turns fetched rows back into `CheckpointTuple`s.
Migration copies records verbatim between backends, with no serializer round trip.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "EMPTY",
    "BlobRecord",
    "CheckpointRecord",
    "CheckpointRow",
    "Compaction",
    "ListQuery",
    "StorageSpace",
    "ThreadInfo",
    "WriteRecord",
    "as_bytes",
    "uuid6_epoch",
    "writes_only_thread",
]

EMPTY = "empty"
"""Type tag of a blob that records "this channel has no value at this version"."""


@dataclass(frozen=True, slots=True)
class CheckpointRecord:
    """One checkpoint, without its channel values (those live in blobs).

    Attributes:
        thread_id: The thread.
        checkpoint_ns: The namespace ("" for the root graph, "node:task" for subgraphs).
        checkpoint_id: Unique within (thread, namespace); sorts by creation time.
        parent_checkpoint_id: The checkpoint this one follows, or None for a root.
        type: Serializer type tag of `checkpoint`.
        checkpoint: The serialized checkpoint, `channel_values` removed.
        metadata: The metadata as UTF-8 JSON text (ASCII-escaped), queryable by storage.
        channel_versions: Channel -> version string: the blobs that hold this checkpoint's
            values. A list stored in segments maps its channel to its head's version, and
            each segment's channel (starting with "\\x01") to the segment's version; the
            checkpoint body keeps LangGraph's own versions.
        run_id: `metadata["run_id"]` when present, for `delete_for_runs`.
        created_at: Seconds since the epoch when the checkpoint was first stored.
    """

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    parent_checkpoint_id: str | None
    type: str
    checkpoint: bytes
    metadata: bytes
    channel_versions: Mapping[str, str]
    run_id: str | None
    created_at: float


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """The value of one channel at one version, in one (thread, namespace).

    Written only for the channels of a put's `new_versions`; `type == EMPTY` says the channel
    had no value at that version. Nothing outside `checkpoint_base` may assume `data` holds a
    whole value: a long list is stored as a head (type `_lists.HEAD`) and segments, blobs of
    channels that only the checkpoint's `channel_versions` names (see `_lists`).

    A fetched record's `data` may be a read-only `memoryview` of the driver's reply instead of
    `bytes` (the Redis backend: a blob is stored behind its type tag, and copying each large
    value out into fresh memory cost about a third of a `list`, see
    `checkpoint_redis._codec.decode_row`). Every driver binds either; code that needs `bytes`
    calls `as_bytes`, and `load_blob` gives a serializer other than ours bytes.
    """

    thread_id: str
    checkpoint_ns: str
    channel: str
    version: str
    type: str
    data: bytes | memoryview


def as_bytes(data: bytes | memoryview) -> bytes:
    """`data` as `bytes`: itself, or a copy of a view."""
    return data if isinstance(data, bytes) else data.tobytes()


@dataclass(frozen=True, slots=True)
class WriteRecord:
    """One pending write of a task, attached to the checkpoint it follows.

    `idx` is the write's position in its `put_writes` call, or a negative number from
    `WRITES_IDX_MAP` for the special channels (errors, interrupts, resumes, scheduled).
    Storage rule: a write with `idx < 0` replaces an existing one with the same key;
    a write with `idx >= 0` never overwrites one that exists.
    """

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    task_id: str
    idx: int
    channel: str
    type: str
    data: bytes
    task_path: str = ""


@dataclass(frozen=True, slots=True)
class CheckpointRow:
    """A fetched checkpoint with the blobs of its channel versions and its pending writes.

    `blobs` may hold more versions than the checkpoint reads, or fewer when some were never
    written; `writes` may come in any order (the saver sorts them).
    """

    checkpoint: CheckpointRecord
    blobs: tuple[BlobRecord, ...] = ()
    writes: tuple[WriteRecord, ...] = ()


@dataclass(frozen=True, slots=True)
class ListQuery:
    """One page of checkpoints, newest first.

    Order: `(checkpoint_id, thread_id, checkpoint_ns)` descending. A page holds at most
    `limit` rows that satisfy every given condition:

    Attributes:
        thread_id: Only this thread (None: every thread).
        checkpoint_ns: Only this namespace (None: every namespace).
        checkpoint_id: Only this checkpoint id.
        before: Only checkpoint ids strictly smaller than this one.
        cursor: Only rows strictly after this `(checkpoint_id, thread_id, checkpoint_ns)`
            in the order above (keyset pagination: the last row of the previous page).
        filter: Metadata equality filter, top-level keys. A backend may use it to narrow
            the page; it must never drop a row that matches. The saver re-checks every row.
        limit: Page size, at least 1.
    """

    thread_id: str | None = None
    checkpoint_ns: str | None = None
    checkpoint_id: str | None = None
    before: str | None = None
    cursor: tuple[str, str, str] | None = None
    filter: Mapping[str, Any] | None = None
    limit: int = 100


@dataclass(frozen=True, slots=True)
class ThreadInfo:
    """A summary of one thread, for `list_threads` and the `threads` command.

    A thread with `checkpoint_count` 0 holds writes and no checkpoint: pending writes that
    landed after their checkpoint was deleted (a graph still running while its thread was
    deleted). It is listed so that it can be found and deleted (`delete_thread`,
    `checkpointers delete --idle`); see `writes_only_thread`.

    `size_bytes` is what the thread takes in storage: its checkpoints and metadata, the
    channel values they read (each version once) and its pending writes. SQLite: the bytes
    stored; PostgreSQL: the same after its compression (`pg_column_size`); Redis: the memory
    of the thread's keys (`MEMORY USAGE`); memory: the bytes held. None when unknown.
    """

    thread_id: str
    checkpoint_count: int
    last_checkpoint_id: str | None
    updated_at: float | None
    size_bytes: int | None = None
    namespaces: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class StorageSpace:
    """What a checkpointer's storage takes, as far as its backend can tell (`Backend.space`).

    Attributes:
        size: Bytes the storage takes: for SQLite the database's pages (the file once its
            WAL is checkpointed), for PostgreSQL the three tables with their indexes and
            TOAST. None when the backend cannot tell.
        free: Bytes of `size` that hold no data: deleted rows' pages, which the database
            reuses for new writes and `compact()` gives back. None when unknown.
    """

    size: int | None = None
    free: int | None = None


@dataclass(frozen=True, slots=True)
class Compaction:
    """What `CheckpointSaver.compact()` did: the storage's space before and after, and how
    long it took. `before.size - after.size` is what it gave back: at least `before.free`
    where the backend tells it (SQLite also packs pages that deletes left part empty).

    `held` says, one line each, what kept space from going back: on PostgreSQL the
    transactions that were open before the compaction began and still ran when its wait for
    them ran out (rows deleted while one was open stay until a compaction after it ended);
    on SQLite a reader that kept the WAL from being emptied (`after` is the database's size;
    its files shrink to it once the reader ends and a compaction runs again).
    """

    before: StorageSpace
    after: StorageSpace
    seconds: float
    held: tuple[str, ...] = ()


def writes_only_thread(
    thread_id: str,
    newest_checkpoint_id: str | None,
    size_bytes: int | None,
    namespaces: Sequence[str],
) -> ThreadInfo:
    """The summary of a thread that holds writes and no checkpoint.

    Writes carry no time of their own; `updated_at` is the time in the newest checkpoint id
    they name (LangGraph's ids are UUID v6), so `delete --idle` ages them as it ages the
    checkpoint they belonged to. None when that id is not a UUID v6.
    """
    return ThreadInfo(
        thread_id=thread_id,
        checkpoint_count=0,
        last_checkpoint_id=None,
        updated_at=uuid6_epoch(newest_checkpoint_id),
        size_bytes=size_bytes,
        namespaces=tuple(sorted(set(namespaces))),
    )


# 100-ns intervals between the UUID epoch (1582-10-15) and the Unix epoch.
_UUID_EPOCH_OFFSET = 0x01B21DD213814000


def uuid6_epoch(checkpoint_id: str | None) -> float | None:
    """The creation time encoded in a LangGraph checkpoint id (a UUID v6), or None."""
    if not checkpoint_id:
        return None
    try:
        value = uuid.UUID(checkpoint_id)
    except ValueError:
        return None
    if value.version != 6:
        return None
    high_mid = value.int >> 80
    low = (value.int >> 64) & 0x0FFF
    return (((high_mid << 12) | low) - _UUID_EPOCH_OFFSET) / 1e7

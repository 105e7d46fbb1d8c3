"""Pure conversions between records and PostgreSQL parameters and rows.

Two things PostgreSQL refuses are handled here, so a write never fails on them:

- `text` cannot hold NUL. Key strings (thread ids, namespaces, channels, ...) are stored with
  an order-preserving escape: NUL becomes `\\x01\\x01` and `\\x01` becomes `\\x01\\x02`. The
  code is prefix-free and monotone, so stored keys sort (in the "C" collation) exactly as the
  originals do and keyset cursors keep working. Strings without either byte are unchanged.
- `jsonb` cannot hold `\\u0000` (nor an unpaired surrogate). The exact metadata JSON is kept
  in a `bytea` column and returned as is; the indexed JSONB copy drops those characters from
  strings and drops object keys containing them. A filter that would need them is not pushed
  to the server (the saver filters in Python), so server filtering never loses a match.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from checkpoint_base import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    DamagedDataError,
    ThreadInfo,
    WriteRecord,
    jsonb_refuses,
    writes_only_thread,
)

from ._sql import MAX_VALUES_ROWS

__all__ = [
    "blob_rows",
    "checkpoint_row",
    "decode_key",
    "decode_version",
    "dedupe_writes",
    "encode_key",
    "encode_version",
    "filter_param",
    "index_json",
    "to_checkpoint",
    "to_page",
    "to_thread_info",
    "write_rows",
]

_ESCAPED = "\x01"


def encode_key(value: str) -> str:
    """A string as stored in a `text` column (see the module docstring)."""
    if "\x00" in value or _ESCAPED in value:
        return value.replace("\x01", "\x01\x02").replace("\x00", "\x01\x01")
    return value


def decode_key(value: str) -> str:
    """The inverse of `encode_key`."""
    if _ESCAPED in value:
        return value.replace("\x01\x01", "\x00").replace("\x01\x02", "\x01")
    return value


_COUNTER = 32  # digits of the zero-padded counter in "{counter:032}.{random:016}" versions


# Remembered by version: a checkpoint's channel map repeats the versions of the channels that
# did not change since its parent, and a put's blobs carry versions that its map carries too,
# so most calls are answered from the cache: a put of the agent graph's 10-step thread made
# 5.2 calls. Thread CPU of such a put through a pool (the least of 5 batches of 300, 4
# alternating processes each): 159.9-163.4 -> 151.2-158.3 us.
@functools.lru_cache(maxsize=4096)
def encode_version(version: str) -> str:
    """A channel version as stored: the standard format's zero padding dropped, "~" marking it.

    Versions are stored in every checkpoint's channel map and in each blob's key, and the
    padding was a third of those bytes. "~" never starts a standard version; one that
    starts with it is escaped as "~~".
    """
    head, dot, rest = version.partition(".")
    if dot and len(head) == _COUNTER and head[0] == "0" and head.isascii() and head.isdigit():
        return encode_key("~" + head.lstrip("0") + "." + rest)
    if version.startswith("~"):
        return encode_key("~" + version)
    return encode_key(version)


def decode_version(value: str) -> str:
    """The inverse of `encode_version`."""
    value = decode_key(value)
    if not value.startswith("~"):
        return value
    if value.startswith("~~"):
        return value[1:]
    head, _, rest = value[1:].partition(".")
    return head.zfill(_COUNTER) + "." + rest


def _encode_opt(value: str | None) -> str | None:
    return None if value is None else encode_key(value)


def _decode_opt(value: str | None) -> str | None:
    return None if value is None else decode_key(value)


# -- metadata ---------------------------------------------------------------------------------


def _jsonb_safe(text: str) -> bool:
    # Python's ASCII JSON writes NUL as \u0000 and any surrogate as \udXXX (paired or not).
    return "\\u0000" not in text and "\\ud" not in text


def _has_bad_char(value: Any) -> bool:
    if isinstance(value, str):
        return any(jsonb_refuses(ch) for ch in value)
    if isinstance(value, list):
        return any(_has_bad_char(v) for v in value)
    if isinstance(value, dict):
        return any(_has_bad_char(k) or _has_bad_char(v) for k, v in value.items())
    return False


def _strip(value: Any) -> Any:
    if isinstance(value, str):
        return "".join(ch for ch in value if not jsonb_refuses(ch))
    if isinstance(value, list):
        return [_strip(v) for v in value]
    if isinstance(value, dict):
        return {k: _strip(v) for k, v in value.items() if not any(jsonb_refuses(ch) for ch in k)}
    return value


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=True, separators=(",", ":"), allow_nan=False)


def index_json(metadata: bytes) -> str:
    """The JSONB text to index for stored metadata: NUL and lone surrogates removed."""
    text = metadata.decode("ascii")
    if _jsonb_safe(text):
        return text
    return _dumps(_strip(json.loads(text)))


def filter_param(filter: Mapping[str, Any] | None) -> str | None:
    """The JSONB containment argument for a metadata filter, or None to filter in Python.

    Equal JSON values contain each other, so containment keeps every row that the saver's
    equality check keeps. A filter with characters JSONB cannot hold is not pushed down.
    """
    if not filter or _has_bad_char(filter):
        return None
    return _dumps(filter)


# -- parameters -------------------------------------------------------------------------------


def _channel_versions(versions: Mapping[str, str]) -> str:
    return json.dumps({encode_key(ch): encode_version(v) for ch, v in versions.items()})


def checkpoint_row(checkpoint: CheckpointRecord) -> list[Any]:
    """The checkpoint's values, in the order of the put statement's checkpoint row."""
    return [
        encode_key(checkpoint.thread_id),
        encode_key(checkpoint.checkpoint_ns),
        encode_key(checkpoint.checkpoint_id),
        _encode_opt(checkpoint.parent_checkpoint_id),
        encode_key(checkpoint.type),
        checkpoint.checkpoint,
        checkpoint.metadata,
        index_json(checkpoint.metadata),
        _channel_versions(checkpoint.channel_versions),
        _encode_opt(checkpoint.run_id),
        checkpoint.created_at,
    ]


def _laid_out(rows: list[tuple[Any, ...]]) -> list[Any]:
    """Values row after row, or one list per column past `MAX_VALUES_ROWS` (see `put_sql`)."""
    if len(rows) > MAX_VALUES_ROWS:
        return [list(column) for column in zip(*rows, strict=True)]
    return [value for row in rows for value in row]


def blob_rows(blobs: Iterable[BlobRecord]) -> list[Any]:
    """Blob values sorted by key (concurrent puts lock rows in one order)."""
    ordered = sorted(blobs, key=lambda b: (b.thread_id, b.checkpoint_ns, b.channel, b.version))
    return _laid_out(
        [
            (
                encode_key(b.thread_id),
                encode_key(b.checkpoint_ns),
                encode_key(b.channel),
                encode_version(b.version),
                encode_key(b.type),
                b.data,
            )
            for b in ordered
        ]
    )


def blob_slots(
    checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord], slots: int
) -> list[Any] | None:
    """(channel, version, type, data) of each blob sorted by key, then NULLs up to `slots`
    blobs: the blob arguments of the put function. None when the blobs do not fit it (more
    than `slots`, or one of another thread or namespace than the checkpoint's)."""
    if len(blobs) > slots or any(
        b.thread_id != checkpoint.thread_id or b.checkpoint_ns != checkpoint.checkpoint_ns
        for b in blobs
    ):
        return None
    values: list[Any] = []
    for b in sorted(blobs, key=lambda b: (b.channel, b.version)):
        values += (encode_key(b.channel), encode_version(b.version), encode_key(b.type), b.data)
    return values + [None] * (4 * (slots - len(blobs)))


def dedupe_writes(writes: Iterable[WriteRecord]) -> list[WriteRecord]:
    """One write per key, as applying them in order would leave (idx < 0: last wins; else
    first), sorted by key. A single INSERT .. ON CONFLICT may not touch a row twice.
    """
    kept: dict[tuple[str, str, str, str, int], WriteRecord] = {}
    for w in writes:
        key = (w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.idx)
        if w.idx < 0 or key not in kept:
            kept[key] = w
    return [kept[k] for k in sorted(kept)]


def write_rows(writes: Sequence[WriteRecord]) -> list[Any]:
    """Write values (pass them through `dedupe_writes` first)."""
    return _laid_out(
        [
            (
                encode_key(w.thread_id),
                encode_key(w.checkpoint_ns),
                encode_key(w.checkpoint_id),
                encode_key(w.task_id),
                w.idx,
                encode_key(w.channel),
                encode_key(w.type),
                w.data,
                encode_key(w.task_path),
            )
            for w in writes
        ]
    )


# -- rows -------------------------------------------------------------------------------------


def to_checkpoint(row: Sequence[Any]) -> CheckpointRecord:
    """A checkpoint record from the first 10 columns of a fetched row."""
    versions = _decoded_versions(row[7], row[0], row[1], row[2])
    return CheckpointRecord(
        thread_id=decode_key(row[0]),
        checkpoint_ns=decode_key(row[1]),
        checkpoint_id=decode_key(row[2]),
        parent_checkpoint_id=_decode_opt(row[3]),
        type=decode_key(row[4]),
        checkpoint=row[5],
        metadata=row[6],
        channel_versions=versions,
        run_id=_decode_opt(row[8]),
        created_at=row[9],
    )


def _decoded_versions(versions: Any, thread: str, ns: str, checkpoint_id: str) -> dict[str, str]:
    """A row's `channel_versions`, decoded; a `DamagedDataError` naming the checkpoint when it
    is not an object of string versions (an array, a number, a nested value): which blobs the
    checkpoint reads is then unknown."""
    try:
        return {decode_key(ch): decode_version(v) for ch, v in versions.items()}
    except (AttributeError, TypeError) as exc:
        raise DamagedDataError(
            "its channel_versions (JSONB)",
            thread_id=decode_key(thread),
            checkpoint_ns=decode_key(ns),
            checkpoint_id=decode_key(checkpoint_id),
            detail=f"{type(exc).__name__}: {exc}; stored: {json.dumps(versions)[:80]}",
        ) from exc


def to_page(rows: Sequence[Sequence[Any]], *, by_position: bool) -> list[CheckpointRow]:
    """Checkpoint rows from the rows of a page statement (see `_PAGE_ROWS` in `_sql.py`).

    Args:
        rows: (kind, thread, ns, k1, k2, k3, k4, k5, num, d1, d2, j, f) tuples.
        by_position: Order by the `num` column (history depth); else newest first.
    """
    checkpoints: list[tuple[Any, CheckpointRecord]] = []
    blobs: dict[tuple[str, str, str, str], BlobRecord] = {}
    writes: dict[tuple[str, str, str], list[WriteRecord]] = {}
    for kind, thread, ns, k1, k2, k3, k4, k5, num, d1, d2, j, f in rows:
        thread_id, checkpoint_ns = decode_key(thread), decode_key(ns)
        if kind == 0:
            versions = _decoded_versions(j, thread, ns, k1)
            record = CheckpointRecord(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=decode_key(k1),
                parent_checkpoint_id=_decode_opt(k2),
                type=decode_key(k3),
                checkpoint=d1,
                metadata=d2,
                channel_versions=versions,
                run_id=_decode_opt(k4),
                created_at=f,
            )
            checkpoints.append((num, record))
        elif kind == 1:
            blob = BlobRecord(
                thread_id, checkpoint_ns, decode_key(k1), decode_version(k2), decode_key(k3), d1
            )
            blobs[(thread_id, checkpoint_ns, blob.channel, blob.version)] = blob
        else:
            write = WriteRecord(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=decode_key(k1),
                task_id=decode_key(k2),
                idx=num,
                channel=decode_key(k3),
                type=decode_key(k4),
                data=d1,
                task_path=decode_key(k5),
            )
            writes.setdefault((thread_id, checkpoint_ns, write.checkpoint_id), []).append(write)
    if by_position:
        checkpoints.sort(key=lambda item: item[0])
    else:
        checkpoints.sort(
            key=lambda item: (item[1].checkpoint_id, item[1].thread_id, item[1].checkpoint_ns),
            reverse=True,
        )
    page = []
    for _, record in checkpoints:
        key = (record.thread_id, record.checkpoint_ns)
        found = tuple(
            hit
            for channel, version in record.channel_versions.items()
            if (hit := blobs.get((*key, channel, version))) is not None
        )
        page.append(
            CheckpointRow(record, found, tuple(writes.get((*key, record.checkpoint_id), ())))
        )
    return page


def to_thread_info(row: Sequence[Any]) -> ThreadInfo:
    """A thread summary from a row of the list-threads statement."""
    if row[1] == 0:  # writes and no checkpoint
        namespaces = [decode_key(ns) for ns in row[5] or ()]
        size = int(row[4]) if row[4] is not None else None
        return writes_only_thread(decode_key(row[0]), _decode_opt(row[2]), size, namespaces)
    return ThreadInfo(
        thread_id=decode_key(row[0]),
        checkpoint_count=row[1],
        last_checkpoint_id=_decode_opt(row[2]),
        updated_at=row[3],
        size_bytes=int(row[4]) if row[4] is not None else None,
        namespaces=tuple(sorted(decode_key(ns) for ns in row[5])),
    )

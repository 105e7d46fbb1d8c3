"""Values stored in Redis, and the rows scripts return, to and from records.

A checkpoint value is two msgpack objects back to back: the *links* that Lua reads with
`cmsgpack.unpack_one` (parent id, run id, size, channel versions, index prefixes), then the
record itself, which only Python reads. Channel versions live in the links alone, so Lua can
fetch a checkpoint's blobs in the same script that reads it.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import msgpack

from checkpoint_base import BlobRecord, CheckpointRecord, CheckpointRow, WriteRecord

from ._keys import seg, seg_common

__all__ = [
    "UNREADABLE",
    "blob_field",
    "blob_value",
    "decode_record",
    "decode_row",
    "pack_checkpoint",
    "write_field",
    "write_value",
]

UNREADABLE = (
    ValueError, TypeError, KeyError, IndexError, AttributeError, msgpack.UnpackException
)  # fmt: skip
"""What decoding a damaged or foreign stored value raises (msgpack's `OutOfData` for a value
cut short is not a ValueError)."""

_pack = msgpack.Packer(use_bin_type=True).pack
# Redis' Lua cmsgpack predates msgpack's bin types: what Lua reads is packed as raw strings.
_pack_for_lua = msgpack.Packer(use_bin_type=False).pack


def pack_checkpoint(record: CheckpointRecord, prefixes: Sequence[bytes]) -> bytes:
    """The stored value of a checkpoint: links for Lua, then the record."""
    flat: list[str] = []
    for channel, version in record.channel_versions.items():
        flat.append(channel)
        flat.append(version)
    links = [
        record.parent_checkpoint_id,
        record.run_id,
        len(record.checkpoint) + len(record.metadata),
        flat,
        list(prefixes),
    ]
    body = [
        record.thread_id,
        record.checkpoint_ns,
        record.checkpoint_id,
        record.type,
        record.checkpoint,
        record.metadata,
        record.created_at,
    ]
    packed: bytes = _pack_for_lua(links) + _pack(body)
    return packed


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8")


def decode_record(value: bytes) -> CheckpointRecord:
    """The record of a stored checkpoint value."""
    unpacker = msgpack.Unpacker(raw=True, use_list=True)
    unpacker.feed(value)
    links = unpacker.unpack()
    body = msgpack.unpackb(memoryview(value)[unpacker.tell() :], raw=False)
    flat = [item.decode("utf-8") for item in links[3]]
    return CheckpointRecord(
        thread_id=body[0],
        checkpoint_ns=body[1],
        checkpoint_id=body[2],
        parent_checkpoint_id=_text(links[0]),
        type=body[3],
        checkpoint=body[4],
        metadata=body[5],
        channel_versions=dict(zip(flat[::2], flat[1::2], strict=True)),
        run_id=_text(links[1]),
        created_at=body[6],
    )


def blob_field(ns: str, channel: str, version: str) -> bytes:
    """The `b` hash field of one blob (Lua builds the same bytes from a checkpoint's links)."""
    return seg_common(ns) + seg_common(channel) + seg(version)


def blob_value(blob: BlobRecord) -> bytes:
    """A blob as stored: type length (one byte), type, data."""
    type_ = blob.type.encode("utf-8")
    if len(type_) > 255:
        raise ValueError(f"serializer type tag too long for the Redis backend: {blob.type!r}")
    return bytes((len(type_),)) + type_ + blob.data


def write_field(write: WriteRecord) -> bytes:
    """The `w` hash field (and `x` member) of a write: K + seg(task) + seg(idx)."""
    return (
        seg_common(write.checkpoint_ns)
        + seg(write.checkpoint_id)
        + seg(write.task_id)
        + seg_common(str(write.idx))
    )


def write_value(write: WriteRecord) -> bytes:
    """A write as stored."""
    packed: bytes = _pack(
        [write.task_id, write.idx, write.channel, write.type, write.data, write.task_path]
    )
    return packed


def decode_row(raw: Sequence[Any]) -> CheckpointRow:
    """A row returned by a script: [checkpoint value, blob values, write values]."""
    value, blob_values, write_values = raw
    # A blob's data is a view behind its type tag, not a copy: the copies of a page were
    # fresh memory, and faulting it in cost more than the copying. A list(limit=10) of 80
    # messages of 4 KiB (330 KB a blob): 825 -> 215 page faults per get_tuple + list, the
    # list's CPU time 9.2-14.9 -> 6.1-10.5 ms over three alternating process pairs (the
    # machine's speed varied that much). 512-character messages: no fault either way.
    # `load_blob` copies a view for a serializer other than ours (the protocol says bytes).
    record = decode_record(value)
    versions = record.channel_versions
    blobs = []
    for (channel, version), data in zip(versions.items(), blob_values or (), strict=False):
        if data is None:
            continue
        n = data[0]
        blobs.append(
            BlobRecord(
                record.thread_id,
                record.checkpoint_ns,
                channel,
                version,
                data[1 : 1 + n].decode("utf-8"),
                memoryview(data)[1 + n :],
            )
        )
    writes = []
    for data in write_values or ():
        if data is None:
            continue
        task_id, idx, channel, type_, payload, task_path = msgpack.unpackb(data, raw=False)
        writes.append(
            WriteRecord(
                record.thread_id,
                record.checkpoint_ns,
                record.checkpoint_id,
                task_id,
                idx,
                channel,
                type_,
                payload,
                task_path,
            )
        )
    return CheckpointRow(record, tuple(blobs), tuple(writes))

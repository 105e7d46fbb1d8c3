"""Byte-exact surgery on checkpoints in LangGraph's `JsonPlusSerializer` msgpack format.

The official SQLite saver stores a checkpoint as one msgpack map whose `channel_values` entry
holds every channel's value inline. Migration splits such a map into a checkpoint body and one
blob per channel, and composes one back for export, by walking the msgpack structure and
slicing bytes: a value is never decoded, so no class is rebuilt and the bytes (and their type
tag) reach the target unchanged.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from langgraph.checkpoint.serde.base import SerializerProtocol

from ._records import WriteRecord, uuid6_epoch

__all__ = [
    "JSONPLUS_READS",
    "JSONPLUS_TAGS",
    "SplitCheckpoint",
    "compose_checkpoint",
    "for_jsonplus",
    "jsonplus_write_rows",
    "pack_plain",
    "split_checkpoint",
    "standalone_value",
    "ts_to_epoch",
    "uuid6_epoch",
]

JSONPLUS_TAGS = frozenset({"msgpack", "null", "bytes", "bytearray"})
"""Type tags whose value `compose_checkpoint` embeds without decoding it."""

JSONPLUS_READS = frozenset({"msgpack", "json", "null", "bytes", "bytearray", "empty"})
"""Type tags LangGraph's `JsonPlusSerializer` (the official savers' serializer) reads."""

_NIL = b"\xc0"
_BIN_MARKERS = frozenset({0xC4, 0xC5, 0xC6})


@dataclass(frozen=True, slots=True)
class SplitCheckpoint:
    """A checkpoint map cut in two: the body without `channel_values`, and the raw values.

    Attributes:
        body: The msgpack map without its `channel_values` entry.
        values: Channel -> the msgpack bytes of its value, sliced from the original.
        channel_versions: The checkpoint's channel versions, decoded (plain data).
        ts: The checkpoint's `ts` field, when it is a string.
    """

    body: bytes
    values: dict[str, bytes]
    channel_versions: dict[str, Any]
    ts: str | None


def _unpacker(data: bytes) -> msgpack.Unpacker:
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    return unpacker


def _map_header(count: int) -> bytes:
    header: bytes = msgpack.Packer().pack_map_header(count)
    return header


def pack_plain(value: Any) -> bytes:
    """Msgpack bytes of plain data (str, numbers, bool, None, lists, dicts), as ormsgpack does."""
    packed: bytes = msgpack.packb(value, use_bin_type=True)
    return packed


def _entries(data: bytes) -> list[tuple[Any, bytes, bytes]]:
    """The top-level map's entries as (key, raw key bytes, raw value bytes)."""
    unpacker = _unpacker(data)
    count = unpacker.read_map_header()
    entries = []
    for _ in range(count):
        start = unpacker.tell()
        key = unpacker.unpack()
        middle = unpacker.tell()
        unpacker.skip()
        end = unpacker.tell()
        entries.append((key, data[start:middle], data[middle:end]))
    if unpacker.tell() != len(data):
        raise ValueError("trailing bytes after the checkpoint map")
    return entries


def split_checkpoint(data: bytes) -> SplitCheckpoint:
    """Cut a `("msgpack", data)` checkpoint into its body and its raw channel values.

    Raises:
        ValueError: `data` is not a msgpack map in the expected shape.
    """
    try:
        entries = _entries(data)
        kept: list[bytes] = []
        values: dict[str, bytes] = {}
        versions: dict[str, Any] = {}
        ts: str | None = None
        for key, raw_key, raw_value in entries:
            if key == "channel_values":
                inner = _unpacker(raw_value)
                for _ in range(inner.read_map_header()):
                    channel = inner.unpack()
                    start = inner.tell()
                    inner.skip()
                    values[str(channel)] = raw_value[start : inner.tell()]
                continue
            if key == "channel_versions":
                decoded = msgpack.unpackb(raw_value, raw=False, strict_map_key=False)
                versions = dict(decoded) if isinstance(decoded, dict) else {}
            elif key == "ts":
                decoded = msgpack.unpackb(raw_value, raw=False)
                ts = decoded if isinstance(decoded, str) else None
            kept.append(raw_key + raw_value)
    except (msgpack.UnpackException, ValueError, TypeError) as exc:
        raise ValueError(f"not a msgpack checkpoint map: {exc}") from exc
    return SplitCheckpoint(_map_header(len(kept)) + b"".join(kept), values, versions, ts)


def standalone_value(raw: bytes) -> tuple[str, bytes]:
    """The (type, bytes) that `JsonPlusSerializer.dumps_typed` gives the value `raw` encodes.

    None is `("null", b"")` and bytes are `("bytes", ...)` there; everything else keeps its
    msgpack bytes, sliced, with the tag `"msgpack"`.
    """
    if raw == _NIL:
        return "null", b""
    if raw and raw[0] in _BIN_MARKERS:
        payload = msgpack.unpackb(raw)
        if isinstance(payload, bytes):
            return "bytes", payload
    return "msgpack", raw


def _embedded(type_: str, data: bytes) -> bytes | None:
    """The msgpack bytes to embed for a stored value, or None when it needs decoding."""
    if type_ == "msgpack":
        return data
    if type_ == "null":
        return _NIL
    if type_ in ("bytes", "bytearray"):
        return pack_plain(bytes(data))  # ormsgpack packs both as bin, as the official saver does
    return None


def compose_checkpoint(body: bytes, values: Mapping[str, tuple[str, bytes]]) -> bytes | None:
    """Put `values` back into a msgpack checkpoint body as its `channel_values` map.

    Returns the composed msgpack bytes, or None when the body is not a msgpack map or a value's
    type tag cannot be embedded without decoding it (the caller then decodes).
    """
    embedded: list[bytes] = []
    for channel, (type_, data) in values.items():
        raw = _embedded(type_, data)
        if raw is None:
            return None
        embedded.append(pack_plain(channel) + raw)
    try:
        entries = [(k, rk + rv) for k, rk, rv in _entries(body) if k != "channel_values"]
    except (msgpack.UnpackException, ValueError, TypeError):
        return None
    inner = _map_header(len(embedded)) + b"".join(embedded)
    parts = [raw for _, raw in entries]
    parts.append(pack_plain("channel_values") + inner)
    return _map_header(len(parts)) + b"".join(parts)


def jsonplus_write_rows(
    writes: Sequence[WriteRecord],
    source: SerializerProtocol,
    jsonplus: SerializerProtocol,
    inserts: list[tuple[Any, ...]],
    upserts: list[tuple[Any, ...]],
) -> None:
    """Add the writes as rows of LangGraph's writes tables, values as `for_jsonplus` makes
    them: `(thread, ns, checkpoint, task, task_path, idx, channel, type, data)`; special
    writes (idx < 0, which replace) to `upserts`, the others to `inserts`."""
    for w in writes:
        (upserts if w.idx < 0 else inserts).append(
            (
                w.thread_id,
                w.checkpoint_ns,
                w.checkpoint_id,
                w.task_id,
                w.task_path,
                w.idx,
                w.channel,
                *for_jsonplus(w.type, w.data, source, jsonplus),
            )
        )


def for_jsonplus(
    type_: str, data: bytes, source: SerializerProtocol, jsonplus: SerializerProtocol
) -> tuple[str, bytes]:
    """A stored value as LangGraph's `JsonPlusSerializer` can read it.

    Values it reads keep their bytes; any other (our own format, say) is decoded with the
    serializer that wrote it and encoded with `jsonplus`.
    """
    if type_ in JSONPLUS_READS:
        return type_, data
    typed: tuple[str, bytes] = jsonplus.dumps_typed(source.loads_typed((type_, data)))
    return typed


def ts_to_epoch(ts: Any) -> float | None:
    """Seconds since the epoch of a checkpoint's ISO `ts`, or None when it is not one."""
    if not isinstance(ts, str):
        return None
    try:
        moment = datetime.datetime.fromisoformat(ts)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()

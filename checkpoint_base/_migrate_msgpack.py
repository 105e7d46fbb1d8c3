"""Byte-exact surgery on checkpoints in LangGraph's `JsonPlusSerializer` msgpack format.

The official SQLite saver stores a checkpoint as one msgpack map whose `channel_values` entry
holds every channel's value inline. Migration splits such a map into a checkpoint body and one
blob per channel, and composes one back for export, by walking the msgpack structure and
slicing bytes: a value is never decoded, so no class is rebuilt and the bytes (and their type
tag) reach the target unchanged.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime
import decimal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack
from langgraph.checkpoint.serde.base import SerializerProtocol

from ._records import CheckpointRecord, WriteRecord, uuid6_epoch
from .serde import UnsupportedTypeError

__all__ = [
    "JSONPLUS_READS",
    "JSONPLUS_TAGS",
    "KEEP_IT",
    "SplitCheckpoint",
    "compose_checkpoint",
    "first_change",
    "for_jsonplus",
    "jsonplus_write_rows",
    "pack_plain",
    "split_checkpoint",
    "standalone_value",
    "ts_to_epoch",
    "uuid6_epoch",
    "value_of",
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
        what = (
            f"the write to channel {w.channel!r} of task {w.task_id!r} on checkpoint "
            f"{w.checkpoint_id!r} of thread {w.thread_id!r}"
        )
        (upserts if w.idx < 0 else inserts).append(
            (
                w.thread_id,
                w.checkpoint_ns,
                w.checkpoint_id,
                w.task_id,
                w.task_path,
                w.idx,
                w.channel,
                *for_jsonplus(w.type, w.data, source, jsonplus, what),
            )
        )


def value_of(checkpoint: CheckpointRecord, channel: str) -> str:
    """How a refusal names the value of one channel of a checkpoint."""
    return (
        f"the value of channel {channel!r} in checkpoint {checkpoint.checkpoint_id!r} "
        f"(namespace {checkpoint.checkpoint_ns!r}) of thread {checkpoint.thread_id!r}"
    )


KEEP_IT = (
    "Keep the thread in a store of this package (sqlite://, postgresql://, redis://), which "
    "holds the value exactly, or change the graph's state to types LangGraph's serializer keeps"
)
"""The way out that a refusal of export to LangGraph's storage offers."""


def for_jsonplus(
    type_: str, data: bytes, source: SerializerProtocol, jsonplus: SerializerProtocol, what: str
) -> tuple[str, bytes]:
    """A stored value as LangGraph's `JsonPlusSerializer` can read it.

    Values it reads keep their bytes; any other (our own format, say) is decoded with the
    serializer that wrote it and encoded with `jsonplus`, which must read it back unchanged
    (a value it cannot rebuild comes back as something else, for one), except for tuples: it
    writes every tuple as a msgpack array, which comes back a list. LangGraph's own savers
    store every tuple that way, LangGraph reads either (its interrupts are a tuple, and so
    is a message given as `("user", "hi")`, in the input of nearly every thread), so a tuple
    that comes back a list with the same items is let through.

    Raises:
        UnsupportedTypeError: `jsonplus` cannot write the value (`what`), or would give it
            back changed, or could not read back what it wrote.
    """
    if type_ in JSONPLUS_READS:
        return type_, data
    value = source.loads_typed((type_, data))
    try:
        typed: tuple[str, bytes] = jsonplus.dumps_typed(value)
    except Exception as exc:  # what it cannot write, its saver could not store either
        raise UnsupportedTypeError(
            f"{what} cannot go into LangGraph's storage: its serializer cannot write it "
            f"({type(exc).__name__}: {exc}). {KEEP_IT}."
        ) from exc
    try:
        back = jsonplus.loads_typed(typed)
    except Exception as exc:  # any failure to read back is the refusal's cause
        raise UnsupportedTypeError(
            f"{what} cannot go into LangGraph's storage: its serializer cannot read back what "
            f"it writes for it ({type(exc).__name__}: {exc}). {KEEP_IT}."
        ) from exc
    try:
        change = first_change(value, back, lists_for_tuples=True)
    except RecursionError:  # nested past what this walk can follow: not judged
        change = None
    if change is not None:
        raise UnsupportedTypeError(
            f"{what} cannot go into LangGraph's storage unchanged: with its serializer, "
            f"{change}. {KEEP_IT}."
        )
    return typed


_EXACT = frozenset({str, int, bool, bytes, type(None)})
"""Types whose `==` with a value of the same type is exact."""


def first_change(
    before: Any, after: Any, path: str = "value", *, lists_for_tuples: bool = False
) -> str | None:
    """Where `after` (a value read back) differs from `before`, in type or in value, in words;
    None when nothing differs that this can tell.

    Containers are compared item by item with their exact types (a tuple is not a list,
    bytes are not a bytearray, 1 is not 1.0, -0.0 is not 0.0), dataclasses and pydantic
    models field by field (not which fields were set), datetimes with their `fold` and time
    zone, decimals with their exponent, anything else by its own `==`. A type without an
    equality of its own, or whose `==` does not answer with a bool (a numpy array), is not
    judged. With `lists_for_tuples`, a tuple may come back as a list of the same items.
    """
    kind = type(before)
    if kind in _EXACT and kind is type(after):  # the leaves, most of a value: one comparison
        return None if before == after else f"{path}, {before!r:.60}, comes back as {after!r:.60}"
    alike = lists_for_tuples and kind is tuple and type(after) is list
    if kind is not type(after) and not alike:
        return f"{path}, a {type(before).__name__}, comes back as a {type(after).__name__}"
    if isinstance(before, float):
        if math.isnan(before) and math.isnan(after):
            return None
        if before == after and math.copysign(1.0, before) == math.copysign(1.0, after):
            return None
        return f"{path}, {before!r}, comes back as {after!r}"
    if isinstance(before, (datetime.datetime, datetime.time)):
        return _time_change(before, after, path)
    if isinstance(before, decimal.Decimal):  # 1.0 and 1.00 are equal, and print differently
        same = before.as_tuple() == after.as_tuple()
        return None if same else f"{path}, {before!r}, comes back as {after!r}"
    if isinstance(before, (list, tuple, collections.deque)):
        if len(before) != len(after):
            return f"{path} has {len(before)} items and comes back with {len(after)}"
        if isinstance(before, collections.deque) and before.maxlen != after.maxlen:
            return f"{path}, a deque of maxlen {before.maxlen}, comes back with {after.maxlen}"
        for i, (x, y) in enumerate(zip(before, after, strict=True)):
            change = first_change(x, y, f"{path}[{i}]", lists_for_tuples=lists_for_tuples)
            if change is not None:
                return change
        return None
    if isinstance(before, dict):
        return _first_change_in(before, after, path, lists_for_tuples=lists_for_tuples)
    if dataclasses.is_dataclass(before):
        fields = {f.name: getattr(before, f.name) for f in dataclasses.fields(before)}
        again = {f.name: getattr(after, f.name) for f in dataclasses.fields(after)}
        return _first_change_in(fields, again, path, lists_for_tuples, attributes=True)
    if hasattr(type(before), "model_fields") or hasattr(type(before), "__fields__"):
        # A pydantic model: its fields are its __dict__, v2's extra fields a dict beside it.
        extra = getattr(before, "__pydantic_extra__", None) or {}
        again = getattr(after, "__pydantic_extra__", None) or {}
        return _first_change_in(
            vars(before), vars(after), path, lists_for_tuples, attributes=True
        ) or _first_change_in(extra, again, path, lists_for_tuples, attributes=True)
    slots = _slots(kind)
    if slots:  # a class of named slots, such as LangGraph's Send: each slot, as a field
        fields = {name: getattr(before, name, _UNSET) for name in slots}
        again = {name: getattr(after, name, _UNSET) for name in slots}
        return _first_change_in(fields, again, path, lists_for_tuples, attributes=True)
    if getattr(type(before), "__eq__", None) is object.__eq__:  # equal only to itself
        return None
    try:
        same = before == after
    except Exception:  # an equality that fails cannot judge
        return None
    if not isinstance(same, bool) or same:
        return None
    return f"{path} ({type(before).__name__}) comes back different"


_UNSET = object()


_SLOTS: dict[type, tuple[str, ...]] = {}  # one entry per class met: classes are few


def _slots(cls: type) -> tuple[str, ...]:
    """The slot names of a class that keeps its state in slots only (no `__dict__`)."""
    known = _SLOTS.get(cls)
    if known is not None:
        return known
    names: list[str] = []
    if hasattr(cls, "__slots__") and "__dict__" not in dir(cls):
        for klass in cls.__mro__:
            declared = klass.__dict__.get("__slots__", ())
            names.extend((declared,) if isinstance(declared, str) else declared)
    found = _SLOTS[cls] = tuple(n for n in names if n not in ("__dict__", "__weakref__"))
    return found


def _time_change(before: Any, after: Any, path: str) -> str | None:
    """A datetime or time: the wall clock, `fold`, and the time zone itself (two zones with the
    same offset now differ at another date: a `ZoneInfo` is not a fixed offset)."""
    if before.replace(tzinfo=None) != after.replace(tzinfo=None) or before.fold != after.fold:
        return f"{path}, {before!r}, comes back as {after!r}"
    zone, again = before.tzinfo, after.tzinfo
    if type(zone) is not type(again) or zone != again:
        return f"{path}'s time zone, {zone!r}, comes back as {again!r}"
    return None


def _first_change_in(
    before: Mapping[Any, Any],
    after: Mapping[Any, Any],
    path: str,
    lists_for_tuples: bool,
    *,
    attributes: bool = False,
) -> str | None:
    # 1, 1.0 and True are one dict key: tell them apart (attribute names are all str)
    keys = None if attributes else {key: key for key in after}
    for key, value in before.items():
        if key not in after:
            return f"{path} loses its {'attribute' if attributes else 'key'} {key!r}"
        if keys is not None and type(keys[key]) is not type(key):
            return f"{path}'s key {key!r} comes back as {keys[key]!r}"
        again = after[key]
        if type(value) in _EXACT and type(again) is type(value) and value == again:
            continue
        at = f"{path}.{key}" if attributes else f"{path}[{key!r}]"
        change = first_change(value, again, at, lists_for_tuples=lists_for_tuples)
        if change is not None:
            return change
    for key in after:
        if key not in before:
            return f"{path} gains {'an attribute' if attributes else 'a key'} {key!r}"
    return None


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

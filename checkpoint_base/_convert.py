"""Pure conversions between LangGraph's values and records: configs, checkpoints, their
values (blobs) and writes. Metadata is `_metadata`'s."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    WRITES_IDX_MAP,
    ChannelVersions,
    Checkpoint,
    CheckpointMetadata,
    CheckpointTuple,
    writes_sort_key,
)
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ._errors import ConfigError, DamagedDataError
from ._lists import (
    HEAD,
    MIN_ITEMS,
    ROWS_PART,
    Blobs,
    Layout,
    Lists,
    Segment,
    channel_version,
    encode_list,
    is_segment,
    layout_of,
    resolve,
)
from ._metadata import decode_metadata, encode_metadata, stored_metadata_for
from ._records import EMPTY, BlobRecord, CheckpointRecord, CheckpointRow, WriteRecord, as_bytes
from .serde import EncryptedDataError, MsgpackSerializer

__all__ = [
    "RowPart",
    "ThreadKey",
    "checkpoint_config",
    "next_version",
    "parse_config",
    "row_parts",
    "to_records",
    "to_tuple",
    "write_records",
]

ThreadKey = tuple[str, str, str | None]
"""(thread_id, checkpoint_ns, checkpoint_id or None)."""


def parse_config(config: RunnableConfig | None, *, need_checkpoint_id: bool = False) -> ThreadKey:
    """Read thread id, namespace and checkpoint id from a config, or say what is wrong."""
    if not isinstance(config, Mapping):
        raise ConfigError(
            f"config must be a dict like {{'configurable': {{'thread_id': ...}}}}, "
            f"got {type(config).__name__}"
        )
    configurable = config.get("configurable")
    if not isinstance(configurable, Mapping):
        raise ConfigError(
            "config has no 'configurable' dict: pass "
            "config={'configurable': {'thread_id': 'my-thread'}}"
        )
    thread_id = configurable.get("thread_id")
    if thread_id is None or thread_id == "":
        raise ConfigError(
            "config['configurable']['thread_id'] is missing: pass "
            "config={'configurable': {'thread_id': 'my-thread'}}"
        )
    checkpoint_ns = configurable.get("checkpoint_ns") or ""
    if not isinstance(checkpoint_ns, str):
        raise ConfigError(
            f"config['configurable']['checkpoint_ns'] must be a str, "
            f"got {type(checkpoint_ns).__name__}"
        )
    checkpoint_id = configurable.get("checkpoint_id") or None
    if checkpoint_id is not None and not isinstance(checkpoint_id, str):
        raise ConfigError(
            f"config['configurable']['checkpoint_id'] must be a str, "
            f"got {type(checkpoint_id).__name__}"
        )
    if need_checkpoint_id and checkpoint_id is None:
        raise ConfigError(
            "config['configurable']['checkpoint_id'] is missing: writes belong to a "
            "checkpoint; pass the config that put() returned"
        )
    return str(thread_id), checkpoint_ns, checkpoint_id


def checkpoint_config(thread_id: str, checkpoint_ns: str, checkpoint_id: str) -> RunnableConfig:
    """The config that names one stored checkpoint."""
    return {
        "configurable": {
            "thread_id": thread_id,
            "checkpoint_ns": checkpoint_ns,
            "checkpoint_id": checkpoint_id,
        }
    }


def next_version(current: str | int | float | None) -> str:
    """The next channel version, in the format of the official SQL savers.

    `"{counter:032}.{random:016}"`: sortable as text, and the same everywhere, so records
    migrate between backends (and from the official savers) without rewriting versions.
    """
    if current is None:
        counter = 0
    elif isinstance(current, (int, float)):
        counter = int(current)
    else:
        counter = int(current.split(".", 1)[0])
    return f"{counter + 1:032}.{random.random():016}"


# -- checkpoints ------------------------------------------------------------------------------


def to_records(
    serde: SerializerProtocol,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> tuple[CheckpointRecord, list[BlobRecord]]:
    """Split a checkpoint into its record and the blobs of the channels in `new_versions`,
    each a whole value (no list in segments)."""
    record, blobs, _ = put_records(serde, None, config, checkpoint, metadata, new_versions)
    return record, blobs


def put_records(
    serde: SerializerProtocol,
    lists: Lists | None,
    config: RunnableConfig,
    checkpoint: Checkpoint,
    metadata: CheckpointMetadata,
    new_versions: ChannelVersions,
) -> tuple[CheckpointRecord, list[BlobRecord], dict[str, Layout] | None]:
    """Split a checkpoint into its record and the blobs to write.

    With `lists` (and the package's serializer), a list of `MIN_ITEMS` or more items is
    stored in segments (`_lists`), reusing the segments of the parent's layout that `lists`
    knows; a list channel left unchanged since a parent whose layout is unknown is written
    whole under its version, so the record never reads a head it does not name the segments
    of. Returns the layouts of the new checkpoint too (None without `lists`).
    """
    thread_id, checkpoint_ns, parent_id = parse_config(config)
    if not isinstance(checkpoint, Mapping) or "id" not in checkpoint:
        raise ConfigError("checkpoint must be a Checkpoint dict with an 'id'")
    body: dict[str, Any] = dict(checkpoint)
    values: dict[str, Any] = body.pop("channel_values", None) or {}
    versions = {ch: str(v) for ch, v in checkpoint["channel_versions"].items()}
    reserved = next((channel for channel in versions if is_segment(channel)), None)
    if reserved is not None:
        raise ConfigError(
            f"channel name {reserved!r} starts with \\x01, which this package reserves for "
            "its own storage keys: rename the state key"
        )
    if lists is not None and type(serde) is not MsgpackSerializer:
        lists = None  # another serializer (an encrypting one): bytes are not comparable
    layouts: dict[str, Layout] | None = None
    parent: dict[str, Layout] | None = None
    if lists is not None:
        layouts = {}
        parent = lists.layouts(thread_id, checkpoint_ns, parent_id)
    blobs = []
    for channel, version in new_versions.items():
        if channel in values:
            value = values[channel]
            if layouts is not None and type(value) is list and len(value) >= MIN_ITEMS:
                before = parent.get(channel) if parent is not None else None
                layout, head, new = encode_list(
                    serde.dumps_typed, value, str(version), before, channel
                )
                for seg in new:
                    blobs.append(
                        BlobRecord(thread_id, checkpoint_ns, seg.channel, seg.version, seg.type,
                                   seg.data)
                    )  # fmt: skip
                blobs.append(
                    BlobRecord(thread_id, checkpoint_ns, channel, layout.head_version, HEAD, head)
                )
                layouts[channel] = layout
                continue
            type_, data = serde.dumps_typed(value)
        else:
            type_, data = EMPTY, b""
        blobs.append(BlobRecord(thread_id, checkpoint_ns, channel, str(version), type_, data))
    stored_versions = versions
    if layouts is not None:
        for channel, version in versions.items():
            if channel in new_versions:
                continue
            known = parent.get(channel) if parent is not None else None
            if known is not None and known.version == version:
                layouts[channel] = known
                continue
            if parent is not None and known is None:
                continue  # the parent stores it whole, under this version
            value = values.get(channel)
            if type(value) is list and len(value) >= MIN_ITEMS:
                # Perhaps in segments this record could not name: stored whole as well.
                type_, data = serde.dumps_typed(value)
                blobs.append(BlobRecord(thread_id, checkpoint_ns, channel, version, type_, data))
        if layouts:
            stored_versions = dict(versions)
            for channel, layout in layouts.items():
                stored_versions[channel] = layout.head_version
                for seg in layout.segments:
                    stored_versions[seg.channel] = seg.version
    type_, data = serde.dumps_typed(body)
    stored_metadata = stored_metadata_for(config, metadata)
    run_id = stored_metadata.get("run_id")
    record = CheckpointRecord(
        thread_id=thread_id,
        checkpoint_ns=checkpoint_ns,
        checkpoint_id=str(checkpoint["id"]),
        parent_checkpoint_id=parent_id,
        type=type_,
        checkpoint=data,
        metadata=encode_metadata(stored_metadata),
        channel_versions=stored_versions,
        run_id=str(run_id) if run_id is not None else None,
        created_at=time.time(),
    )
    return record, blobs, layouts


def write_records(
    serde: SerializerProtocol,
    config: RunnableConfig,
    writes: Sequence[tuple[str, Any]],
    task_id: str,
    task_path: str,
) -> list[WriteRecord]:
    """The records of one `put_writes` call, with `WRITES_IDX_MAP` indexes for special writes."""
    thread_id, checkpoint_ns, checkpoint_id = parse_config(config, need_checkpoint_id=True)
    assert checkpoint_id is not None
    records = []
    for idx, (channel, value) in enumerate(writes):
        type_, data = serde.dumps_typed(value)
        records.append(
            WriteRecord(
                thread_id=thread_id,
                checkpoint_ns=checkpoint_ns,
                checkpoint_id=checkpoint_id,
                task_id=str(task_id),
                idx=WRITES_IDX_MAP.get(channel, idx),
                channel=channel,
                type=type_,
                data=data,
                task_path=task_path or "",
            )
        )
    return records


def sorted_writes(row: CheckpointRow) -> list[WriteRecord]:
    """A checkpoint's writes in `writes_sort_key` order, the order LangGraph applies them."""
    return sorted(row.writes, key=lambda w: writes_sort_key(w.task_path, w.task_id, w.idx))


def load_blob(serde: SerializerProtocol, blob: BlobRecord | None) -> tuple[bool, Any]:
    """(True, value) for a blob that holds a value; (False, None) for none or EMPTY.

    Raises:
        ValueError: `blob` is a list's head, which needs its segments: see `load_channel`.
    """
    if blob is None or blob.type == EMPTY:
        return False, None
    if blob.type == HEAD or blob.type == ROWS_PART:
        raise ValueError(f"{_blob_part(blob)} is a part of a list, read without its parts")
    data = blob.data
    if type(serde) is not MsgpackSerializer:
        data = as_bytes(data)  # SerializerProtocol promises bytes; ours reads a view as well
    return True, serde.loads_typed((blob.type, cast(bytes, data)))


def _blob_part(blob: BlobRecord) -> str:
    """A blob, as a `DamagedDataError` names the unreadable part."""
    return f"the value of channel {blob.channel!r} at version {blob.version!r} (type {blob.type!r})"


def _write_part(write: WriteRecord) -> str:
    """A write, as a `DamagedDataError` names the unreadable part."""
    return f"the write of task {write.task_id!r} to channel {write.channel!r} (type {write.type!r})"


def load_write(serde: SerializerProtocol, write: WriteRecord) -> Any:
    """The value of a stored write, or a `DamagedDataError` naming it."""
    try:
        return serde.loads_typed((write.type, write.data))
    except UNREADABLE as exc:
        encryption = encryption_of(serde, write.type, exc)
        raise DamagedDataError.of(write, _write_part(write), exc, encryption=encryption) from exc


def encryption_of(serde: SerializerProtocol, type_tag: str, exc: BaseException) -> str | None:
    """`DamagedDataError.encryption` for a value of `type_tag` that `serde` failed to read with
    `exc`: `"no key"` when the serializer met encrypted data it holds no key for, `"failed"`
    when `serde` holds a key (LangGraph's `EncryptedSerializer`) and the value is one it
    decrypts (reading failed in decryption or in what it decrypted to), else None."""
    if isinstance(exc, EncryptedDataError):
        return "no key"
    return "failed" if "+" in type_tag and isinstance(serde, EncryptedSerializer) else None


def blob_map(row: CheckpointRow) -> dict[tuple[str, str], BlobRecord]:
    """A fetched row's blobs by `(channel, version)`."""
    return {(b.channel, b.version): b for b in row.blobs}


def load_channel(
    serde: SerializerProtocol,
    blob: BlobRecord | None,
    blobs: Blobs,
    keep: dict[str, Layout] | None = None,
) -> tuple[bool, Any]:
    """`load_blob`, reading a list stored in segments from `blobs` (the row's blobs).

    `keep`: receives the layout of a list read from segments, under its channel.
    """
    if blob is not None and blob.type == HEAD:
        segments: list[Segment] | None = [] if keep is not None else None
        value = resolve(serde.loads_typed, blob, blobs, segments)
        if keep is not None:
            keep[blob.channel] = layout_of(blob.version, segments or ())
        return True, value
    return load_blob(serde, blob)


def whole_list(serde: SerializerProtocol, head: BlobRecord, blobs: Blobs) -> BlobRecord:
    """A list's head as the blob of the whole list, under LangGraph's version of the channel
    (for a format that stores each value whole).

    Raises:
        As `resolve`, and what the serializer raises.
    """
    value = resolve(serde.loads_typed, head, blobs)
    type_, data = serde.dumps_typed(value)
    version = channel_version(head.version)
    return BlobRecord(head.thread_id, head.checkpoint_ns, head.channel, version, type_, data)


def load_values(
    serde: SerializerProtocol,
    rec: CheckpointRecord,
    blobs: Blobs,
    keep: dict[str, Layout] | None = None,
) -> dict[str, Any]:
    """The channel values of a checkpoint from its blobs.

    Raises:
        What `load_blob` and the serializer raise on a damaged value (see `UNREADABLE`).
    """
    values: dict[str, Any] = {}
    for channel, version in rec.channel_versions.items():
        if is_segment(channel):
            continue  # a segment, read through its head
        present, value = load_channel(serde, blobs.get((channel, version)), blobs, keep)
        if present:
            values[channel] = value
    return values


def load_seed(
    serde: SerializerProtocol, blob: BlobRecord | None, blobs: Blobs | None = None
) -> tuple[bool, Any]:
    """`load_channel`, or a `DamagedDataError` naming the blob's thread, channel and version."""
    try:
        return load_channel(serde, blob, blobs or {})
    except UNREADABLE as exc:
        assert blob is not None
        raise DamagedDataError(
            _blob_part(blob),
            thread_id=blob.thread_id,
            checkpoint_ns=blob.checkpoint_ns,
            detail=f"{type(exc).__name__}: {exc}",
            encryption=encryption_of(serde, blob.type, exc),
        ) from exc


def to_tuple(
    serde: SerializerProtocol,
    row: CheckpointRow,
    metadata: CheckpointMetadata | None = None,
    keep: dict[str, Layout] | None = None,
) -> CheckpointTuple:
    """Rebuild the `CheckpointTuple` that LangGraph expects from a fetched row.

    `metadata`: the row's metadata already decoded (a filtered `list` decodes it to check
    the filter), else None to decode it here. `keep`: receives the layouts of the lists
    stored in segments (`load_channel`).
    """
    rec = row.checkpoint
    try:
        checkpoint: Checkpoint = serde.loads_typed((rec.type, rec.checkpoint))
        checkpoint["channel_values"] = load_values(serde, rec, blob_map(row), keep=keep)
        return CheckpointTuple(
            config=checkpoint_config(rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id),
            checkpoint=checkpoint,
            metadata=decode_metadata(rec.metadata) if metadata is None else metadata,
            parent_config=(
                checkpoint_config(rec.thread_id, rec.checkpoint_ns, rec.parent_checkpoint_id)
                if rec.parent_checkpoint_id
                else None
            ),
            pending_writes=[
                (w.task_id, w.channel, serde.loads_typed((w.type, w.data)))
                for w in sorted_writes(row)
            ],
        )
    except UNREADABLE as exc:
        raise damaged_row(serde, row, exc) from exc


UNREADABLE = (ValueError, TypeError, KeyError, IndexError, AttributeError)
"""What reading a damaged or foreign value raises: the serializer's `MalformedDataError` and
`NestingTooDeepError`, json's and msgpack's errors and `UnicodeDecodeError` are ValueErrors;
a checkpoint that decodes to something other than a dict fails with one of the others."""


def damaged_row(serde: SerializerProtocol, row: CheckpointRow, exc: Exception) -> DamagedDataError:
    """The error for a fetched row that `to_tuple` could not read: which part is unreadable."""
    part, type_tag = _unreadable(serde, row) or ("its data", "")
    encryption = encryption_of(serde, type_tag, exc)
    return DamagedDataError.of(row.checkpoint, part, exc, encryption=encryption)


def raise_if_damaged(serde: SerializerProtocol, row: CheckpointRow, exc: Exception) -> None:
    """Raise `damaged_row`'s error when a part of `row` is unreadable; else return, for the
    caller to raise `exc` itself (a failure that is not the stored data's)."""
    if unreadable_part(serde, row) is not None:
        raise damaged_row(serde, row, exc) from exc


def unreadable_part(serde: SerializerProtocol, row: CheckpointRow) -> str | None:
    """Which part of a fetched row `serde` cannot read, or None when it reads every part.

    Runs only on an error path: each part is decoded again, in the order `to_tuple` reads them.
    """
    found = _unreadable(serde, row)
    return None if found is None else found[0]


def _unreadable(serde: SerializerProtocol, row: CheckpointRow) -> tuple[str, str] | None:
    """`unreadable_part`, with the type tag of that part ("" for the metadata)."""
    for part in row_parts(serde, row):
        try:
            part.read()
        except UNREADABLE:
            return part.name, part.type_tag
    return None


@dataclass(frozen=True, slots=True)
class RowPart:
    """One part of a fetched row, as `to_tuple` reads it.

    Attributes:
        kind: "checkpoint", "metadata", "value" or "write".
        name: The part as a `DamagedDataError` names it.
        type_tag: Its serializer type tag ("" for the metadata, which is JSON).
        record: The blob or write it is; None for the checkpoint and its metadata.
        read: Decodes it, raising what the serializer or JSON raises.
    """

    kind: str
    name: str
    type_tag: str
    record: BlobRecord | WriteRecord | None
    read: Callable[[], object]


def row_parts(serde: SerializerProtocol, row: CheckpointRow) -> list[RowPart]:
    """The parts of `row` in the order `to_tuple` reads them, each to be read on its own."""
    rec = row.checkpoint
    parts = [
        RowPart(
            "checkpoint", f"the checkpoint (type {rec.type!r})", rec.type, None,
            lambda: _checkpoint_body(serde, rec),
        ),
        RowPart("metadata", "its metadata (JSON)", "", None, lambda: decode_metadata(rec.metadata)),
    ]  # fmt: skip
    blobs = blob_map(row)
    for b in row.blobs:
        if is_segment(b.channel):
            continue  # read through its head, which names it when it does not read
        read = partial(load_channel, serde, b, blobs)
        parts.append(RowPart("value", _blob_part(b), b.type, b, read))
    for w in row.writes:
        parts.append(RowPart("write", _write_part(w), w.type, w, partial(_read_write, serde, w)))
    return parts


def _read_write(serde: SerializerProtocol, write: WriteRecord) -> None:
    serde.loads_typed((write.type, as_bytes(write.data)))


def _checkpoint_body(serde: SerializerProtocol, rec: CheckpointRecord) -> None:
    body = serde.loads_typed((rec.type, rec.checkpoint))
    if not isinstance(body, dict):
        raise TypeError(f"the checkpoint decodes to a {type(body).__name__}, not a dict")

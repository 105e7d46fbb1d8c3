"""Per-thread digests of records, to compare a thread on two sides of a migration.

A digest covers what a thread *is*, not how one storage happens to encode it: checkpoint ids,
parent ids, metadata (as JSON values), channel versions, the type and bytes of every value a
checkpoint reads, and every pending write. The checkpoint body's bytes are left out (the
official Postgres saver stores it as JSONB, so it is re-encoded on the way), and so is
`created_at` (the official savers do not store it).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ._convert import blob_map, whole_list
from ._lists import HEAD, is_segment
from ._migrate_msgpack import standalone_value
from ._migrate_side import Key, key_of
from ._records import EMPTY, CheckpointRow, as_bytes

__all__ = ["Recode", "ThreadMismatch", "compare_rows", "row_digest", "thread_digest"]


@dataclass(frozen=True, slots=True)
class Recode:
    """Re-encode values before hashing, where two sides cannot hold the same bytes.

    A side read through a public API gets its bytes from a serializer, not from storage;
    the official savers' storage holds only `JsonPlusSerializer` tags, so a value of ours
    in another format is re-encoded on its way there. Such values are decoded with their
    side's `serde` and encoded again with `common` on both sides.

    Attributes:
        serde: Reads this side's values.
        common: Encodes them for hashing.
        keep: Tags hashed as stored (None: every value is re-encoded).
    """

    serde: SerializerProtocol
    common: SerializerProtocol
    keep: frozenset[str] | None = None


@dataclass(frozen=True, slots=True)
class ThreadMismatch:
    """A thread that differs between source and target.

    Attributes:
        thread_id: The thread.
        missing: Checkpoints of the source absent from the target, as (namespace, id).
        different: Checkpoints present on both sides whose records differ.
    """

    thread_id: str
    missing: tuple[Key, ...]
    different: tuple[Key, ...]

    def describe(self) -> str:
        """One line for people."""
        parts = []
        if self.missing:
            parts.append(f"{len(self.missing)} missing (first {_name(self.missing[0])})")
        if self.different:
            parts.append(f"{len(self.different)} different (first {_name(self.different[0])})")
        return f"thread {self.thread_id}: " + ", ".join(parts)


def _name(key: Key) -> str:
    ns, cid = key
    return f"{cid} in namespace {ns!r}" if ns else cid


def _value(type_: str, data: bytes, recode: Recode | None) -> tuple[str, bytes]:
    if recode is not None and (recode.keep is None or type_ not in recode.keep):
        if "+" in type_ and not isinstance(recode.serde, EncryptedSerializer):
            # Encrypted (`{tag}+{cipher}`), and this side holds no key: the migration could
            # only copy it as stored, so it is compared as stored.
            return type_, data
        type_, data = recode.common.dumps_typed(recode.serde.loads_typed((type_, data)))
    if type_ == "msgpack":  # an inline None or bytes reads as JsonPlusSerializer tags them
        return standalone_value(data)
    return type_, data


def row_digest(row: CheckpointRow, recode: Recode | None = None, *, exact: bool = True) -> str:
    """The digest of one checkpoint's records.

    With `exact=False` (a side read through a public API), a write's `task_path` and the gaps
    in its task's `idx` numbering are left out: that API does not show them.
    """
    rec = row.checkpoint
    h = hashlib.sha256()

    def add(*parts: object) -> None:
        for part in parts:
            data = part if isinstance(part, bytes) else repr(part).encode()
            h.update(len(data).to_bytes(8, "big"))
            h.update(data)

    add(rec.checkpoint_ns, rec.checkpoint_id, rec.parent_checkpoint_id)
    try:
        metadata = json.loads(rec.metadata) if rec.metadata else {}
    except (ValueError, RecursionError):  # damaged: copied verbatim, so compared verbatim
        add(bytes(rec.metadata))
    else:
        add(json.dumps(metadata, sort_keys=True, ensure_ascii=True))
    blobs = blob_map(row)
    for channel, version in sorted(rec.channel_versions.items()):
        blob = blobs.get((channel, version))
        if recode is not None:
            # Sides that encode differently: a list in segments counts as the whole list.
            if is_segment(channel):
                continue
            if blob is not None and blob.type == HEAD:
                blob = whole_list(recode.serde, blob, blobs)
                version = blob.version
        add(channel, str(version))
        if blob is None or blob.type == EMPTY:
            add("<no value>")
        else:
            add(*_value(blob.type, as_bytes(blob.data), recode))
    rank: dict[str, int] = {}
    for w in sorted(row.writes, key=lambda w: (w.task_id, w.idx < 0, w.idx)):
        idx = w.idx
        if not exact and idx >= 0:  # a public API shows order, not idx
            idx = rank[w.task_id] = rank.get(w.task_id, -1) + 1
        add(w.task_id, idx, w.channel, *_value(w.type, w.data, recode))
        add(w.task_path if exact else "")
    return h.hexdigest()


def thread_digest(
    rows: Iterable[CheckpointRow], recode: Recode | None = None, *, exact: bool = True
) -> str:
    """The digest of a thread: of its checkpoints' digests, in (namespace, id) order."""
    h = hashlib.sha256()
    for key, digest in sorted(_digests(rows, recode, exact).items()):
        h.update(repr(key).encode())
        h.update(digest.encode())
    return h.hexdigest()


def _digests(rows: Iterable[CheckpointRow], recode: Recode | None, exact: bool) -> dict[Key, str]:
    return {key_of(r): row_digest(r, recode, exact=exact) for r in rows}


def compare_rows(
    thread_id: str,
    source: Iterable[CheckpointRow],
    target: Iterable[CheckpointRow],
    recode: tuple[Recode | None, Recode | None] = (None, None),
    *,
    exact: bool = True,
) -> ThreadMismatch | None:
    """Compare the source's checkpoints of a thread with the target's; None when they match.

    Checkpoints that only the target has are not a mismatch (the target may have moved on).
    """
    mine = _digests(source, recode[0], exact)
    theirs: Mapping[Key, str] = _digests((r for r in target if key_of(r) in mine), recode[1], exact)
    missing = tuple(sorted(k for k in mine if k not in theirs))
    different = tuple(sorted(k for k in mine if k in theirs and theirs[k] != mine[k]))
    if missing or different:
        return ThreadMismatch(thread_id, missing, different)
    return None

"""Long lists stored in shared segments: storage that grows with a thread, not with its square.

A message list grows by a message or two each step, and LangGraph hands the saver the whole
list each time. Stored whole, a thread of n steps holds about n²/2 messages. Here a list of
`MIN_ITEMS` or more items is stored as *segments* (blobs holding consecutive runs of items,
each written once and read by every later checkpoint whose list starts with them) plus a
*head* blob, the channel's own, which names the segments and holds the last few items.

Storage (for the backends, every part is an ordinary blob):

- the head: channel `C`, version `"<LangGraph's version>+<16 hex>"`, type `HEAD`, data a
  msgpack array `[1, kind, [[segment channel, segment version, item count], ...], a,
  tail item count, b]` (`read_head`). A list of pydantic models (kind `_ROWS`: a message
  list, which the serializer writes as one `ROWS` list) is stored as the bytes of that list
  cut in runs: `a` holds its first bytes (array header, class names), each segment the
  packed rows of its items (type `ROWS_PART`), `b` the tail's rows and the closing marker,
  so a read joins them and decodes the list once. Another list (kind `_GENERIC`) has each
  segment and the tail serialized on its own: `a` is the tail's type tag, `b` its bytes;
- a segment: channel `"\\x01<slot>\\x01C"`, version `"<version of the put that wrote
  it>+<16 hex>"`;
- the checkpoint's `channel_versions` map (the one every backend joins blobs on) names the
  head under `C` and each segment under its channel, so a read fetches them in its one round
  trip, and a prune, trim or `delete_for_runs` keeps every segment a kept checkpoint reads.

The random suffix makes every head and segment key name exactly one content, so a stored key
is never re-used for other bytes (two forks of one parent, a retried put). A whole list is
still stored as a plain blob under LangGraph's own version, so `(C, version)` always holds
the whole value, whatever else is stored.

Writing a list (`encode_list`) needs the layout of the parent checkpoint's list, which the
saver remembers (`Lists`, bounded) from the puts it made and the `get_tuple` reads it served:
that is how LangGraph works, a read of the thread's latest checkpoint, then puts that each
follow the last. The items are serialized every time, as before; a segment is kept only when
its items serialize to exactly the bytes stored, so a message changed in place, replaced or
removed is never lost. When the parent's layout is unknown, the list is written anew.

A segment whose items no longer serialize to its bytes (a message changed in place, or
rebuilt with other fields marked as set) is written again over the same run; from the first
item that is missing (the list got shorter) the items are written again.

Segments are made by a binary counter: once the items after the last segment reach `TAIL`,
they become a segment, merged with the last ones while those are no longer than it; sizes
fall strictly, so a list of n items has at most log2(n / TAIL) + 1 segments, and each item is
written about that many times in all.
"""

from __future__ import annotations

import collections
import os
import threading
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgpack

from ._records import BlobRecord, as_bytes
from .serde._codes import ROWS_TAG
from .serde._encode import array_header, array_header_size, encode, encode_rows

__all__ = [
    "HEAD",
    "MIN_ITEMS",
    "ROWS_PART",
    "TAIL",
    "Head",
    "Layout",
    "Lists",
    "Segment",
    "channel_version",
    "is_segment",
    "layout_of",
    "read_head",
    "resolve",
]

HEAD = "checkpointers.list"
"""Type tag of a head blob."""
ROWS_PART = "checkpointers.rows"
"""Type tag of a segment of rows: the packed elements of a run of rows of a `ROWS` list (the
serializer's message-list layout), which the bytes of its head and the other segments make
whole; read only through its head."""
MARK = "\x01"
"""First character of a segment's channel. LangGraph channel names never hold it."""
MIN_ITEMS = 16
"""Lists this long or longer are stored in segments."""
TAIL = 8
"""Items after the last segment that make a new one."""
_FORMAT = 1
_GENERIC = 0
"""Head kind: each segment (and the tail) is a list serialized on its own."""
_ROWS = 1
"""Head kind: the list is a `ROWS` list; each segment holds the packed rows of its items,
the head the class names they index, and the list is read in one decode."""


def is_segment(channel: str) -> bool:
    """Whether a `channel_versions` key names a segment, not a channel of the graph."""
    return channel[:1] == MARK


class Segment(NamedTuple):
    """A stored run of a list's items: `items[start:end]`, stored as `(type, data)`.

    (A named tuple: a read makes one per segment; a frozen dataclass took 1.7 us each here,
    a named tuple 0.7 us.)
    """

    channel: str
    version: str
    start: int
    end: int
    type: str
    data: bytes


@dataclass(frozen=True, slots=True)
class Layout:
    """How one checkpoint stores one list: its head's version, kind and segments, in order."""

    head_version: str
    segments: tuple[Segment, ...]
    kind: int = _GENERIC

    @property
    def version(self) -> str:
        """LangGraph's version of the channel that the head stores the value of."""
        return channel_version(self.head_version)

    @property
    def size(self) -> int:
        """Bytes of segment data held in memory."""
        return sum(len(s.data) for s in self.segments)


def channel_version(head_version: str) -> str:
    """LangGraph's version of a channel, from the version its head is stored under."""
    return head_version.rpartition("+")[0]


def _stored_version(version: str) -> str:
    """A new key's version for a head or segment written at LangGraph's `version`: the
    random suffix makes it name one content (`channel_version` takes it off)."""
    return f"{version}+{os.urandom(8).hex()}"


def layout_of(head_version: str, segments: Sequence[Segment]) -> Layout:
    """The layout of a head read from storage (`resolve`'s `keep`)."""
    kind = _ROWS if segments and segments[0].type == ROWS_PART else _GENERIC
    return Layout(head_version, tuple(segments), kind)


def _segment_channel(slot: int, channel: str) -> str:
    return f"{MARK}{slot}{MARK}{channel}"


Dumps = Callable[[Any], tuple[str, bytes]]
Part = Callable[[int, int, "Segment | None"], "tuple[str, bytes] | None"]


def encode_list(
    dumps: Dumps, items: list[Any], version: str, parent: Layout | None, channel: str
) -> tuple[Layout, bytes, list[Segment]]:
    """Store `items` (the channel's value at `version`) in segments.

    `dumps`: the serializer's `dumps_typed`, for a list that is not a list of rows.

    Returns:
        The layout, the head's data, and the segments to write (the others are the parent's).

    Raises:
        What the serializer raises.
    """
    n = len(items)
    cuts = sorted({s.end for s in parent.segments if s.end < n} | {n}) if parent else [n]
    found = encode_rows(items, cuts)
    part: Part
    if found is None:
        kind = _GENERIC

        def part(a: int, b: int, old: Segment | None) -> tuple[str, bytes] | None:
            """`items[a:b]` as `(type, data)`, or None when that is `old`'s."""
            type_, data = dumps(items[a:b])
            if old is not None and type_ == old.type and data == old.data:
                return None
            return type_, data

    else:
        kind = _ROWS
        out, ends = found
        offsets = dict(zip(cuts, ends, strict=True))
        offsets[0] = 1  # after the class names

        def part(a: int, b: int, old: Segment | None) -> tuple[str, bytes] | None:
            """The packed rows of `items[a:b]`, or None when they are `old`'s (compared
            in place: the array header is not stored)."""
            x, y = offsets[a], offsets[b]
            packed = encode(out[x:y])
            skip = array_header_size(y - x)
            if (
                old is not None
                and len(packed) - skip == len(old.data)
                and packed.endswith(old.data)
            ):
                return None
            return ROWS_PART, packed[skip:]

    kept: list[Segment] = []
    if parent is not None and parent.kind == kind:
        for seg in parent.segments:
            if seg.end > n:
                break  # the list is shorter: items were removed
            changed = part(seg.start, seg.end, seg)
            if changed is None:
                kept.append(seg)
            else:  # an item changed in place (or moved): this run is written again
                again = _stored_version(version)
                kept.append(Segment(seg.channel, again, seg.start, seg.end, *changed))
    start = kept[-1].end if kept else 0
    if n - start >= TAIL:
        while kept and kept[-1].end - kept[-1].start <= n - start:
            start = kept.pop().start
        made = part(start, n, None)
        assert made is not None
        channel_ = _segment_channel(len(kept), channel)
        kept.append(Segment(channel_, _stored_version(version), start, n, *made))
    stored = {id(seg) for seg in parent.segments} if parent is not None else set()
    new = [seg for seg in kept if id(seg) not in stored]
    tail_start = kept[-1].end if kept else 0
    refs = [[s.channel, s.version, s.end - s.start] for s in kept]
    if kind == _ROWS:
        # The list's bytes are the prefix, the segments' and the tail's (with the marker).
        prefix = array_header(len(out)) + encode(out[0])
        x = offsets[tail_start]
        tail = encode(out[x:])[array_header_size(len(out) - x) :]
        head = [_FORMAT, kind, refs, prefix, n - tail_start, tail]
    else:
        tail_type, tail_data = dumps(items[tail_start:])
        head = [_FORMAT, kind, refs, tail_type, n - tail_start, tail_data]
    data = msgpack.packb(head, use_bin_type=True)
    return Layout(_stored_version(version), tuple(kept), kind), data, new


class Head(NamedTuple):
    """A head blob, read.

    Attributes:
        kind: `_ROWS` or `_GENERIC`.
        refs: The segments, in order, as `(channel, version, item count)`.
        prefix: Rows: the list's first bytes (array header, class names); generic: the
            tail's type tag.
        tail_items: Items after the segments.
        tail: Rows: the packed rows of the tail and the list's closing marker; generic:
            the tail, serialized.
    """

    kind: int
    refs: list[tuple[str, str, int]]
    prefix: bytes | str
    tail_items: int
    tail: bytes


def read_head(data: bytes | memoryview) -> Head:
    """Read a head blob.

    Raises:
        ValueError: The data is not a head of a known format.
    """
    try:
        fmt, kind, refs, prefix, tail_items, tail = msgpack.unpackb(
            data, raw=False, use_list=True, strict_map_key=True
        )
    except (ValueError, TypeError, msgpack.UnpackException) as exc:
        raise ValueError(f"a list head that does not read: {exc}") from exc
    if fmt != _FORMAT:
        raise ValueError(f"a list head of format {fmt!r}; this version reads format {_FORMAT}")
    if kind not in (_ROWS, _GENERIC):
        raise ValueError(f"a list head of kind {kind!r}")
    if not isinstance(prefix, bytes if kind == _ROWS else str):
        raise ValueError("a list head without the list's prefix or the tail's type")
    if type(tail_items) is not int or not isinstance(tail, bytes) or type(refs) is not list:
        raise ValueError("a list head whose tail is not (count, bytes)")
    for ref in refs:  # the types of their fields fail where they are used
        if type(ref) is not list or len(ref) != 3:
            raise ValueError(f"a list head with a malformed segment reference {ref!r}")
    return Head(kind, refs, prefix, tail_items, tail)


Loads = Callable[[tuple[str, bytes]], Any]
Blobs = Mapping[tuple[str, str], BlobRecord]


def resolve(
    loads: Loads, head: BlobRecord, blobs: Blobs, keep: list[Segment] | None = None
) -> list[Any]:
    """The list a head blob stores, from its segments among `blobs` and its tail.

    `loads`: the serializer's `loads_typed`. `keep`: when given, receives the segments read
    (with their bytes), for `Lists.remember`.

    Raises:
        ValueError: A segment is missing, or the parts do not make the list the head names.
        What the serializer raises on damaged data.
    """
    found = read_head(head.data)
    rows = found.kind == _ROWS
    parts: list[BlobRecord] = []
    total = found.tail_items
    for channel, version, count in found.refs:
        if type(count) is not int:
            raise ValueError(f"a list head with a segment of {count!r} items")
        blob = blobs.get((channel, version))
        if blob is None:
            raise ValueError(
                f"segment {channel[1:].replace(MARK, ' of ')!r} version {version!r} of the "
                "list is not stored"
            )
        if (blob.type == ROWS_PART) != rows:
            raise ValueError(f"segment {channel!r} version {version!r} is a {blob.type!r}")
        parts.append(blob)
        total += count
    if rows:
        assert isinstance(found.prefix, bytes)
        # One copy of the whole list (a view of a Redis reply is joined without another).
        body = b"".join([found.prefix, *(blob.data for blob in parts), found.tail])
        items = loads((ROWS_TAG, body))
    else:
        assert isinstance(found.prefix, str)
        items = []
        for blob in parts:
            part = loads((blob.type, as_bytes(blob.data)))
            if type(part) is not list:
                raise ValueError(f"segment {blob.channel!r} holds {type(part).__name__}")
            items.extend(part)
        tail = loads((found.prefix, found.tail))
        if type(tail) is not list:
            raise ValueError(f"the list's tail holds {type(tail).__name__}, not a list")
        items.extend(tail)
    if type(items) is not list or len(items) != total:
        raise ValueError(
            f"the list's segments and tail hold {len(items) if type(items) is list else '?'} "
            f"items, not the {total} its head names"
        )
    if keep is not None:
        start = 0
        for blob, (_, _, count) in zip(parts, found.refs, strict=True):
            data = as_bytes(blob.data)
            keep.append(Segment(blob.channel, blob.version, start, start + count, blob.type, data))
            start += count
    return items


Key = tuple[str, str]  # (thread, namespace)


class Lists:
    """The list layouts of the checkpoint a saver last wrote or read, per (thread, namespace).

    Bounded by `max_threads` entries and `max_bytes` of segment bytes, least recently used
    first out. Thread-safe; shared by a saver's `with_allowlist` clones.
    """

    def __init__(self, max_threads: int = 1024, max_bytes: int = 64 << 20) -> None:
        self.max_threads = max_threads
        self.max_bytes = max_bytes
        self._reset()
        _EVERY.add(self)

    def _reset(self) -> None:
        """Empty, with a new lock (also in a forked child, where the lock may be held by a
        thread of the parent that the child does not have)."""
        self._lock = threading.Lock()
        self._entries: collections.OrderedDict[Key, tuple[str, dict[str, Layout], int]] = (
            collections.OrderedDict()
        )
        self._bytes = 0

    def layouts(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> dict[str, Layout] | None:
        """The layouts of checkpoint `checkpoint_id` (channel -> layout, {} when it stores no
        list in segments), or None when this saver does not know that checkpoint."""
        if checkpoint_id is None:
            return None
        with self._lock:
            entry = self._entries.get((thread_id, checkpoint_ns))
            if entry is None or entry[0] != checkpoint_id:
                return None
            return entry[1]

    def remember(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, layouts: dict[str, Layout]
    ) -> None:
        """Remember the layouts of a checkpoint just written or read."""
        size = sum(layout.size for layout in layouts.values())
        key = (thread_id, checkpoint_ns)
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= old[2]
            if size > self.max_bytes:
                return
            self._entries[key] = (checkpoint_id, layouts, size)
            self._bytes += size
            while len(self._entries) > self.max_threads or self._bytes > self.max_bytes:
                _, (_, _, dropped) = self._entries.popitem(last=False)
                self._bytes -= dropped

    def forget(self, thread_ids: Sequence[str] | None = None) -> None:
        """Drop what is known of these threads (None: of every thread)."""
        with self._lock:
            if thread_ids is None:
                self._entries.clear()
                self._bytes = 0
                return
            doomed = set(thread_ids)
            for key in [k for k in self._entries if k[0] in doomed]:
                self._bytes -= self._entries.pop(key)[2]


_EVERY: weakref.WeakSet[Lists] = weakref.WeakSet()


def _after_fork() -> None:
    for lists in list(_EVERY):
        lists._reset()


os.register_at_fork(after_in_child=_after_fork)

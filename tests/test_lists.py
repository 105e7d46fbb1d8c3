"""The segment layout of long lists (`checkpoint_base._lists`), without a backend."""

from __future__ import annotations

import dataclasses
import itertools
import re

import msgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage

from checkpoint_base._lists import (
    HEAD,
    MIN_ITEMS,
    TAIL,
    Layout,
    Lists,
    Segment,
    encode_list,
    layout_of,
    read_head,
    resolve,
)
from checkpoint_base._records import BlobRecord
from checkpoint_base.serde import MsgpackSerializer

SERDE = MsgpackSerializer()


def _grow(n: int) -> tuple[list[Layout], int, int]:
    """Grow a message list to n items one put at a time; the layouts, and the items written
    in segments and in heads' tails over all puts."""
    items: list[object] = []
    layout: Layout | None = None
    layouts = []
    in_segments = in_tails = 0
    for i in range(n):
        cls = AIMessage if i % 2 else HumanMessage
        items = [*items, cls(content=f"message {i}", id=str(i))]
        if len(items) < MIN_ITEMS:
            continue
        layout, _head, new = encode_list(SERDE.dumps_typed, items, f"v{i}", layout, "messages")
        in_segments += sum(s.end - s.start for s in new)
        in_tails += len(items) - (layout.segments[-1].end if layout.segments else 0)
        layouts.append(layout)
    return layouts, in_segments, in_tails


def test_segments_are_contiguous_and_fall_in_size() -> None:
    layouts, _, _ = _grow(300)
    for layout in layouts:
        segments = layout.segments
        assert segments and segments[0].start == 0
        for a, b in itertools.pairwise(segments):
            assert a.end == b.start
            assert a.end - a.start > b.end - b.start
        assert len(segments) <= (segments[-1].end // TAIL).bit_length()


def test_storage_grows_as_n_log_n_not_n_squared() -> None:
    n = 1000
    _, in_segments, in_tails = _grow(n)
    whole = sum(range(MIN_ITEMS, n + 1))  # what whole lists would store
    assert in_segments <= n * (n // TAIL).bit_length()
    assert in_tails <= n * TAIL
    assert in_segments + in_tails < whole / 25


def test_an_unchanged_list_reuses_every_segment() -> None:
    items = [HumanMessage(content=str(i), id=str(i)) for i in range(40)]
    first, _, new = encode_list(SERDE.dumps_typed, items, "v1", None, "c")
    assert [s.channel for s in new] == [s.channel for s in first.segments]
    again, _, new = encode_list(SERDE.dumps_typed, list(items), "v2", first, "c")
    assert new == [] and again.segments == first.segments


def _store(layout: Layout, head: bytes, segments: list[Segment]) -> tuple[BlobRecord, dict]:
    blobs = {
        (s.channel, s.version): BlobRecord("t", "", s.channel, s.version, s.type, s.data)
        for s in segments
    }
    return BlobRecord("t", "", "c", layout.head_version, HEAD, head), blobs


@pytest.mark.parametrize(
    "items",
    [
        [AIMessage(content=str(i), id=str(i)) for i in range(MIN_ITEMS + TAIL + 3)],
        [{"i": i, "t": (i,)} for i in range(MIN_ITEMS + TAIL + 3)],  # not rows
        [HumanMessage(content="x\ud800")] * (MIN_ITEMS * 2),  # a lone surrogate
    ],
    ids=["rows", "generic", "surrogate"],
)
def test_resolve_reads_what_encode_wrote(items: list[object]) -> None:
    layout, head, new = encode_list(SERDE.dumps_typed, items, "v1", None, "c")
    assert layout.kind == (0 if isinstance(items[0], dict) else 1)
    head_blob, blobs = _store(layout, head, new)
    kept: list[Segment] = []
    got = resolve(SERDE.loads_typed, head_blob, blobs, kept)
    assert got == items and [type(x) for x in got] == [type(x) for x in items]
    assert kept == list(layout.segments)
    assert layout_of(layout.head_version, kept) == layout
    # The next put of the list with one more item reuses every segment.
    more = [*items, items[0]]
    again, head2, new2 = encode_list(SERDE.dumps_typed, more, "v2", layout, "c")
    assert again.segments == layout.segments and new2 == []
    head_blob2, _ = _store(again, head2, [])
    assert resolve(SERDE.loads_typed, head_blob2, blobs) == more


def test_resolve_names_what_is_missing_or_damaged() -> None:
    items = [AIMessage(content=str(i), id=str(i)) for i in range(MIN_ITEMS + TAIL + 3)]
    layout, head, new = encode_list(SERDE.dumps_typed, items, "v1", None, "c")
    head_blob, blobs = _store(layout, head, new)
    with pytest.raises(ValueError, match="is not stored"):
        resolve(SERDE.loads_typed, head_blob, {})
    key, seg = next(iter(blobs.items()))
    short = {key: dataclasses.replace(seg, data=seg.data[: len(seg.data) // 2])}
    with pytest.raises(ValueError):
        resolve(SERDE.loads_typed, head_blob, short)
    wrong = {key: dataclasses.replace(seg, type="msgpack.cp2")}
    with pytest.raises(ValueError, match=re.escape("is a 'msgpack.cp2'")):
        resolve(SERDE.loads_typed, head_blob, wrong)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",
        msgpack.packb([2, 0, [], "msgpack", 0, b""]),  # a format to come
        msgpack.packb([1, 0, [["c", "v"]], "msgpack", 0, b""]),
        msgpack.packb([1, 0, [], "msgpack", 0, "not bytes"]),
        msgpack.packb([1, 1, [], "rows need a bytes prefix", 0, b""]),
        msgpack.packb([1, 7, [], "msgpack", 0, b""]),
        msgpack.packb({"a": 1}),
    ],
)
def test_a_damaged_head_is_a_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        read_head(data)


def test_lists_remembers_one_checkpoint_per_thread_within_bounds() -> None:
    seg = Segment("\x010\x01c", "v+1", 0, 16, "t", b"x" * 100)
    layouts = {"c": Layout("v+2", (seg,))}
    lists = Lists(max_threads=2, max_bytes=250)
    lists.remember("a", "", "1", layouts)
    assert lists.layouts("a", "", "1") == layouts
    assert lists.layouts("a", "", "0") is None  # another checkpoint of the thread
    assert lists.layouts("a", "", None) is None
    lists.remember("b", "", "1", layouts)
    lists.remember("c", "", "1", layouts)  # over both bounds: "a" goes
    assert lists.layouts("a", "", "1") is None
    assert lists.layouts("c", "", "1") == layouts
    lists.remember("big", "", "1", {"c": Layout("v+3", (seg, seg, seg))})  # over max_bytes
    assert lists.layouts("big", "", "1") is None
    lists.forget(["c"])
    assert lists.layouts("c", "", "1") is None and lists.layouts("b", "", "1") == layouts
    lists.forget()
    assert lists.layouts("b", "", "1") is None


def test_a_forked_child_starts_with_nothing_remembered() -> None:
    import os

    seg = Segment("\x010\x01c", "v+1", 0, 16, "t", b"x")
    lists = Lists()
    lists.remember("a", "", "1", {"c": Layout("v+2", (seg,))})
    lists._lock.acquire()  # held by a thread of the parent when it forks
    try:
        pid = os.fork()
        if pid == 0:  # the child
            ok = lists.layouts("a", "", "1") is None
            lists.remember("b", "", "1", {})
            os._exit(0 if ok and lists.layouts("b", "", "1") == {} else 1)
    finally:
        lists._lock.release()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert lists.layouts("a", "", "1") is not None

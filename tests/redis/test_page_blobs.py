"""A read script returns each blob once per reply, however many of its rows name it.

Checkpoints of one thread name the same blobs again and again (an unchanged channel, the
segments of a long message list), so a page of ten checkpoints used to carry each shared blob
ten times: 455 KB for `list(limit=10)` of the benchmarks' 100-step thread, 96 KB now.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_base import DamagedDataError, ListQuery
from checkpoint_redis._backend import PAGE_INLINE_BYTES, _decode_rows
from checkpoint_redis._requests import Command, Eval

SHARED_BIG = PAGE_INLINE_BYTES + 1000  # past a page's inline budget: read by HMGET


def _put_thread(saver: Any, thread_id: str, n: int) -> None:
    """`n` checkpoints; `small` and `big` never change after the first, `step` always does."""
    parent = None
    for step in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        cp["channel_values"] = {
            "small": f"small of {thread_id}",
            "big": thread_id.encode() * (SHARED_BIG // len(thread_id) + 1),
            "step": step,
        }
        cp["channel_versions"] = {"small": "1", "big": "1", "step": str(step + 1)}
        new = dict(cp["channel_versions"]) if step == 0 else {"step": str(step + 1)}
        config: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        if parent:
            config["configurable"]["checkpoint_id"] = parent
        parent = saver.put(config, cp, {"step": step}, new)["configurable"]["checkpoint_id"]


def _drive(raw: Any, plan: Any) -> tuple[list[Any], list[Any]]:
    """Run a read plan on `raw`; the replies as they came (the plan fills in the blobs of
    its rows in place) and the plan's rows."""
    request, replies = next(plan), []
    while True:
        if isinstance(request, Eval):
            reply = raw.eval(request.script.text, len(request.keys), *request.keys, *request.args)
        else:
            assert isinstance(request, Command)
            reply = raw.execute_command(*request.args)
        replies.append(copy.deepcopy(reply))
        try:
            request = plan.send(reply)
        except StopIteration as stop:
            return replies, stop.value


def test_a_page_carries_each_shared_blob_once(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    _put_thread(saver, "t", 6)
    query = ListQuery(thread_id="t", checkpoint_ns="", limit=5)
    replies, rows = _drive(raw, saver.backend.list_page(query))
    script_rows = replies[0]
    assert len(script_rows) == 5
    values = Counter()
    repeats = 0
    for row in script_rows:
        for value in row[1]:
            if isinstance(value, list) and len(value) == 3:
                repeats += 1
            else:
                values[bytes(value[0]) if isinstance(value, list) else bytes(value)] += 1
    # `small` and `big` once each, and five versions of `step`; the rest refer back.
    assert repeats == 2 * 4
    assert sum(values.values()) == 2 + 5 and max(values.values()) == 1
    # The deferred blob is read once: the HMGET names `big` alone.
    assert len(replies) == 2 and len(replies[1]) == 1
    assert [r.checkpoint.checkpoint_id for r in rows] == [
        t.config["configurable"]["checkpoint_id"]
        for t in saver.list({"configurable": {"thread_id": "t"}}, limit=5)
    ]
    listed = list(saver.list({"configurable": {"thread_id": "t"}}, limit=5))
    assert [t.checkpoint["channel_values"]["step"] for t in listed] == [5, 4, 3, 2, 1]
    for tup in listed:
        assert tup.checkpoint["channel_values"]["small"] == "small of t"
        assert tup.checkpoint["channel_values"]["big"] == b"t" * (SHARED_BIG + 1)


def test_threads_of_one_page_never_share_a_blob(open_saver: Any) -> None:
    """Across threads (`list` without a thread) the same channel and version name other
    bytes in each thread: a row refers back only to its own thread's blobs."""
    saver = open_saver()
    for name in ("a", "bb", "ccc"):
        _put_thread(saver, name, 3)
    listed = list(saver.list(None))
    assert len(listed) == 9
    for tup in listed:
        name = tup.config["configurable"]["thread_id"]
        values = tup.checkpoint["channel_values"]
        assert values["small"] == f"small of {name}"
        assert values["big"] == name.encode() * (SHARED_BIG // len(name) + 1)


async def test_the_async_saver_reads_the_same_page(url: str) -> None:
    from checkpoint_redis import AsyncRedisSaver, RedisSaver
    from checkpoint_redis._testing import drop_prefix, fresh_prefix

    prefix = fresh_prefix()
    try:
        with RedisSaver.from_url(url, key_prefix=prefix) as saver:
            saver.setup()
            _put_thread(saver, "t", 4)
            want = [t.checkpoint for t in saver.list({"configurable": {"thread_id": "t"}})]
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as asaver:
            config = {"configurable": {"thread_id": "t"}}
            got = [t.checkpoint async for t in asaver.alist(config)]
        assert got == want and len(got) == 4
    finally:
        drop_prefix(url, prefix)


def _reply_row(blobs: list[Any]) -> list[Any]:
    from checkpoint_base import CheckpointRecord
    from checkpoint_redis._codec import pack_checkpoint

    versions = {f"c{j}": "1" for j in range(len(blobs))}
    record = CheckpointRecord("t", "", "1", None, "msgpack", b"c", b"{}", versions, None, 1.0)
    return [pack_checkpoint(record, []), blobs, []]


def test_a_reference_is_copied_from_the_place_it_names() -> None:
    blob = b"\x07msgpackDATA"
    rows = _decode_rows([_reply_row([blob, b"\x07msgpackX"]), _reply_row([[b"f", 1, 1]])], None)
    assert rows[1].blobs[0].data == b"DATA"
    missing = _decode_rows([_reply_row([None]), _reply_row([[b"f", 1, 1]])], None)
    assert missing[0].blobs == missing[1].blobs == ()  # not stored, wherever it is named


@pytest.mark.parametrize(
    "blobs",
    [
        [[b"f"]],  # a blob left for the HMGET reached the decoder
        [[b"f", 9, 1]],  # names a row the reply does not have
        [[b"f", 0, 1]],  # names no row
        [[b"f", 1, 5]],  # names a place the row does not have
        [[b"f", 3, 1]],  # names a later reference, still unresolved
    ],
)
def test_a_broken_reference_is_damaged_data(blobs: list[Any]) -> None:
    first, last = _reply_row([b"\x07msgpackDATA"]), _reply_row([[b"g", 1, 1]])
    with pytest.raises(DamagedDataError):
        _decode_rows([first, _reply_row(blobs), last], None)

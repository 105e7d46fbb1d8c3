"""put_writes: ordering, special writes upsert, ordinary writes never overwrite, task_path."""

from __future__ import annotations

from langgraph.checkpoint.base import WRITES_IDX_MAP
from langgraph.checkpoint.serde.types import ERROR, INTERRUPT, RESUME

from .builders import checkpoint, config, new_thread
from .harness import Harness


async def _root(h: Harness) -> dict:
    tid = new_thread()
    return await h.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})


async def test_writes_come_back_in_writes_sort_key_order(h: Harness) -> None:
    cfg = await _root(h)
    await h.put_writes(cfg, [("c", 3), ("d", 4)], "task-b", "~__pregel_pull, b")
    await h.put_writes(cfg, [("a", 1), ("b", 2)], "task-a", "~__pregel_pull, z")
    await h.put_writes(cfg, [("input", 0)], "task-0", "")
    got = await h.get_tuple(cfg)
    assert got is not None
    assert got.pending_writes == [
        ("task-0", "input", 0),
        ("task-b", "c", 3),
        ("task-b", "d", 4),
        ("task-a", "a", 1),
        ("task-a", "b", 2),
    ]


async def test_ordinary_writes_never_overwrite(h: Harness) -> None:
    cfg = await _root(h)
    await h.put_writes(cfg, [("x", "first"), ("y", "first")], "task")
    await h.put_writes(cfg, [("x", "second")], "task")
    got = await h.get_tuple(cfg)
    assert got is not None
    assert got.pending_writes == [("task", "x", "first"), ("task", "y", "first")]


async def test_special_writes_replace(h: Harness) -> None:
    cfg = await _root(h)
    await h.put_writes(cfg, [(ERROR, "boom-1")], "task")
    await h.put_writes(cfg, [(ERROR, "boom-2")], "task")
    await h.put_writes(cfg, [(INTERRUPT, "ask"), (RESUME, "answer")], "task")
    got = await h.get_tuple(cfg)
    assert got is not None
    writes = {(t, c): v for t, c, v in got.pending_writes or []}
    assert writes == {
        ("task", ERROR): "boom-2",
        ("task", INTERRUPT): "ask",
        ("task", RESUME): "answer",
    }
    assert WRITES_IDX_MAP[ERROR] < 0


async def test_writes_belong_to_one_checkpoint(h: Harness) -> None:
    tid = new_thread()
    first = await h.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    second = await h.put(first, checkpoint({"a": 2}, {"a": 2}), {}, {"a": 2})
    await h.put_writes(first, [("w", 1)], "t1")
    await h.put_writes(second, [("w", 2)], "t2")
    got1, got2 = await h.get_tuple(first), await h.get_tuple(second)
    assert got1 is not None and got1.pending_writes == [("t1", "w", 1)]
    assert got2 is not None and got2.pending_writes == [("t2", "w", 2)]
    listed = await h.list(config(tid))
    assert [t.pending_writes for t in listed] == [[("t2", "w", 2)], [("t1", "w", 1)]]


async def test_values_round_trip_in_writes(h: Harness) -> None:
    cfg = await _root(h)
    value = {"nested": [1, 2.5, None, True, "s\u0000"], "bytes": b"\x00\x01"}
    await h.put_writes(cfg, [("v", value)], "task")
    got = await h.get_tuple(cfg)
    assert got is not None and got.pending_writes == [("task", "v", value)]

"""get_delta_channel_history: same answer as LangGraph's reference walk over get_tuple."""

from __future__ import annotations

from langgraph.checkpoint.base import BaseCheckpointSaver

from .builders import checkpoint, config, new_thread
from .harness import Harness


async def _reference(h: Harness, cfg: dict, channels: list[str]) -> object:
    # LangGraph's default implementation walks get_tuple + parent_config: our oracle.
    if h.is_async:
        return await BaseCheckpointSaver.aget_delta_channel_history(
            h.saver, config=cfg, channels=channels
        )
    return BaseCheckpointSaver.get_delta_channel_history(h.saver, config=cfg, channels=channels)


async def test_matches_reference_walk(h: Harness) -> None:
    tid = new_thread()
    parent = await h.put(
        config(tid),
        checkpoint({"a": "seed-a", "b": "seed-b"}, {"a": 1, "b": 1}),
        {},
        {"a": 1, "b": 1},
    )
    await h.put_writes(parent, [("a", "a1"), ("b", "b1"), ("c", "c1")], "t1", "p1")
    await h.put_writes(parent, [("a", "a0")], "t0", "p0")
    heads = [parent]
    for step in range(2, 40):
        # a is re-snapshotted every 10 steps; b never; c has no stored value ever.
        values = {"a": f"snap-{step}"} if step % 10 == 0 else {}
        versions = {"a": step, "b": 1, "c": step}
        parent = await h.put(
            parent, checkpoint(values, versions), {"step": step}, {"a": step, "c": step}
        )
        await h.put_writes(
            parent,
            [("a", f"a{step}"), ("b", f"b{step}"), ("c", f"c{step}")],
            f"t{step}",
            f"p{step}",
        )
        heads.append(parent)
    for head in (heads[-1], heads[25], heads[10], heads[1], heads[0]):
        got = await h.delta_history(head, ["a", "b", "c", "nope"])
        assert got == await _reference(h, head, ["a", "b", "c", "nope"])
    latest = await h.delta_history(config(tid), ["a", "b", "c"])
    assert latest["a"]["seed"] == "snap-30"
    assert [w[2] for w in latest["a"]["writes"]] == [f"a{s}" for s in range(30, 39)]
    # b never changes version, so its stored value is found at the parent already.
    assert latest["b"]["seed"] == "seed-b"
    assert [w[2] for w in latest["b"]["writes"]] == ["b38"]
    assert [w[2] for w in latest["c"]["writes"]] == ["c1", *(f"c{s}" for s in range(2, 39))]
    assert "seed" not in latest["c"]
    assert await h.delta_history(config(tid), []) == {}


async def test_missing_checkpoint_gives_empty_histories(h: Harness) -> None:
    got = await h.delta_history(config(new_thread()), ["a"])
    assert got == {"a": {"writes": []}}

"""delete_thread, delete_for_runs, copy_thread, prune."""

from __future__ import annotations

import pytest

from checkpoint_base import ConfigError

from .builders import chain, checkpoint, cid, config, new_thread
from .harness import Harness


async def test_delete_thread_removes_only_that_thread(h: Harness) -> None:
    t1, t2 = new_thread(), new_thread()
    c1 = await chain(h, t1, 3)
    await chain(h, t1, 2, "child:x")
    await chain(h, t2, 2)
    await h.put_writes(c1[-1], [("w", 1)], "task")
    await h.delete_thread(t1)
    assert await h.list({"configurable": {"thread_id": t1}}) == []
    assert await h.get_tuple(config(t1)) is None
    assert await h.get_tuple(config(t1, "child:x")) is None
    assert len(await h.list(config(t2))) == 2
    # The thread can be used again, with nothing left over.
    again = await h.put(config(t1), checkpoint({"a": 1}), {}, {"a": 1})
    got = await h.get_tuple(again)
    assert got is not None and got.pending_writes == []


async def test_delete_thread_with_prefix_sharing_ids(h: Harness) -> None:
    base = new_thread()
    await chain(h, base, 2)
    await chain(h, base + "-2", 2)
    await chain(h, base[:-1], 2)
    await h.delete_thread(base)
    assert await h.list(config(base)) == []
    assert len(await h.list(config(base + "-2"))) == 2
    assert len(await h.list(config(base[:-1]))) == 2


async def test_delete_for_runs(h: Harness) -> None:
    tid, other = new_thread(), new_thread()
    run_a, run_b = new_thread(), new_thread()
    a = await chain(h, tid, 2, run_id=run_a)
    parent = cid(a[-1])
    b = await h.put(
        config(tid, "", parent), checkpoint({"s": 9}), {"run_id": run_b, "step": 9}, {"s": 1}
    )
    await h.put_writes(a[0], [("w", 1)], "task")
    await chain(h, other, 1, run_id=run_a)
    await h.delete_for_runs([run_a])
    remaining = await h.list(config(tid))
    assert [t.config for t in remaining] == [b]
    got = await h.get_tuple(b)
    assert got is not None and got.checkpoint["channel_values"] == {"s": 9}
    assert await h.list(config(other)) == []
    await h.delete_for_runs([])


async def test_copy_thread_copies_history_writes_and_namespaces(h: Harness) -> None:
    src, dst = new_thread(), new_thread()
    root = await chain(h, src, 4)
    child = await chain(h, src, 2, "child:1")
    await h.put_writes(root[1], [("w", "x")], "task", "path")
    await h.copy_thread(src, dst)
    src_list = await h.list({"configurable": {"thread_id": src}})
    dst_list = await h.list({"configurable": {"thread_id": dst}})
    assert len(dst_list) == 6
    strip = lambda t: (  # noqa: E731
        t.config["configurable"]["checkpoint_ns"],
        cid(t.config),
        t.parent_config and cid(t.parent_config),
        t.checkpoint["channel_values"],
        t.metadata,
        t.pending_writes,
    )
    assert [strip(t) for t in dst_list] == [strip(t) for t in src_list]
    assert all(t.config["configurable"]["thread_id"] == dst for t in dst_list)
    latest_child = await h.get_tuple(config(dst, "child:1"))
    assert latest_child is not None and cid(latest_child.config) == cid(child[-1])
    # Source untouched, and the copies are independent.
    await h.delete_thread(src)
    assert len(await h.list({"configurable": {"thread_id": dst}})) == 6


async def test_copy_missing_thread_is_a_no_op(h: Harness) -> None:
    dst = new_thread()
    await h.copy_thread(new_thread(), dst)
    assert await h.list(config(dst)) == []


async def test_prune_keep_latest_per_namespace(h: Harness) -> None:
    tid, other = new_thread(), new_thread()
    root = await chain(h, tid, 5)
    child = await chain(h, tid, 3, "child:1")
    await h.put_writes(root[-1], [("w", 1)], "task")
    await h.put_writes(root[0], [("w", 0)], "task")
    await chain(h, other, 3)
    await h.prune([tid])
    listed = await h.list({"configurable": {"thread_id": tid}})
    assert sorted(cid(t.config) for t in listed) == sorted([cid(root[-1]), cid(child[-1])])
    latest = await h.get_tuple(config(tid))
    assert latest is not None
    assert latest.checkpoint["channel_values"] == {"step": 4}
    assert latest.pending_writes == [("task", "w", 1)]
    assert len(await h.list(config(other))) == 3


async def test_prune_delete_and_bad_strategy(h: Harness) -> None:
    tid = new_thread()
    await chain(h, tid, 3)
    with pytest.raises(ConfigError, match="strategy"):
        await h.prune([tid], strategy="everything")
    await h.prune([tid], strategy="delete")
    assert await h.list(config(tid)) == []
    await h.prune([], strategy="keep_latest")
    await h.prune([new_thread()], strategy="keep_latest")


async def test_prune_keeps_chain_back_to_delta_snapshot(h: Harness) -> None:
    """The kept head's delta channel must still rebuild: ancestors to the snapshot stay."""
    tid = new_thread()
    snap = await h.put(
        config(tid), checkpoint({"msgs": ["m0"]}, {"msgs": 1}), {"step": 0}, {"msgs": 1}
    )
    await h.put_writes(snap, [("msgs", "m1")], "t1")
    parent = snap
    configs = [snap]
    for step in range(1, 4):
        # Non-snapshot steps: the delta channel has no stored value at its new version.
        cp = checkpoint({}, {"msgs": step + 1})
        meta = {"step": step, "counters_since_delta_snapshot": {"msgs": [step, step]}}
        parent = await h.put(parent, cp, meta, {"msgs": step + 1})
        await h.put_writes(parent, [("msgs", f"m{step + 1}")], f"t{step + 1}")
        configs.append(parent)
    before = await h.delta_history(configs[-1], ["msgs"])
    await h.prune([tid])
    kept = await h.list(config(tid))
    assert [cid(t.config) for t in kept] == [cid(c) for c in configs[::-1]]
    after = await h.delta_history(configs[-1], ["msgs"])
    assert after == before
    assert before["msgs"]["seed"] == ["m0"]
    assert [w[2] for w in before["msgs"]["writes"]] == ["m1", "m2", "m3"]

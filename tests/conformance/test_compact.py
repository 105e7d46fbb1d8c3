"""compact(): the space deleted checkpoints left goes back to the disk; nothing stored changes."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from langchain_core.runnables import RunnableConfig

from checkpoint_base import Backend, Compaction

from .builders import checkpoint, cid, config, new_thread
from .harness import Harness

_BLOB = 16_000  # random bytes: no database compresses them away


async def _fill(h: Harness, thread_id: str, steps: int) -> list[RunnableConfig]:
    configs: list[RunnableConfig] = []
    parent: str | None = None
    for step in range(steps):
        values = {"blob": os.urandom(_BLOB), "step": step}
        versions = {"blob": step + 1, "step": step + 1}
        stored = await h.put(
            config(thread_id, "", parent),
            checkpoint(values, versions),
            {"source": "loop", "step": step},
            versions,
        )
        configs.append(stored)
        parent = cid(stored)
    return configs


async def _everything(h: Harness, thread_id: str) -> list[Any]:
    return [
        (cid(t.config), t.parent_config and cid(t.parent_config), t.checkpoint["channel_values"],
         t.metadata, t.pending_writes)
        for t in await h.list(config(thread_id))
    ]  # fmt: skip


def _compacts(h: Harness) -> bool:
    return type(h.saver.backend).compact is not Backend.compact


async def test_compact_gives_back_deleted_space_and_keeps_the_rest(h: Harness) -> None:
    kept, gone = new_thread(), [new_thread() for _ in range(6)]
    stored = await _fill(h, kept, 4)
    await h.put_writes(stored[-1], [("w", b"pending"), ("v", 2)], "task", "path")
    for tid in gone:
        await _fill(h, tid, 4)
    before = await _everything(h, kept)
    for tid in gone:
        await h.delete_thread(tid)

    done = await h.compact(full=True)

    assert isinstance(done, Compaction) and done.seconds >= 0
    assert await _everything(h, kept) == before
    for tid in gone:
        assert await h.list(config(tid)) == []
    if not _compacts(h):  # memory, Redis: freed as deleted; the space is not measured
        assert done.before == done.after
        return
    assert done.before.size is not None and done.after.size is not None
    deleted = len(gone) * 4 * _BLOB
    assert done.after.size <= done.before.size - deleted // 2, done
    if done.before.free is not None:  # SQLite: the deleted rows' pages, all given back
        assert done.before.free >= deleted // 2, done
        assert done.after.size <= done.before.size - done.before.free, done
        assert done.after.free == 0, done
    # Writing goes on as before, and a second compaction finds nothing more to give.
    versions = {"blob": 4, "step": 10}  # the blob as the parent stored it
    more = await h.put(config(kept, "", cid(stored[-1])), checkpoint({"step": 9}, versions), {},
                       {"step": 10})  # fmt: skip
    got = await h.get_tuple(more)
    assert got is not None
    assert got.checkpoint["channel_values"] == {"blob": before[0][2]["blob"], "step": 9}
    again = await h.compact(full=True)
    assert again.after.size is not None and again.after.size <= done.after.size + 64 * 1024


async def test_compact_while_a_thread_is_written_loses_nothing(h: Harness) -> None:
    """Writers wait while the storage is rewritten; no write fails, none is lost."""
    tid, old = new_thread(), new_thread()
    await _fill(h, old, 6)
    await h.delete_thread(old)
    written: list[RunnableConfig] = []

    async def put(cfg: RunnableConfig, step: int) -> RunnableConfig:
        values = {"blob": os.urandom(2_000), "step": step}
        versions = {"blob": step + 1, "step": step + 1}
        args = (cfg, checkpoint(values, versions), {"step": step}, versions)
        if h.is_async:
            return await h.saver.aput(*args)
        return await asyncio.to_thread(h.saver.put, *args)

    async def writer() -> None:
        parent: str | None = None
        for step in range(30):
            stored = await put(config(tid, "", parent), step)
            written.append(stored)
            parent = cid(stored)

    async def compactor() -> list[Compaction]:
        done = []
        for full in (False, True, False):
            if h.is_async:
                done.append(await h.saver.acompact(full=full))
            else:
                done.append(await asyncio.to_thread(h.saver.compact, full=full))
        return done

    _, compactions = await asyncio.gather(writer(), compactor())
    assert len(compactions) == 3
    listed = await h.list(config(tid))
    assert [cid(t.config) for t in listed] == [cid(c) for c in reversed(written)]
    assert [t.checkpoint["channel_values"]["step"] for t in listed] == list(range(29, -1, -1))


async def _size(h: Harness, thread_id: str) -> int | None:
    if h.is_async:
        found = await h.saver.alist_threads(after=thread_id[:-1], limit=50)
    else:
        found = h.saver.list_threads(after=thread_id[:-1], limit=50)
    sizes = [t.size_bytes for t in found if t.thread_id == thread_id]
    assert len(sizes) == 1, found
    return sizes[0]


async def test_a_threads_size_counts_its_values_once_and_its_writes(h: Harness) -> None:
    """What `checkpointers threads` shows to find the threads that fill the storage: the
    channel values count (each version once), and so do pending writes."""
    tid = new_thread()
    versions = {"big": 1, "n": 1}
    first = await h.put(
        config(tid), checkpoint({"big": os.urandom(100_000), "n": 0}, versions), {}, versions
    )
    one = await _size(h, tid)
    assert one is not None and one >= 100_000
    versions = {"big": 1, "n": 2}  # the big value unchanged: not stored again
    second = await h.put(config(tid, "", cid(first)), checkpoint({"n": 1}, versions), {}, {"n": 2})
    two = await _size(h, tid)
    assert two is not None and one < two < one + 20_000, (one, two)
    await h.put_writes(second, [("w", os.urandom(60_000))], "task")
    three = await _size(h, tid)
    assert three is not None and three >= two + 57_000, (two, three)

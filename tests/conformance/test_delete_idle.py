"""`delete_idle_threads`: the threads no one wrote to for a while go whole; the others stay."""

from __future__ import annotations

import dataclasses
import datetime
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import pytest

from checkpoint_base import ConfigError, _convert, _operations

from .builders import chain, checkpoint, config, new_thread
from .harness import Harness

HOUR = 3600.0


@contextmanager
def written_ago(monkeypatch: pytest.MonkeyPatch, seconds: float) -> Iterator[None]:
    """Checkpoints put meanwhile carry a creation time `seconds` in the past."""
    with monkeypatch.context() as m:
        m.setattr(_convert, "time", SimpleNamespace(time=lambda: time.time() - seconds))
        yield


async def _thread_ids(h: Harness) -> set[str]:
    if h.is_async:
        found = await h.saver.alist_threads(limit=1000)
    else:
        found = h.saver.list_threads(limit=1000)
    return {t.thread_id for t in found}


async def test_idle_threads_go_whole_and_the_others_stay(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle, idle_writes, resumed, child_recent, fresh = (new_thread() for _ in range(5))
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 3)
        await chain(h, idle, 2, "child:x")
        last = await chain(h, idle_writes, 2)
        await h.put_writes(last[-1], [("w", 1)], "task")
        await chain(h, resumed, 2)
        await chain(h, child_recent, 2)
    # Written to since: the newest checkpoint of any namespace counts.
    await h.put(config(resumed), checkpoint({"a": 9}), {}, {"a": 9})
    await chain(h, child_recent, 1, "child:y")
    await chain(h, fresh, 2)
    everything = {idle, idle_writes, resumed, child_recent, fresh}
    assert await _thread_ids(h) == everything

    would = await h.delete_idle_threads(datetime.timedelta(hours=1), dry_run=True)
    assert would == sorted([idle, idle_writes])
    assert await _thread_ids(h) == everything  # a dry run deletes nothing

    gone = await h.delete_idle_threads(HOUR)  # seconds work as well
    assert gone == sorted([idle, idle_writes])
    assert await _thread_ids(h) == {resumed, child_recent, fresh}
    for thread_id in (idle, idle_writes):
        assert await h.list(config(thread_id)) == []
        assert await h.get_tuple(config(thread_id, "child:x")) is None
    assert len(await h.list(config(resumed))) == 3
    assert len(await h.list(config(child_recent, "child:y"))) == 1

    # Nothing is idle for three hours; a thread used again after the sweep starts afresh.
    assert await h.delete_idle_threads(datetime.timedelta(hours=3)) == []
    again = await h.put(config(idle), checkpoint({"a": 1}), {}, {"a": 1})
    got = await h.get_tuple(again)
    assert got is not None and got.pending_writes == []
    assert len(await h.list(config(idle))) == 1


async def test_the_listing_is_read_a_page_at_a_time_while_threads_go(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_operations, "_THREAD_PAGE", 2)
    idle = sorted(f"{new_thread()}-{i}" for i in range(5))
    fresh = [new_thread() for _ in range(2)]
    with written_ago(monkeypatch, 2 * HOUR):
        for thread_id in idle:
            await chain(h, thread_id, 1)
    for thread_id in fresh:
        await chain(h, thread_id, 1)
    assert await h.delete_idle_threads(HOUR) == idle
    assert await _thread_ids(h) == set(fresh)


@pytest.mark.parametrize("bad", [0, -5, 0.0, datetime.timedelta(0), "30d", True, None])
async def test_idle_must_be_a_positive_duration(h: Harness, bad: Any) -> None:
    await chain(h, new_thread(), 1)
    with pytest.raises(ConfigError, match="idle must be a positive duration") as caught:
        await h.delete_idle_threads(bad)
    assert repr(bad) in str(caught.value)
    assert len(await _thread_ids(h)) == 1


async def test_a_sweep_lists_threads_as_list_threads_does_but_for_sizes(h: Harness) -> None:
    """`Backend.list_thread_ages`, the sweep's listing, may leave sizes out; nothing else."""
    many, written, orphan = sorted(new_thread() for _ in range(3))
    await chain(h, many, 3)
    await chain(h, many, 2, "child:x")
    last = await chain(h, written, 2)
    await h.put_writes(last[-1], [("w", 1)], "task")
    # Writes that name a checkpoint their thread does not hold: a thread of writes only.
    stray = last[-1]["configurable"]["checkpoint_id"]
    await h.put_writes(config(orphan, "", stray), [("w", 2)], "task")

    async def both(after: str | None, limit: int) -> tuple[list[Any], list[Any]]:
        backend = h.saver.backend
        plans = (backend.list_threads(after, limit), backend.list_thread_ages(after, limit))
        if h.is_async:
            return [await h.saver._arun(p) for p in plans]  # type: ignore[return-value]
        return [h.saver._run(p) for p in plans]  # type: ignore[return-value]

    for after, limit in ((None, 1000), (many, 1000), (None, 2), (written, 1)):
        full, ages = await both(after, limit)
        assert [dataclasses.replace(t, size_bytes=None) for t in ages] == [
            dataclasses.replace(t, size_bytes=None) for t in full
        ]
        # Left out, or counted (Redis's sizes, its memory usage, vary from call to call).
        assert all(t.size_bytes is None or t.size_bytes > 0 for t in ages)
    full, _ = await both(None, 1000)
    assert [t.thread_id for t in full] == [many, written, orphan]
    assert [t.checkpoint_count for t in full] == [5, 2, 0]

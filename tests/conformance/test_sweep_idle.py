"""`sweep_idle_threads`: idle threads deleted in the background until the sweeper stops."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from checkpoint_base import ConfigError, StorageError, Sweeper
from checkpoint_base._records import uuid6_epoch

from .builders import chain, config, new_thread
from .harness import Harness
from .test_delete_idle import HOUR, _thread_ids, written_ago

EVERY = 0.05


async def _until(done: Callable[[], bool], what: str, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def _stop(h: Harness, sweeper: Sweeper) -> None:
    if h.is_async:
        await sweeper.astop()
    else:
        sweeper.stop()
    assert sweeper.stopped


def _sweeper_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "checkpointers-ttl"]


async def test_idle_threads_go_in_the_background_and_used_ones_stay(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle, fresh, later = new_thread(), new_thread(), new_thread()
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 3)
    await chain(h, fresh, 2)
    sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY)
    assert (sweeper.idle, sweeper.every) == (HOUR, EVERY)
    try:
        await _until(lambda: sweeper.deleted >= 1, "the idle thread to go")
        ids = await _thread_ids(h)
        assert idle not in ids and fresh in ids
        assert await h.list(config(idle)) == []
        assert len(await h.list(config(fresh))) == 2
        assert sweeper.last_error is None and sweeper.last_sweep is not None

        # A thread that turns idle later goes at a later sweep; the used one stays.
        with written_ago(monkeypatch, 2 * HOUR):
            await chain(h, later, 1)
        await _until(lambda: sweeper.deleted >= 2, "the later idle thread to go")
        ids = await _thread_ids(h)
        assert later not in ids and fresh in ids
        swept = sweeper.sweeps
        await _until(lambda: sweeper.sweeps >= swept + 2, "two more sweeps")
        assert sweeper.deleted == 2  # nothing else was idle
    finally:
        await _stop(h, sweeper)
    if h.is_async and h.saver._executor is None:
        assert sweeper._task is not None and sweeper._task.done()
    else:
        assert sweeper._thread is not None and not sweeper._thread.is_alive()
    done = sweeper.sweeps
    await asyncio.sleep(5 * EVERY)
    assert sweeper.sweeps == done  # stopped means stopped
    assert "stopped" in repr(sweeper)


async def test_a_failed_sweep_is_logged_and_tried_again(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    idle = new_thread()
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 1)
    name = "adelete_idle_threads" if h.saver._executor is None else "delete_idle_threads"
    real = getattr(h.saver, name)
    failures = [StorageError("the database went away")]

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if failures:
            raise failures.pop()
        return real(*args, **kwargs)

    monkeypatch.setattr(h.saver, name, flaky)
    with caplog.at_level(logging.WARNING, logger="checkpoint_base"):
        sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY)
        try:
            await _until(lambda: sweeper.deleted == 1, "the sweep after the failed one")
        finally:
            await _stop(h, sweeper)
    assert sweeper.sweeps >= 2 and sweeper.last_error is None
    failed = [r for r in caplog.records if "idle for over 1h failed" in r.getMessage()]
    assert len(failed) == 1, caplog.text
    assert "trying again in 0.05s: the database went away" in failed[0].getMessage()
    assert idle not in await _thread_ids(h)


async def test_a_new_sweeper_replaces_the_old_one_and_bad_durations_are_refused(
    h: Harness,
) -> None:
    first = h.saver.sweep_idle_threads(HOUR, every=HOUR)
    second = h.saver.sweep_idle_threads(2 * HOUR)
    try:
        await _until(lambda: first.stopped, "the first sweeper to stop")
        assert not second.stopped
        assert second.every == 720.0  # a tenth of the time to live by default
        assert h.saver._sweepers == [second]
        for idle, every, needle in (
            (0, None, "idle .the time to live. must be a positive duration"),
            (-1.0, None, "idle .the time to live. must be a positive duration"),
            (True, None, "idle .the time to live. must be a positive duration"),
            ("30d", None, "idle .the time to live. must be a positive duration"),
            (float("inf"), None, "must be a finite duration"),
            (HOUR, 0, "every must be a positive duration"),
        ):
            with pytest.raises(ConfigError, match=needle):
                h.saver.sweep_idle_threads(idle, every=every)  # type: ignore[arg-type]
        # A refused call leaves the running sweeper as it was.
        assert h.saver._sweepers == [second] and not second.stopped
    finally:
        await _stop(h, second)


async def test_closing_the_saver_stops_its_sweeper(h: Harness) -> None:
    sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY)
    await _until(lambda: sweeper.sweeps >= 1, "a first sweep")
    if h.is_async:
        await h.saver.aclose()
    else:
        h.saver.close()
    assert sweeper.stopped and h.saver.closed
    assert h.saver._sweepers == []
    assert not any(t.is_alive() for t in _sweeper_threads() if t is sweeper._thread)
    with pytest.raises(StorageError, match="is closed: it cannot sweep"):
        h.saver.sweep_idle_threads(HOUR)


async def test_a_lease_is_held_by_one_holder_at_a_time(h: Harness) -> None:
    name, other = f"test {uuid.uuid4().hex}", f"test {uuid.uuid4().hex}"
    assert await h.claim(name, "a", 30) is True
    assert await h.claim(name, "b", 30) is False  # a's lease runs
    assert await h.claim(name, "a", 30) is True  # a holder takes its own again
    assert await h.claim(other, "b", 30) is True  # another lease is free
    assert await h.claim(name, "a", 0.2) is True  # a's lease now ends sooner
    assert await h.claim(name, "b", 30) is False
    await asyncio.sleep(0.4)
    assert await h.claim(name, "b", 30) is True  # ended: b takes it
    assert await h.claim(name, "a", 30) is False
    assert await h.claim(other, "a", 30) is False  # b's other lease still runs


async def test_a_sweep_waits_for_the_lease_another_saver_holds(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Processes sharing a storage sweep it in turn: while another saver's sweep lease runs,
    a sweeper counts its turns as left to it and sweeps once the lease has ended."""
    idle = new_thread()
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 1)
    name = "adelete_idle_threads" if h.saver._executor is None else "delete_idle_threads"
    real = getattr(h.saver, name)
    started: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        started.append(time.time())
        return real(*args, **kwargs)

    monkeypatch.setattr(h.saver, name, timed)
    lease = Sweeper(HOUR, EVERY).lease
    ends = time.time() + 1.0  # at the earliest: the claim's clock starts after this
    assert await h.claim(lease, "a saver of another process", 1.0)
    sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY)
    try:
        await _until(lambda: sweeper.deleted == 1, "a sweep once the lease ended")
    finally:
        await _stop(h, sweeper)
    assert sweeper.skipped >= 1 and started
    assert min(started) >= ends - 0.05  # none before the other holder's lease ended
    assert idle not in await _thread_ids(h)
    assert f"{sweeper.skipped} left to another saver" in repr(sweeper)


async def test_a_lease_that_cannot_be_taken_does_not_stop_the_sweeps(
    h: Harness, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The lease only spares work: when it cannot be taken (a role without rights on its
    table, a schema an older version set up), the saver sweeps without it, and says so once."""
    idle = new_thread()
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 1)

    def refused(*args: Any) -> Any:
        raise StorageError("permission denied for table leases")

    name = "_aclaim_lease" if h.saver._executor is None else "_claim_lease"
    monkeypatch.setattr(h.saver, name, refused)
    with caplog.at_level(logging.WARNING, logger="checkpoint_base"):
        sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY)
        try:
            await _until(lambda: sweeper.sweeps >= 3, "sweeps without the lease")
        finally:
            await _stop(h, sweeper)
    assert sweeper.deleted == 1 and sweeper.skipped == 0 and sweeper.last_error is None
    assert idle not in await _thread_ids(h)
    said = [r.getMessage() for r in caplog.records if "without taking turns" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert "permission denied for table leases" in said[0]


def _uuid6_at(seconds: float) -> str:
    """A UUID v6 (LangGraph's checkpoint id) whose time is `seconds` since the epoch."""
    ticks = int(seconds * 10_000_000) + 0x01B21DD213814000  # 100 ns since 1582-10-15
    value = (ticks >> 12) << 80 | 0x6 << 76 | (ticks & 0xFFF) << 64 | 0b10 << 62 | 12345
    return str(uuid.UUID(int=value))


async def _prune_idle(h: Harness, idle: float, **kwargs: Any) -> list[str]:
    if h.is_async:
        return await h.saver.aprune_idle_threads(idle, **kwargs)
    return h.saver.prune_idle_threads(idle, **kwargs)


async def test_keep_latest_prunes_idle_threads_to_their_latest_state(
    h: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    idle, single, orphan, fresh = sorted(new_thread() for _ in range(4))
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, idle, 3)
        await chain(h, idle, 2, "child:x")
        await chain(h, single, 1)
    # Writes whose checkpoint is not stored, named by an id two hours old: no state to keep.
    stale_id = _uuid6_at(time.time() - 2 * HOUR)
    assert uuid6_epoch(stale_id) == pytest.approx(time.time() - 2 * HOUR, abs=5)
    await h.put_writes(config(orphan, "", stale_id), [("w", 1)], "task")
    await chain(h, fresh, 3)
    latest = {ns: await h.get_tuple(config(idle, ns)) for ns in ("", "child:x")}

    assert await _prune_idle(h, HOUR, dry_run=True) == [idle, orphan]
    assert len(await h.list(config(idle))) == 3  # a dry run changes nothing
    assert orphan in await _thread_ids(h)

    assert await _prune_idle(h, HOUR) == [idle, orphan]
    for ns, before in latest.items():
        kept = await h.list(config(idle, ns))
        assert [t.config for t in kept] == [before.config]  # the latest, and only it
        after = await h.get_tuple(config(idle, ns))
        assert after is not None and before is not None
        assert after.checkpoint["channel_values"] == before.checkpoint["channel_values"]
        assert after.metadata == before.metadata
    assert orphan not in await _thread_ids(h)  # writes only: deleted
    assert len(await h.list(config(single))) == 1
    assert len(await h.list(config(fresh))) == 3
    assert await _prune_idle(h, HOUR) == []  # nothing older left to prune

    # The sweeper with that strategy does the same in the background.
    again = new_thread()
    with written_ago(monkeypatch, 2 * HOUR):
        await chain(h, again, 4)
    sweeper = h.saver.sweep_idle_threads(HOUR, every=EVERY, strategy="keep_latest")
    try:
        await _until(lambda: sweeper.deleted >= 1, "the idle thread to be pruned")
    finally:
        await _stop(h, sweeper)
    assert len(await h.list(config(again))) == 1
    assert "threads pruned" in repr(sweeper)
    with pytest.raises(ConfigError, match="unknown time-to-live strategy 'latest'"):
        h.saver.sweep_idle_threads(HOUR, strategy="latest")

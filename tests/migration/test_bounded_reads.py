"""A migration reads a thread a batch at a time from this package's savers and from the
official SQL savers' tables: never the whole thread at once (a long agent thread holds
every version of its message list, hundreds of MB)."""

from __future__ import annotations

import random
import tracemalloc
from collections.abc import Sequence
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver

from checkpoint_base import connect
from checkpoint_base._migrate import as_side, migrate, verify
from checkpoint_base._migrate_side import Key, Side, key_of
from checkpoint_base._plan import Plan
from checkpoint_base._records import CheckpointRow
from checkpoint_base.testing.targets import Target
from tests.conformance.builders import checkpoint, cid, config, new_thread

from .conftest import TARGETS, one_per_backend

OURS = [t for t in one_per_backend(TARGETS) if t.open_sync is not None]
OFFICIAL = [t for t in one_per_backend(TARGETS) if t.backend in ("sqlite", "postgres")]


def _fill(saver: Any, steps: int, size: int, namespaces: Sequence[str] = ("",)) -> str:
    """A thread whose `big` channel changes every step (a new blob of `size` bytes each)."""
    tid = new_thread()
    parents: dict[str, str | None] = dict.fromkeys(namespaces)
    for step in range(steps):
        for ns in namespaces:
            values = {"big": f"{step:06d}{ns}" * (size // 8), "const": "C"}
            versions = {"big": step + 1, "const": 1}
            stored = saver.put(
                config(tid, ns, parents[ns]),
                checkpoint(values, versions),
                {"step": step},
                versions if step == 0 else {"big": step + 1},
            )
            parents[ns] = cid(stored)
    return tid


def _spy(side: Side, sizes: list[int]) -> Side:
    """`side`, refusing whole-thread reads and recording how many rows each read returned."""
    read = side.read_checkpoints

    def read_checkpoints(thread_id: str, keys: Sequence[Key]) -> Plan[list[CheckpointRow]]:
        rows = yield from read(thread_id, keys)
        sizes.append(len(rows))
        return rows

    def read_thread(thread_id: str) -> Plan[list[CheckpointRow]]:
        raise AssertionError(f"{side.label} read the whole thread {thread_id!r}")

    side.read_checkpoints = read_checkpoints  # type: ignore[method-assign]
    side.read_thread = read_thread  # type: ignore[method-assign]
    return side


def _copy_in_batches(source: Any, steps: int) -> None:
    tid = _fill(source, steps, 2_000, namespaces=("", "child:1"))
    sizes: list[int] = []
    side = _spy(as_side(source), sizes)
    with connect("sqlite:///:memory:") as target:
        report = migrate(side, target, batch=7, workers=1)
        assert report.checkpoints_copied == 2 * steps
        assert sizes and max(sizes) <= 7 and sum(sizes) == 2 * steps
        got = target.get_tuple(config(tid, "child:1"))
        assert got is not None and got.checkpoint["channel_values"]["const"] == "C"
        sizes.clear()
        checked: list[int] = []
        report = verify(side, _spy(as_side(target), checked), [tid])
        assert report.ok and report.checkpoints == 2 * steps
        assert max(sizes) <= 100 and max(checked) <= 100 and sum(checked) == 2 * steps


@pytest.mark.parametrize("source", OURS, ids=lambda t: t.name)
def test_our_savers_are_read_a_batch_at_a_time(source: Target) -> None:
    assert source.open_sync is not None
    with source.open_sync() as saver:
        _copy_in_batches(saver, 30)


@pytest.mark.parametrize("source", OFFICIAL, ids=lambda t: f"official-{t.backend}")
def test_official_tables_are_read_a_batch_at_a_time(source: Target) -> None:
    assert source.official_sync is not None
    with source.official_sync() as official:
        _copy_in_batches(official, 30)


@pytest.mark.parametrize("source", OURS, ids=lambda t: t.name)
def test_any_subset_of_keys_reads_back_as_the_whole_thread_has_it(source: Target) -> None:
    """Keys a migration asks for need not be neighbours (a resumed run skips those the
    target has): pages join runs of neighbours, and a key stored after `thread_keys` is
    fetched alone."""
    assert source.open_sync is not None
    with source.open_sync() as saver:
        tid = _fill(saver, 25, 100, namespaces=("", "child:1", "child:2"))
        side = as_side(saver)
        whole = {key_of(r): r for r in side.run(side.read_thread(tid))}
        links = side.run(side.thread_keys(tid))
        assert {(ns, c) for ns, c, _ in links} == set(whole)
        pick = random.Random(7)
        for share in (0.1, 0.5, 0.9):
            keys = [k for k in sorted(whole) if pick.random() < share]
            got = side.run(side.read_checkpoints(tid, keys))
            assert sorted(map(key_of, got)) == keys
            assert all(r == whole[key_of(r)] for r in got)
        later = _fill(saver, 1, 100)  # another thread: its key is not in the index
        other = side.run(side.read_thread(later))
        got = side.run(side.read_checkpoints(tid, [*keys[:3], ("", "no-such-id")]))
        assert sorted(map(key_of, got)) == keys[:3] and other
        # A checkpoint stored since `thread_keys` among the ids of a run pushes the run's
        # oldest one out of its page: that one is fetched alone.
        ids = sorted(c for ns, c, _ in links if ns == "")
        wedged = checkpoint({"big": "w", "const": "C"}, {"big": 99, "const": 1})
        wedged["id"] = ids[10] + "0"  # between ids[10] and ids[11]
        saver.put(config(tid, "", ids[10]), wedged, {}, {"big": 99})
        run = [("", c) for c in ids[5:11]]
        got = side.run(side.read_checkpoints(tid, run))
        assert sorted(map(key_of, got)) == run


def test_verify_by_batches_names_every_missing_and_different_checkpoint() -> None:
    with connect("sqlite:///:memory:") as source, connect("sqlite:///:memory:") as target:
        tid = _fill(source, 250, 100)
        migrate(source, target)
        stored = [t.config for t in target.list(config(tid))][::-1]  # oldest first
        gone, changed = stored[10], stored[220]  # in the first and the third batch of 100
        keys = {("", cid(c)) for c in stored}
        target._run(target.backend.prune(tid, keys - {("", cid(gone))}, {"": cid(stored[-1])}))
        tup = target.get_tuple(changed)
        assert tup is not None and tup.parent_config is not None
        target.put(tup.parent_config, tup.checkpoint, {**tup.metadata, "step": -1}, {})
        report = verify(source, target, [tid])
        assert not report.ok
        (mismatch,) = report.mismatches
        assert mismatch.missing == (("", cid(gone)),)
        assert mismatch.different == (("", cid(changed)),)


def test_memory_stays_near_a_batch_however_long_the_thread() -> None:
    """120 checkpoints of 50 KB each (6 MB): the migration's Python allocations peak at a
    small part of that, where reading the whole thread held all of it."""
    with connect("sqlite:///:memory:") as source, connect("sqlite:///:memory:") as target:
        tid = _fill(source, 120, 50_000)
        peak = _migration_peak(source, target)
        assert verify(source, target, [tid]).ok
        assert peak < 2_000_000, f"peak {peak:,} bytes for a 6 MB thread"


def _migration_peak(source: Any, target: Any) -> int:
    """Peak Python allocations of a migration by batches of 10."""
    tracemalloc.start()
    try:
        migrate(source, target, batch=10, workers=1)
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_any_saver_is_read_a_batch_at_a_time_through_its_api() -> None:
    """A saver reached through LangGraph's public API (here `InMemorySaver`, as for `py:`
    URLs) is read by pages of `list(before=, limit=)`, not whole threads: the same 6 MB
    thread as above peaks at a small part of it, and a key a page does not bring (stored
    after the keys were read) comes by `get_tuple`."""
    source = InMemorySaver()
    tid = _fill(source, 120, 50_000, namespaces=("", "inner"))
    side = _spy(as_side(source), [])  # refuses a whole-thread read
    with connect("sqlite:///:memory:") as target:
        peak = _migration_peak(side, target)
        assert verify(source, target, [tid]).ok
        assert peak < 3_000_000, f"peak {peak:,} bytes for a 12 MB thread"
    ids = sorted(cid for ns, cid, _parent in side.run(side.thread_keys(tid)) if ns == "")
    wedged = source.get_tuple(config(tid, "", ids[10]))
    assert wedged is not None
    late = dict(wedged.checkpoint, id=ids[10] + "0")  # between ids[10] and ids[11]
    source.put(config(tid, "", ids[10]), late, {}, {"big": 99})
    run = [("", c) for c in ids[5:11]]
    got = side.run(side.read_checkpoints(tid, [*run, ("", late["id"])]))
    assert sorted(map(key_of, got)) == sorted([*run, ("", late["id"])])


@pytest.mark.parametrize("source", OURS, ids=lambda t: t.name)
def test_a_thread_of_writes_only_is_not_migrated(source: Target) -> None:
    """Writes that landed after their thread was deleted are listed on the source, but they
    belong to no checkpoint: neither `migrate` nor `verify` counts that thread."""
    assert source.open_sync is not None
    with source.open_sync() as saver, connect("sqlite:///:memory:") as target:
        kept = _fill(saver, 3, 10)
        orphan = _fill(saver, 2, 10)
        latest = saver.get_tuple(config(orphan))
        assert latest is not None
        saver.delete_thread(orphan)
        saver.put_writes(latest.config, [("big", "late")], "task-late")
        listed = {t.thread_id: t.checkpoint_count for t in saver.list_threads()}
        assert listed == {kept: 3, orphan: 0}  # each opened target is a store of its own

        report = migrate(saver, target)
        assert (report.threads, report.checkpoints_copied) == (1, 3)
        assert [t.thread_id for t in target.list_threads()] == [kept]
        checked = verify(saver, target)
        assert checked.ok and checked.threads == 1

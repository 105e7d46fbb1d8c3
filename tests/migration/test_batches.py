"""Batches: a backend that cannot compose several atomic writes in one plan still migrates,
one checkpoint per plan, with nothing lost or doubled."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoint_base import MemorySaver, StorageError
from checkpoint_base._memory import MemoryExecutor
from checkpoint_base._migrate import migrate, verify
from checkpoint_base._migrate_side import SaverSide
from checkpoint_base._plan import Plan, run

from .workload import assert_same_storage, fill


class OneWritePerPlan(MemoryExecutor):
    """Applies a plan's writes one by one and refuses a second write in the same plan, as a
    backend whose single-statement writes commit on their own must (after the first)."""

    plans = 0

    def run(self, plan: Plan[Any]) -> Any:
        type(self).plans += 1
        wrote = 0

        def apply(op: Any) -> Any:
            nonlocal wrote
            if getattr(op, "__qualname__", "").startswith("MemoryBackend.put_checkpoint"):
                wrote += 1
                if wrote > 1:
                    raise StorageError("a standalone write must be its plan's only write")
            return op(self.store)

        with self.store.lock:
            return run(plan, apply)


def test_a_backend_that_cannot_compose_writes_migrates_one_checkpoint_per_plan() -> None:
    source = MemorySaver()
    work = fill(source)
    target = MemorySaver()
    target._executor = OneWritePerPlan(target.store)
    target._aexecutor = None

    report = migrate(source, target, batch=10)
    assert_same_storage(source, target, work)
    assert verify(source, target).ok
    assert report.checkpoints_copied == sum(
        len(list(source.list({"configurable": {"thread_id": t}}))) for t in work.thread_ids
    )
    # One refused batch, then one plan per checkpoint (plus the reads and the setup).
    assert OneWritePerPlan.plans >= report.checkpoints_copied + 1
    assert migrate(source, target).checkpoints_copied == 0


def test_the_side_remembers_a_refusal() -> None:
    saver = MemorySaver()
    saver._executor = OneWritePerPlan(saver.store)
    side = SaverSide(saver)
    source = MemorySaver()
    fill(source)
    rows = SaverSide(source).run(
        SaverSide(source).read_thread(next(iter(source.store.checkpoints))[0])
    )
    assert len(rows) > 2
    side.store(rows[:2], source.serde)
    assert side._compose is False
    before = OneWritePerPlan.plans
    side.store(rows[2:], source.serde)
    assert OneWritePerPlan.plans - before == len(rows) - 2  # no refused attempt first


class FailsTwice(MemoryExecutor):
    """Refuses to store a given checkpoint twice: in its batch, then alone (a storage failure
    that outlasts the retry of a batch one checkpoint per plan)."""

    def __init__(self, store: Any, doomed: str) -> None:
        super().__init__(store)
        self.doomed = doomed
        self.failures = 2

    def run(self, plan: Plan[Any]) -> Any:
        def apply(op: Any) -> Any:
            if self.failures and _record_of(op) == self.doomed:
                self.failures -= 1
                raise StorageError("the disk is full")
            return op(self.store)

        with self.store.lock:
            return run(plan, apply)


def _record_of(op: Any) -> str | None:
    for cell in getattr(op, "__closure__", None) or ():
        value = cell.cell_contents
        if hasattr(value, "checkpoint_id") and hasattr(value, "channel_versions"):
            return str(value.checkpoint_id)
    return None


@pytest.mark.parametrize("workers", [1, 4])
def test_a_failed_batch_stops_the_migration_and_a_rerun_completes(workers: int) -> None:
    source = MemorySaver()
    work = fill(source)
    some_thread = work.thread_ids[2]
    doomed = list(source.list({"configurable": {"thread_id": some_thread}}))[-2]
    target = MemorySaver()
    target._executor = FailsTwice(target.store, doomed.config["configurable"]["checkpoint_id"])
    target._aexecutor = None
    with pytest.raises(StorageError, match="the disk is full"):
        migrate(source, target, batch=3, workers=workers)
    report = migrate(source, target, batch=3, workers=workers)
    assert report.checkpoints_copied > 0 and report.checkpoints_skipped > 0
    assert_same_storage(source, target, work)
    assert verify(source, target).ok

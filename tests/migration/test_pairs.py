"""Migration over every ordered pair of registered targets, with real LangGraph runs.

After `migrate`, `list` and `get_tuple` on the target give exactly what they give on the
source, a run interrupted on the source resumes on the target exactly as on the source, a
second migration adds nothing, and `verify` finds every checkpoint identical.
"""

from __future__ import annotations

import pytest

from checkpoint_base._migrate import amigrate, averify, migrate, verify
from checkpoint_base.testing.targets import Target

from ..langgraph_limits import needs_async_interrupts
from .conftest import TARGETS, one_per_backend
from .workload import (
    aassert_same_storage,
    afill,
    aresume_both,
    assert_same_storage,
    fill,
    resume_both,
)

PAIRS = [
    pytest.param(source, target, id=f"{source.name}->{target.name}")
    for source in TARGETS
    for target in TARGETS
    if source.open_sync is not None and target.open_sync is not None
]
FAMILIES = one_per_backend([t for t in TARGETS if t.open_async is not None])
ASYNC_PAIRS = [
    pytest.param(source, target, id=f"{source.name}->{target.name}")
    for source in FAMILIES
    for target in FAMILIES
]


@pytest.mark.parametrize(("source_target", "target_target"), PAIRS)
def test_migrate_pair(source_target: Target, target_target: Target) -> None:
    assert source_target.open_sync is not None and target_target.open_sync is not None
    with source_target.open_sync() as source, target_target.open_sync() as target:
        work = fill(source)
        report = migrate(source, target, batch=7)
        total = sum(
            len(list(source.list({"configurable": {"thread_id": t}}))) for t in work.thread_ids
        )
        assert report.threads == 4 and report.threads_copied == 4
        assert report.checkpoints_copied == total and report.checkpoints_skipped == 0
        assert report.writes_copied > 0 and report.blobs_copied > 0 and report.bytes_copied > 0

        assert assert_same_storage(source, target, work) == total
        again = migrate(source, target, batch=7)
        assert again.checkpoints_copied == 0 and again.checkpoints_skipped == total
        checked = verify(source, target)
        assert checked.ok and checked.checkpoints == total, checked.mismatches

        resume_both(source, target, work)


@needs_async_interrupts  # the workload's graphs interrupt
@pytest.mark.parametrize(("source_target", "target_target"), ASYNC_PAIRS)
async def test_amigrate_pair(source_target: Target, target_target: Target) -> None:
    assert source_target.open_async is not None and target_target.open_async is not None
    async with source_target.open_async() as source, target_target.open_async() as target:
        work = await afill(source)
        report = await amigrate(source, target, batch=5)
        assert report.checkpoints_copied > 0 and report.threads_copied == 4
        total = await aassert_same_storage(source, target, work)
        assert report.checkpoints_copied == total
        again = await amigrate(source, target)
        assert again.checkpoints_copied == 0
        checked = await averify(source, target)
        assert checked.ok and checked.checkpoints == total
        await aresume_both(source, target, work)

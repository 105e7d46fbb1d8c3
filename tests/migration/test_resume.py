"""A migration that stops half-way (stopped from the progress callback, or its process killed)
resumes where it stopped: the result is the same as one run, with no duplicates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest

from checkpoint_base import connect
from checkpoint_base._migrate import MigrationProgress, migrate, verify
from checkpoint_base.testing.targets import Target

from .conftest import TARGETS, one_per_backend
from .workload import Workload, assert_same_storage, fill, resume_both

FAMILIES = [t for t in one_per_backend(TARGETS) if t.open_sync is not None]
DURABLE = [t for t in FAMILIES if t.capabilities.multi_process and t.url is not None]


class Stop(Exception):
    """Raised from the progress callback to stop a migration."""


def _count(saver: Any, work: Workload) -> int:
    return sum(len(list(saver.list({"configurable": {"thread_id": t}}))) for t in work.thread_ids)


def _complete_prefix(saver: Any, work: Workload) -> None:
    """Every checkpoint the target shows is whole, and its parent is there too."""
    for thread_id in work.thread_ids:
        for tup in saver.list({"configurable": {"thread_id": thread_id}}):
            assert saver.get_tuple(tup.config) is not None
            if tup.parent_config is not None:
                assert saver.get_tuple(tup.parent_config) is not None, "a child before its parent"


@pytest.mark.parametrize("source_target", FAMILIES, ids=lambda t: t.name)
def test_stopped_from_progress_then_resumed(source_target: Target) -> None:
    target_target = FAMILIES[-1] if source_target is not FAMILIES[-1] else FAMILIES[0]
    assert source_target.open_sync is not None and target_target.open_sync is not None
    with source_target.open_sync() as source, target_target.open_sync() as target:
        work = fill(source)
        total = _count(source, work)
        seen: list[MigrationProgress] = []

        def stop_after_two_batches(progress: MigrationProgress) -> None:
            seen.append(progress)
            if progress.checkpoints_copied >= 8:
                raise Stop

        with pytest.raises(Stop):
            migrate(source, target, batch=4, progress=stop_after_two_batches)
        copied = _count(target, work)
        assert copied == 8, "the migration did not stop between batches"
        assert seen[-1].checkpoints_copied == 8 and seen[-1].threads_total == 4
        _complete_prefix(target, work)

        resumed = migrate(source, target, batch=4)
        assert resumed.checkpoints_skipped == copied
        assert resumed.checkpoints_copied == total - copied
        assert _count(target, work) == total
        assert assert_same_storage(source, target, work) == total
        assert verify(source, target).ok
        resume_both(source, target, work)


_CHILD = textwrap.dedent(
    """
    import sys, time
    from checkpoint_base import connect
    from checkpoint_base._migrate import migrate

    def slow(progress):
        print(progress.checkpoints_copied, flush=True)
        time.sleep(0.3)

    with connect(sys.argv[1]) as source, connect(sys.argv[2]) as target:
        migrate(source, target, batch=3, progress=slow)
    print("finished", flush=True)
    """
)


@pytest.mark.parametrize("target_target", DURABLE, ids=lambda t: t.name)
def test_killed_process_then_resumed(target_target: Target) -> None:
    sqlite = next((t for t in DURABLE if t.backend == "sqlite"), None)
    if sqlite is None:
        pytest.skip("needs the sqlite target for a durable source")
    assert sqlite.url is not None and target_target.url is not None
    source_url, target_url = sqlite.url(), target_target.url()
    with connect(source_url) as source:
        work = fill(source, prefix="killed")
        total = _count(source, work)
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, source_url, target_url],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": os.getcwd()},
    )
    try:
        assert child.stdout is not None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the child prints after each batch and thread
            line = child.stdout.readline()
            if line.strip().isdigit() and int(line) >= 6:
                break
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    with connect(source_url) as source, connect(target_url) as target:
        copied = _count(target, work)
        # Batches still being written by other workers may not have landed: some did.
        assert 0 < copied < total, f"killed after {copied} of {total}: not mid-way"
        _complete_prefix(target, work)
        resumed = migrate(source, target, threads=work.thread_ids)
        assert resumed.checkpoints_copied == total - copied
        assert _count(target, work) == total
        assert assert_same_storage(source, target, work) == total
        assert verify(source, target, threads=work.thread_ids).ok

"""Run a migration's steps: blocking or on asyncio, with batches written by several workers.

The migration loop (`_migrate.py`) is a generator of steps. Reads and set-up run one at a
time, in order. Writes (`Store`) may overlap: up to `workers` batches at once, each on its
own connection where the target has a pool. Batches that share a thread never overlap, so
a thread's parents are still stored before its children.

Measured SQLite -> PostgreSQL (durable server, 300 threads x 50 checkpoints of ~7 kB, 2 cores
loaded by other jobs; `migrate(..., batch=, workers=)` timed in one process): 565 checkpoints/s
with one writer, 850-930 with four, 1,300-1,660 with eight (batches of 100-200), 1,730 with
sixteen.
Each batch waits for its round trips and its commit; overlapping batches hides that wait
(and lets PostgreSQL group the commits). Eight stays under the default pool of our
PostgresSaver (10 connections), which batches of 100 keep busy across 1,000 threads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
from collections.abc import Generator, Sequence
from dataclasses import dataclass
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol

from ._migrate_side import Side
from ._plan import Plan
from ._records import CheckpointRow

__all__ = ["Run", "Setup", "Steps", "Store", "adrive", "drive"]


@dataclass(frozen=True, slots=True)
class Run:
    """Run a plan on a side; its result goes back to the loop."""

    side: Side
    plan: Plan[Any]


@dataclass(frozen=True, slots=True)
class Setup:
    """Make a side's storage ready to be written."""

    side: Side


@dataclass(frozen=True, slots=True)
class Store:
    """Write a batch of rows to a side (may overlap with other batches)."""

    side: Side
    rows: Sequence[CheckpointRow]
    serde: SerializerProtocol

    @property
    def threads(self) -> frozenset[str]:
        return frozenset(r.checkpoint.thread_id for r in self.rows)


Steps = Generator[Run | Setup | Store, Any, Any]


class _Writers:
    """Batches being written by a thread pool (blocking flavor)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = concurrent.futures.ThreadPoolExecutor(workers, "checkpointers-migrate")
        self.running: list[tuple[concurrent.futures.Future[None], frozenset[str]]] = []

    def submit(self, step: Store) -> None:
        threads = step.threads
        for future, busy in self.running:
            if busy & threads:  # an earlier batch of the same thread goes first
                future.result()
        self._reap()
        while len(self.running) >= self.workers:
            concurrent.futures.wait(
                [f for f, _ in self.running], return_when=concurrent.futures.FIRST_COMPLETED
            )
            self._reap()
        self.running.append((self.pool.submit(step.side.store, step.rows, step.serde), threads))

    def _reap(self) -> None:
        still = []
        for future, threads in self.running:
            if future.done():
                future.result()  # a failed batch stops the migration
            else:
                still.append((future, threads))
        self.running = still

    def finish(self, *, quietly: bool) -> None:
        """Wait for every batch; raise the first failure unless already failing."""
        errors = []
        for future, _ in self.running:
            try:
                future.result()
            except BaseException as exc:
                errors.append(exc)
        self.running = []
        self.pool.shutdown(wait=True)
        if errors and not quietly:
            raise errors[0]


def drive(steps: Steps, workers: int = 1) -> Any:
    """Run the steps, blocking; writes overlap up to `workers` batches."""
    writers = _Writers(workers) if workers > 1 else None
    try:
        step = next(steps)
        while True:
            result = None
            if isinstance(step, Setup):
                step.side.setup()
            elif isinstance(step, Store):
                if writers is None:
                    step.side.store(step.rows, step.serde)
                else:
                    writers.submit(step)
            else:
                result = step.side.run(step.plan)
            step = steps.send(result)
    except StopIteration as stop:
        if writers is not None:
            writers.finish(quietly=False)
        return stop.value
    except BaseException:
        if writers is not None:
            writers.finish(quietly=True)
        raise


class _AsyncWriters:
    """Batches being written as asyncio tasks."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.running: list[tuple[asyncio.Task[None], frozenset[str]]] = []

    async def submit(self, step: Store) -> None:
        threads = step.threads
        for task, busy in self.running:
            if busy & threads:
                await task
        self._reap()
        while len(self.running) >= self.workers:
            await asyncio.wait([t for t, _ in self.running], return_when=asyncio.FIRST_COMPLETED)
            self._reap()
        task = asyncio.ensure_future(step.side.astore(step.rows, step.serde))
        self.running.append((task, threads))

    def _reap(self) -> None:
        still = []
        for task, threads in self.running:
            if task.done():
                task.result()
            else:
                still.append((task, threads))
        self.running = still

    async def finish(self, *, quietly: bool) -> None:
        results = await asyncio.gather(*(t for t, _ in self.running), return_exceptions=True)
        self.running = []
        errors = [r for r in results if isinstance(r, BaseException)]
        if errors and not quietly:
            raise errors[0]


async def adrive(steps: Steps, workers: int = 1) -> Any:
    """Run the steps on asyncio; writes overlap up to `workers` batches."""
    writers = _AsyncWriters(workers) if workers > 1 else None
    try:
        step = next(steps)
        while True:
            result = None
            if isinstance(step, Setup):
                await step.side.asetup()
            elif isinstance(step, Store):
                if writers is None:
                    await step.side.astore(step.rows, step.serde)
                else:
                    await writers.submit(step)
            else:
                result = await step.side.arun(step.plan)
            step = steps.send(result)
    except StopIteration as stop:
        if writers is not None:
            await writers.finish(quietly=False)
        return stop.value
    except BaseException:
        if writers is not None:
            await writers.finish(quietly=True)
        raise

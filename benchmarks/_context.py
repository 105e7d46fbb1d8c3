"""Run sizes and the state shared by the workloads of one run."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from ._graph import Recording, record
from ._progress import Progress
from ._results import Results

__all__ = ["SIZES", "Context", "Sizes"]


@dataclass(frozen=True)
class Sizes:
    """How much work each workload does.

    Attributes:
        name: smallest | quick | full.
        steps: Thread lengths (checkpoints) of the storage-operation workload.
        payloads: Characters per message.
        rounds: Measured rounds of each interleaved workload (after `warmup` rounds).
        warmup: Rounds run first and thrown away.
        reads: Repetitions of each read operation per subject per round.
        list_all_steps: Length of the thread that the full `list` reads (200 in the issue).
        e2e: The end-to-end runs, as (threads, turns) pairs: each round starts `threads`
            fresh threads and gives each `turns` turns. The full size measures short threads
            and long ones: the saver's share of a turn grows with the thread.
        durabilities: LangGraph durability modes of the end-to-end run.
        writers: Concurrent writers of the concurrency workload.
        writer_steps: Checkpoints of each thread a writer writes.
        writer_puts: Checkpoints all writers put per round together, whatever their number
            (each writer writes `writer_puts / writers / writer_steps` threads, at least one).
        storage_lengths: Thread lengths at which bytes stored are read.
        serde_reps: dumps+loads repetitions per subject per round.
        migration_threads: Threads copied by the migration workload.
        migration_steps: Checkpoints per migrated thread.
    """

    name: str
    steps: tuple[int, ...]
    payloads: tuple[int, ...]
    rounds: int
    warmup: int
    reads: int
    list_all_steps: int
    e2e: tuple[tuple[int, int], ...]
    durabilities: tuple[str, ...]
    writers: tuple[int, ...]
    writer_steps: int
    writer_puts: int
    storage_lengths: tuple[int, ...]
    serde_reps: int
    migration_threads: int
    migration_steps: int

    def to_json(self) -> dict[str, Any]:
        """The sizes, for the JSON report."""
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


SIZES = {
    "smallest": Sizes(
        name="smallest",
        steps=(6,),
        payloads=(64,),
        rounds=2,
        warmup=1,
        reads=2,
        list_all_steps=12,
        e2e=((2, 1),),
        durabilities=("sync", "async", "exit"),
        writers=(1, 2),
        writer_steps=2,
        writer_puts=4,
        storage_lengths=(16, 32),
        serde_reps=2,
        migration_threads=2,
        migration_steps=3,
    ),
    "quick": Sizes(
        name="quick",
        steps=(20, 100),
        payloads=(512,),
        rounds=3,
        warmup=1,
        reads=10,
        list_all_steps=200,
        e2e=((3, 2),),
        durabilities=("sync", "async", "exit"),
        writers=(1, 8, 32),
        writer_steps=4,
        writer_puts=128,
        storage_lengths=(10, 50, 100, 200),
        serde_reps=20,
        migration_threads=20,
        migration_steps=10,
    ),
    "full": Sizes(
        name="full",
        steps=(10, 100),
        payloads=(512, 4096),
        rounds=5,
        warmup=1,
        reads=10,
        list_all_steps=200,
        # 20 turns: a thread of 80 messages, the length of the storage operations' 100-step
        # thread. There the official PostgreSQL saver ran 68 turns/s here, which is the
        # 30-39 of issue #6 on a machine where its get_tuple took 3.3 ms, not 1.76 ms.
        e2e=((4, 3), (2, 20)),
        durabilities=("sync", "async", "exit"),
        writers=(1, 8, 16, 32),
        writer_steps=10,
        writer_puts=320,
        storage_lengths=(10, 50, 100, 200),
        serde_reps=50,
        migration_threads=1000,
        migration_steps=50,
    ),
}


class Context:
    """What the workloads of one run share: sizes, results, progress, recordings."""

    def __init__(self, sizes: Sizes, results: Results, progress: Progress) -> None:
        self.sizes = sizes
        self.results = results
        self.progress = progress
        self._recordings: dict[tuple[int, int], Recording] = {}
        self._run = uuid.uuid4().hex[:8]
        self._threads = 0

    def recording(self, steps: int, payload: int) -> Recording:
        """The recorded saver calls of a `steps`-checkpoint thread (recorded once per run)."""
        key = (steps, payload)
        if key not in self._recordings:
            self._recordings[key] = record(steps, payload)
        return self._recordings[key]

    def thread_id(self, purpose: str) -> str:
        """A thread id no other measurement of this run uses."""
        self._threads += 1
        return f"bench-{self._run}-{purpose}-{self._threads}"

"""Interleaved rounds and timing, shared by the workloads."""

from __future__ import annotations

import contextlib
import gc
import time
import traceback
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any

from ._context import Context
from ._subjects import Opened

__all__ = ["Block", "frozen_heap", "interleave", "timed"]


async def timed(operation: Awaitable[Any]) -> tuple[float, Any]:
    """Seconds taken by awaiting `operation` (a coroutine made just before), and its result.

    The coroutine is created by the caller outside the clock; for a sync subject its body
    is the blocking call itself.
    """
    start = time.perf_counter()
    result = await operation
    return time.perf_counter() - start, result


Block = Callable[[Opened, bool], Awaitable[None]]
"""A subject's share of one part of a round, called back to back: `block(subject, measured)`."""


async def interleave(ctx: Context, opened: Sequence[Opened], *blocks: Block) -> None:
    """Run `blocks` round after round; within a round, each block for every subject in turn.

    A round runs the first block for every subject, then the second for every subject, and
    so on. A block is short (ten reads, or one thread's puts), so a slow spell of the
    machine, which lasts seconds, falls on the blocks of every subject more evenly. The order of
    the subjects turns by one each round (A B C, then B C A, ...): none always follows the
    same one.

    A block must record samples only when `measured`: the first `ctx.sizes.warmup` rounds
    warm caches, connections and prepared statements, and are thrown away. A subject whose
    block raises is reported as a problem of the run and left out of the later blocks and
    rounds; the other subjects go on.

    The rounds run with the heap made so far frozen (`frozen_heap`).
    """
    with frozen_heap():
        await _interleave(ctx, opened, blocks)


async def _interleave(ctx: Context, opened: Sequence[Opened], blocks: Sequence[Block]) -> None:
    sizes = ctx.sizes
    failed: set[int] = set()
    for round_index in range(sizes.warmup + sizes.rounds):
        measured = round_index >= sizes.warmup
        shift = round_index % len(opened) if opened else 0
        order = [*opened[shift:], *opened[:shift]]
        for block in blocks:
            for subject in order:
                if id(subject) in failed:
                    continue
                try:
                    await block(subject, measured)
                except Exception as exc:  # the others go on; the run's exit status says so
                    failed.add(id(subject))
                    ctx.results.problem(
                        f"{subject.id.label} failed in '{ctx.progress.phase}': {exc!r}"
                    )
                    ctx.progress.note(traceback.format_exc())
        for _ in order:
            ctx.progress.advance()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Collect, then keep the objects alive so far out of Python's full collections.

    A full (oldest generation) collection visits every tracked object of the process: the
    harness's own (LangGraph, LangChain, the recordings, earlier workloads' results), which
    made each one a pause of 50-150 ms that fell on whichever subject's block was running,
    one in a few hundred turns (one cut a round of `sqlite-sync` to 88 turns/s against
    400-500). Frozen, those objects are left out, and a full collection visits only what the
    rounds made: the subjects' own objects, collected as in any program.
    """
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def round_units(ctx: Context, subjects: int) -> int:
    """Progress units of one interleaved workload."""
    return (ctx.sizes.warmup + ctx.sizes.rounds) * subjects

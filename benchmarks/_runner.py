"""Interleaved rounds and timing, shared by the workloads."""

from __future__ import annotations

import time
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._context import Context
from ._subjects import Opened

__all__ = ["Block", "interleave", "timed"]


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
    """
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


def round_units(ctx: Context, subjects: int) -> int:
    """Progress units of one interleaved workload."""
    return (ctx.sizes.warmup + ctx.sizes.rounds) * subjects

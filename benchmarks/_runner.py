"""Interleaved rounds and timing, shared by the workloads."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ._context import Context
from ._subjects import Opened

__all__ = ["interleave", "timed"]


async def timed(operation: Awaitable[Any]) -> tuple[float, Any]:
    """Seconds taken by awaiting `operation` (a coroutine made just before), and its result.

    The coroutine is created by the caller outside the clock; for a sync subject its body
    is the blocking call itself.
    """
    start = time.perf_counter()
    result = await operation
    return time.perf_counter() - start, result


async def interleave(
    ctx: Context,
    opened: Sequence[Opened],
    body: Callable[[Opened, bool], Awaitable[None]],
) -> None:
    """Run `body` round after round, each subject once per round, always in one order (A,B,C,A,B,C).

    `body(subject, measured)` must record samples only when `measured`: the first
    `ctx.sizes.warmup` rounds warm caches, connections and prepared statements, and are
    thrown away.
    """
    sizes = ctx.sizes
    for round_index in range(sizes.warmup + sizes.rounds):
        measured = round_index >= sizes.warmup
        for subject in opened:
            await body(subject, measured)
            ctx.progress.advance()


def round_units(ctx: Context, subjects: int) -> int:
    """Progress units of one interleaved workload."""
    return (ctx.sizes.warmup + ctx.sizes.rounds) * subjects

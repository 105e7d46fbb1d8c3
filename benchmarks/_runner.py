"""Interleaved rounds and timing, shared by the workloads."""

from __future__ import annotations

import time
import traceback
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
    thrown away. A subject whose body raises is reported as a problem of the run and left
    out of the later rounds; the other subjects go on.
    """
    sizes = ctx.sizes
    failed: set[int] = set()
    for round_index in range(sizes.warmup + sizes.rounds):
        measured = round_index >= sizes.warmup
        for subject in opened:
            if id(subject) not in failed:
                try:
                    await body(subject, measured)
                except Exception as exc:  # the others go on; the run's exit status says so
                    failed.add(id(subject))
                    ctx.results.problem(
                        f"{subject.id.label} failed in '{ctx.progress.phase}': {exc!r}"
                    )
                    ctx.progress.note(traceback.format_exc())
            ctx.progress.advance()


def round_units(ctx: Context, subjects: int) -> int:
    """Progress units of one interleaved workload."""
    return (ctx.sizes.warmup + ctx.sizes.rounds) * subjects

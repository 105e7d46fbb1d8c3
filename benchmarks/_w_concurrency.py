"""Concurrency: 1, 8, 32 writers putting checkpoints on their own threads at once.

Sync subjects: one OS thread per writer (a pool started and warmed before the clock), all
calling the same saver, which holds its own connection or pool. Async subjects: one task per
writer on the benchmark's event loop. Floors: one raw connection (or Redis client) per
writer. Each writer replays the puts of a recorded thread
(`writer_steps` checkpoints, the message list growing) on threads of its own, one thread
after the other, so that every round puts the same `writer_puts` checkpoints in all
whatever the number of writers.

Subjects of one target are interleaved with each other (targets run one after the other).
Samples: checkpoints per second of each round (all writers' puts over the wall time from
the first put to the last), and the latency of every put.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ._context import Context
from ._graph import Recording
from ._handles import Handle
from ._results import THROUGHPUT
from ._runner import interleave, round_units
from ._subjects import Opened, Subject, open_subjects

__all__ = ["run", "units"]

WORKLOAD = "concurrency"


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    return round_units(ctx, len(subjects)) * len(ctx.sizes.writers)


def _write_sync(handle: Handle, batch: list[Any]) -> list[float]:
    latencies = []
    for args in batch:
        start = time.perf_counter()
        handle.put_sync(args)
        latencies.append(time.perf_counter() - start)
    return latencies


async def _write_async(handle: Handle, batch: list[Any]) -> list[float]:
    latencies = []
    for args in batch:
        start = time.perf_counter()
        await handle.put(args)
        latencies.append(time.perf_counter() - start)
    return latencies


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure throughput for each number of writers."""
    payload = ctx.sizes.payloads[0]
    rec = ctx.recording(ctx.sizes.writer_steps, payload)
    # One target at a time (its ours, official and floor subjects, both flavors, interleaved):
    # every subject of every target open at once, each with its pool and a floor connection
    # per writer, passed PostgreSQL's max_connections (200) at 32 writers.
    groups: dict[str, list[Subject]] = {}
    for s in subjects:
        groups.setdefault(s.target.name, []).append(s)
    for writers in ctx.sizes.writers:
        for target, group in groups.items():
            async with contextlib.AsyncExitStack() as stack:
                ctx.progress.begin(f"concurrency: {target} writers={writers} payload={payload}")
                opened = await open_subjects(group, stack, ctx.results)
                pool = stack.enter_context(ThreadPoolExecutor(max_workers=writers))
                list(pool.map(lambda _: None, range(writers)))  # start the threads off the clock
                await _measure(ctx, opened, writers, rec, pool)


async def _measure(
    ctx: Context, opened: Sequence[Opened], writers: int, rec: Recording, pool: ThreadPoolExecutor
) -> None:
    handles = {id(o): await o.handle.writers(writers) for o in opened}
    params = {"writers": writers, "steps": rec.steps, "payload": rec.payload}

    per_writer = max(1, ctx.sizes.writer_puts // (writers * rec.steps))  # threads per writer
    params = {**params, "puts": per_writer * writers * rec.steps}

    async def body(o: Opened, measured: bool) -> None:
        mine = handles[id(o)]
        threads = [[ctx.thread_id(f"w{writers}") for _ in range(per_writer)] for _ in mine]
        batches = [
            [h.prepare_put(t, call) for t in ts for call in rec.puts]
            for h, ts in zip(mine, threads, strict=True)
        ]
        start = time.perf_counter()
        if o.handle.sync:
            loop = asyncio.get_running_loop()
            results = await asyncio.gather(
                *(
                    loop.run_in_executor(pool, _write_sync, h, b)
                    for h, b in zip(mine, batches, strict=True)
                )
            )
        else:
            results = await asyncio.gather(
                *(_write_async(h, b) for h, b in zip(mine, batches, strict=True))
            )
        elapsed = time.perf_counter() - start
        puts = sum(len(r) for r in results)
        if measured:
            ctx.results.add(WORKLOAD, "put", params, o.id, puts / elapsed, THROUGHPUT)
            for latencies in results:
                for seconds in latencies:
                    ctx.results.add(WORKLOAD, "put latency", params, o.id, seconds)
        for h, ts in zip(mine, threads, strict=True):
            for thread in ts:
                if not await h.get(thread, None):
                    ctx.results.problem(f"{o.id.label} concurrency {params}: {thread} lost")
                await h.delete(thread)

    await interleave(ctx, opened, body)

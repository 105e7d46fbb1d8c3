"""Storage operations: put, put_writes, get_tuple, list, filtered list, full list, delete_thread.

For each (thread length, payload), each round runs these blocks, each one for every subject
in turn before the next (`_runner.interleave`):

1. replays the recorded calls of a `steps`-checkpoint thread on a fresh thread, timing each
   `put` (the message list grows by one message per step) and each `put_writes`;
2. reads a thread of `steps` checkpoints written before the rounds: `get_tuple` of the latest
   checkpoint and of the middle one by id, `list(limit=10)`, and `list(filter={"step": k})`
   that matches exactly one checkpoint;
3. lists the whole of a `list_all_steps`-checkpoint thread (200 in the issue);
4. deletes the thread written in step 1 (`delete_thread`).

Every read is checked (found, right count); a wrong answer is a problem of the run.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ._context import Context
from ._graph import PutCall, Recording
from ._handles import Handle
from ._runner import interleave, round_units, timed
from ._subjects import Opened, Subject, open_subjects

__all__ = ["run", "units"]

WORKLOAD = "ops"


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    per = round_units(ctx, len(subjects)) + len(subjects)  # + writing the read threads
    return per * len(ctx.sizes.steps) * len(ctx.sizes.payloads)


async def replay(handle: Handle, thread_id: str, rec: Recording) -> None:
    """Write a recorded thread, untimed."""
    for call in rec.calls:
        if isinstance(call, PutCall):
            await handle.put(handle.prepare_put(thread_id, call))
        else:
            await handle.put_writes(handle.prepare_writes(thread_id, call))


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure every storage operation for every (steps, payload)."""
    for payload in ctx.sizes.payloads:
        for steps in ctx.sizes.steps:
            async with contextlib.AsyncExitStack() as stack:
                ctx.progress.begin(f"storage operations: steps={steps} payload={payload}")
                opened = await open_subjects(subjects, stack, ctx.results)
                await _measure(ctx, opened, steps, payload)


async def _measure(ctx: Context, opened: Sequence[Opened], steps: int, payload: int) -> None:
    sizes = ctx.sizes
    rec = ctx.recording(steps, payload)
    rec_all = ctx.recording(sizes.list_all_steps, payload)
    params = {"steps": steps, "payload": payload}
    puts = rec.puts
    middle = puts[len(puts) // 2]
    middle_id = middle.checkpoint["id"]
    middle_step = middle.metadata["step"]
    if sum(1 for p in puts if p.metadata["step"] == middle_step) != 1:
        ctx.results.problem(f"recording: step {middle_step} is not unique in its thread")
    # The full list of a 200-checkpoint thread does not depend on `steps`: measured once,
    # with the first payload (with 4 KiB messages it reads ~90 MB per call).
    list_all = steps == sizes.steps[0] and payload == sizes.payloads[0]
    all_params = {"steps": sizes.list_all_steps, "payload": payload}
    read_thread = ctx.thread_id("read")
    all_thread = ctx.thread_id("all")
    for o in opened:
        await replay(o.handle, read_thread, rec)
        if list_all:
            await replay(o.handle, all_thread, rec_all)
        ctx.progress.advance()
    expect_page = min(10, len(puts))

    def check(o: Opened, what: str, got: object, want: object) -> None:
        if got != want:
            ctx.results.problem(f"{o.id.label} {what} {params}: got {got!r}, expected {want!r}")

    put_threads: dict[int, str] = {}

    def add(
        o: Opened, measured: bool, op: str, seconds: float, at: dict[str, int] = params
    ) -> None:
        if measured:
            ctx.results.add(WORKLOAD, op, at, o.id, seconds)

    async def write_thread(o: Opened, measured: bool) -> None:
        h = o.handle
        thread = put_threads[id(o)] = ctx.thread_id("put")
        for call in rec.calls:
            if isinstance(call, PutCall):
                args = h.prepare_put(thread, call)
                seconds, _ = await timed(h.put(args))
                add(o, measured, "put", seconds)
            else:
                args = h.prepare_writes(thread, call)
                seconds, _ = await timed(h.put_writes(args))
                add(o, measured, "put_writes", seconds)

    async def get_latest(o: Opened, measured: bool) -> None:
        for _ in range(sizes.reads):
            seconds, found = await timed(o.handle.get(read_thread, None))
            add(o, measured, "get_tuple latest", seconds)
            check(o, "get_tuple latest", found, True)

    async def get_by_id(o: Opened, measured: bool) -> None:
        for _ in range(sizes.reads):
            seconds, found = await timed(o.handle.get(read_thread, middle_id))
            add(o, measured, "get_tuple by id", seconds)
            check(o, "get_tuple by id", found, True)

    async def list_page(o: Opened, measured: bool) -> None:
        for _ in range(sizes.reads):
            seconds, count = await timed(o.handle.list(read_thread, 10, None))
            add(o, measured, "list limit=10", seconds)
            check(o, "list(limit=10)", count, expect_page)

    async def list_filtered(o: Opened, measured: bool) -> None:
        for _ in range(sizes.reads):
            seconds, count = await timed(o.handle.list(read_thread, None, middle_step))
            add(o, measured, "list filter 1 of N", seconds)
            check(o, "list(filter=step)", count, 1)

    async def list_whole(o: Opened, measured: bool) -> None:
        for _ in range(max(1, sizes.reads // 5)):
            seconds, count = await timed(o.handle.list(all_thread, None, None))
            add(o, measured, "list all", seconds, all_params)
            check(o, "full list", count, sizes.list_all_steps)

    async def delete(o: Opened, measured: bool) -> None:
        h = o.handle
        thread = put_threads.pop(id(o))
        seconds, _ = await timed(h.delete(thread))
        add(o, measured, "delete_thread", seconds)
        check(o, "get_tuple after delete_thread", await h.get(thread, None), False)

    reads = [get_latest, get_by_id, list_page, list_filtered]
    await interleave(ctx, opened, write_thread, *reads, *([list_whole] if list_all else []), delete)

"""Storage: bytes stored against thread length.

Each subject is opened fresh (an empty isolated store), its size read, then one recorded
thread is written (puts and writes, the message list growing by one message per step) and
the size read again at each length of `storage_lengths`. Samples: bytes above the empty
store's size. How each family is measured is in `_storage.py`; a subject that offers no way
to measure is reported as n/a. Sizes do not depend on the flavor: the sync flavor is used.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ._context import Context
from ._graph import PutCall
from ._results import BYTES
from ._subjects import Opened, Subject, open_subjects

__all__ = ["run", "units"]

WORKLOAD = "storage"


def _one_flavor(subjects: Sequence[Subject]) -> list[Subject]:
    """Per target and kind, the sync subject (the async one when there is no sync flavor)."""
    chosen: dict[tuple[str, str], Subject] = {}
    for s in subjects:
        key = (s.target.name, s.kind)
        if key not in chosen or (s.flavor == "sync" and chosen[key].flavor != "sync"):
            chosen[key] = s
    return list(chosen.values())


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    return len(_one_flavor(subjects)) * len(ctx.sizes.payloads)


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure bytes stored at each thread length, for each payload."""
    lengths = sorted(ctx.sizes.storage_lengths)
    for payload in ctx.sizes.payloads:
        rec = ctx.recording(lengths[-1], payload)
        async with contextlib.AsyncExitStack() as stack:
            ctx.progress.begin(f"storage: up to {lengths[-1]} steps, payload={payload}")
            opened = await open_subjects(_one_flavor(subjects), stack, ctx.results)
            for o in opened:
                await _measure(ctx, o, rec.calls, lengths, payload)
                ctx.progress.advance()


async def _measure(
    ctx: Context, o: Opened, calls: Sequence[object], lengths: Sequence[int], payload: int
) -> None:
    h = o.handle
    empty = await h.storage_bytes()
    if empty is None:
        series = ctx.results.series(
            WORKLOAD, "bytes", {"payload": payload}, o.id, BYTES, note="n/a: no way to measure"
        )
        series.samples.clear()
        return
    thread = ctx.thread_id("storage")
    puts = 0
    wanted = set(lengths)
    for call in calls:
        if isinstance(call, PutCall):
            await h.put(h.prepare_put(thread, call))
            puts += 1
            if puts in wanted:
                size = await h.storage_bytes()
                if size is None:
                    ctx.results.problem(f"{o.id.label}: storage size became unmeasurable")
                    return
                params = {"steps": puts, "payload": payload}
                ctx.results.add(WORKLOAD, "bytes", params, o.id, float(size - empty), BYTES)
        else:
            await h.put_writes(h.prepare_writes(thread, call))  # type: ignore[arg-type]

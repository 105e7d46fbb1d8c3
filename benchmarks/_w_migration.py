"""Migration throughput: `checkpoint_base.migrate` between two of our backends.

Runs only when `checkpoint_base.migrate` exists (or, until it is exported, the `migrate`
of `checkpoint_base._migrate`, with a note saying so). The source (our sync saver of one target) is
filled with `migration_threads` threads of `migration_steps` recorded checkpoints each (with
their writes); each round copies all of them into a freshly opened, empty target saver.
A first copy of one thread into a throw-away target warms connections and is not recorded.
Samples: checkpoints per second and MB per second (MB of the serialized records, as the
floors count them) of each round; the target is checked to hold every checkpoint.
Pairs: SQLite -> PostgreSQL and PostgreSQL -> Redis (issue 8) when those targets run, else
each selected backend to the next.
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import itertools
import time
from collections.abc import Sequence
from typing import Any

from ._context import Context
from ._handles import SaverHandle
from ._results import THROUGHPUT, SubjectId
from ._subjects import Subject
from ._w_ops import replay

__all__ = ["migrate_function", "pairs", "run", "units"]

WORKLOAD = "migration"
PREFERRED = (("sqlite", "postgres"), ("postgres", "redis"))


def migrate_function() -> Any:
    """`checkpoint_base.migrate`; else the function its module defines before it is exported."""
    base = importlib.import_module("checkpoint_base")
    found = getattr(base, "migrate", None)
    if found is not None:
        return found
    try:
        module = importlib.import_module("checkpoint_base._migrate")
    except ImportError:
        return None
    return getattr(module, "migrate", None)


def pairs(subjects: Sequence[Subject]) -> list[tuple[Subject, Subject]]:
    """(source, target) pairs of our sync savers, one target per backend family."""
    first: dict[str, Subject] = {}
    for s in subjects:
        if s.kind == "ours" and s.flavor == "sync" and not s.target.capabilities.cluster:
            known = first.get(s.target.backend)
            # A pool is how a server backend is deployed: prefer it to a single connection.
            if known is None or ("pool" in s.target.name and "pool" not in known.target.name):
                first[s.target.backend] = s
    found = [(first[a], first[b]) for a, b in PREFERRED if a in first and b in first]
    if not found:
        families = list(first)
        found = [(first[a], first[b]) for a, b in itertools.pairwise(families)]
    return found


def _rounds(ctx: Context) -> int:
    return 1 if ctx.sizes.name == "full" else ctx.sizes.rounds


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload (0 when there is nothing to run)."""
    if migrate_function() is None:
        return 0
    return len(pairs(subjects)) * (_rounds(ctx) + 2)


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure each pair, or note why the workload was skipped."""
    migrate = migrate_function()
    if migrate is None:
        note = "migration: skipped, checkpoint_base.migrate does not exist"
        ctx.results.notes.append(note)
        ctx.progress.note(note)
        return
    if getattr(importlib.import_module("checkpoint_base"), "migrate", None) is None:
        ctx.results.notes.append(
            "migration: measured with checkpoint_base._migrate.migrate "
            "(not exported from checkpoint_base yet)"
        )
    found = pairs(subjects)
    if not found:
        note = "migration: skipped, it needs two backends (select two with --backend)"
        ctx.results.notes.append(note)
        ctx.progress.note(note)
    for source, target in found:
        await _pair(ctx, migrate, source, target)


async def _open(stack: contextlib.AsyncExitStack, subject: Subject) -> Any:
    handle = await subject.open(stack)
    assert isinstance(handle, SaverHandle)
    return handle


async def _call(migrate: Any, source: Any, target: Any, **options: Any) -> Any:
    result = migrate(source, target, **options)
    if inspect.isawaitable(result):
        result = await result
    return result


async def _pair(ctx: Context, migrate: Any, source: Subject, target: Subject) -> None:
    sizes = ctx.sizes
    rec = ctx.recording(sizes.migration_steps, sizes.payloads[0])
    n_threads = sizes.migration_threads
    checkpoints = n_threads * rec.steps
    megabytes = n_threads * sum(len(c.data) for c in rec.calls) / 1e6
    label = f"{source.target.name}->{target.target.name}"
    sid = SubjectId(label, "sync", "ours")
    params = {"threads": n_threads, "steps": rec.steps, "payload": rec.payload}
    async with contextlib.AsyncExitStack() as stack:
        ctx.progress.begin(f"migration {label}: filling the source ({checkpoints} checkpoints)")
        src = await _open(stack, source)
        threads = [ctx.thread_id("migrate") for _ in range(n_threads)]
        for thread in threads:
            await replay(src, thread, rec)
        ctx.progress.advance()
        async with contextlib.AsyncExitStack() as warm:  # one thread: connections, caches
            await _call(migrate, src.saver, (await _open(warm, target)).saver, threads=threads[:1])
        ctx.progress.advance()
        for _ in range(_rounds(ctx)):
            ctx.progress.begin(f"migration {label}: {checkpoints} checkpoints")
            async with contextlib.AsyncExitStack() as round_stack:
                dst = await _open(round_stack, target)
                start = time.perf_counter()
                await _call(migrate, src.saver, dst.saver)
                elapsed = time.perf_counter() - start
                ctx.results.add(
                    WORKLOAD, "checkpoints/s", params, sid, checkpoints / elapsed, THROUGHPUT
                )
                ctx.results.add(WORKLOAD, "MB/s", params, sid, megabytes / elapsed, THROUGHPUT)
                for thread in (threads[0], threads[-1]):
                    count = await dst.list(thread, None, None)
                    if count != rec.steps:
                        ctx.results.problem(
                            f"migration {label}: {thread} has {count} checkpoints, "
                            f"expected {rec.steps}"
                        )
            ctx.progress.advance()

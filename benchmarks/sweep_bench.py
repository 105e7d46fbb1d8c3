"""What a time-to-live sweep costs, per backend (`sweep_idle_threads`, `connect(url, ttl=)`).

For each backend (sync savers of this package on the durable benchmark servers), a fresh
store gets `--threads` threads, each a replay of one recorded agent thread (`--steps` puts
with their writes, 512-character messages). PostgreSQL's tables are then analyzed, as
autovacuum would have done after such a load. Measured:

- a sweep that finds nothing idle (`delete_idle_threads` with a time to live of a day), and a
  whole `list_threads` (with sizes), alternating, `--rounds` of each: what a swept saver
  costs the database at each interval;
- taking the sweepers' lease (`Backend.claim`), which every sweep does first so that the
  savers of one store take turns: `LEASES` claims, alternating two holders on leases that
  have ended (each claim takes it);
- once every thread is idle (a time to live of 0.5 s, after a pause): a `keep_latest` sweep
  (`prune_idle_threads`), which prunes each thread to its latest checkpoint; a second one,
  which finds nothing left to prune; then a `delete` sweep, which deletes every thread.

    python -m benchmarks.sweep_bench                      # sqlite, postgres-pool, redis
    python -m benchmarks.sweep_bench --out benchmarks/results/sweep.md
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from checkpoint_base.testing.targets import Target

from ._env import git_commit
from ._graph import record
from ._handles import SaverHandle
from ._side import durable_targets, main_of, maintain_postgres, open_ours, replay

DAY = 86400.0
IDLE = 0.5
LEASES = 200


def _timed(call: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    out = call()
    return time.perf_counter() - start, out


def _list_all(saver: Any) -> int:
    """Every thread, a page of 1,000 at a time, with sizes; how many."""
    after, count = None, 0
    while True:
        page = saver.list_threads(after=after, limit=1000)
        count += len(page)
        if len(page) < 1000:
            return count
        after = page[-1].thread_id


async def _measure(target: Target, args: argparse.Namespace) -> dict[str, Any]:
    rec = record(args.steps, 512)
    async with contextlib.AsyncExitStack() as stack:
        handle: SaverHandle = await open_ours(target, stack)
        saver = handle.saver
        for i in range(args.threads):
            await replay(handle, f"t{i:06d}", rec)
        if saver.backend.name == "postgres":
            maintain_postgres(saver, "ANALYZE")
        checkpoints = sum(1 for _ in saver.list(None))
        noop: list[float] = []
        listing: list[float] = []
        for _ in range(args.rounds):
            seconds, gone = _timed(lambda: saver.delete_idle_threads(DAY))
            assert gone == [], gone
            noop.append(seconds)
            seconds, listed = _timed(lambda: _list_all(saver))
            assert listed == args.threads, listed
            listing.append(seconds)
        claims: list[float] = []
        for i in range(LEASES):
            # A lease of 1 ms, ended by the next claim: each claim takes it from the other.
            plan = saver.backend.claim("bench", "ab"[i % 2], 1e-3)
            seconds, taken = _timed(functools.partial(saver._run, plan))
            claims.append(seconds)
            assert taken, "a lease that ended was not taken"
            await asyncio.sleep(2e-3)
        await asyncio.sleep(IDLE * 2)
        prune_s, pruned = _timed(lambda: saver.prune_idle_threads(IDLE))
        again_s, again = _timed(lambda: saver.prune_idle_threads(IDLE))
        kept = sum(1 for _ in saver.list(None))
        delete_s, deleted = _timed(lambda: saver.delete_idle_threads(IDLE))
        assert len(pruned) == len(deleted) == args.threads
        assert again == []
        assert kept == args.threads
        assert not saver.list_threads(limit=1)
    return {
        "checkpoints": checkpoints,
        "noop": statistics.median(noop),
        "listing": statistics.median(listing),
        "lease": statistics.median(claims),
        "prune": prune_s,
        "again": again_s,
        "delete": delete_s,
    }


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:,.1f} ms"


def _us_each(seconds: float, n: int) -> str:
    return f"{seconds / n * 1e6:,.0f} µs"


async def _run(args: argparse.Namespace) -> str:
    n = args.threads
    lines = [
        f"# Time-to-live sweeps: {n:,} threads of {args.steps} agent steps "
        f"({args.rounds} rounds of the no-op sweep, git {git_commit()})",
        "",
        "| target | checkpoints | no-op sweep | a thread | list_threads (sizes) | lease "
        "| keep_latest sweep | a thread | again (nothing to prune) | delete sweep | a thread |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_targets(args.target) as targets:
        for target in targets:
            name = target.name
            print(f"{name}: {n} threads", file=sys.stderr)
            m = await _measure(target, args)
            lines.append(
                f"| {name} | {m['checkpoints']:,} | {_ms(m['noop'])} | {_us_each(m['noop'], n)} "
                f"| {_ms(m['listing'])} | {m['lease'] * 1e6:,.0f} µs "
                f"| {_ms(m['prune'])} | {_us_each(m['prune'], n)} "
                f"| {_ms(m['again'])} | {_ms(m['delete'])} | {_us_each(m['delete'], n)} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m benchmarks.sweep_bench"
    return main_of(prog, argv, _run, threads=1000, steps=20, rounds=5)


if __name__ == "__main__":
    raise SystemExit(main())

"""What `keep_last` retention costs a put, and what it saves in storage, per backend.

For each backend (sync savers of this package on the durable benchmark servers), one recorded
agent thread (`--steps` puts, the message list growing by one message per step, with its
`put_writes`) is replayed:

- latency: on one saver, rounds of one block per setting (`keep_last` None, 20, 1), the order
  rotating each round, each block a fresh thread; every `put` is timed, trims included (a trim
  runs inside the put that triggers it). Reported: the median put (a put without a trim, for
  `keep_last=20`) and the mean (the trims spread over every put), each against
  `keep_last=None` of the same run;
- storage: for each setting, a fresh isolated store holding only that thread, then the
  checkpoints it keeps and the bytes it holds (SQLite: pages in use; PostgreSQL: table, TOAST
  and index bytes after `VACUUM FULL`, as deleted rows hold space until then; Redis: `MEMORY
  USAGE` of its keys), against `keep_last=None`.

    python -m benchmarks.retention_bench                      # sqlite, postgres-pool, redis
    python -m benchmarks.retention_bench --out benchmarks/results/retention.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Sequence

from checkpoint_base.testing.targets import Target

from ._env import git_commit
from ._graph import Recording, record
from ._handles import SaverHandle
from ._side import bytes_cells, durable_targets, main_of, maintain_postgres, open_ours, replay
from ._storage import saver_storage_bytes

SETTINGS: tuple[int | None, ...] = (None, 20, 1)


def _label(keep_last: int | None) -> str:
    return "keep_last=None" if keep_last is None else f"keep_last={keep_last}"


async def _bytes(handle: SaverHandle) -> int | None:
    if handle.saver.backend.name == "postgres":
        maintain_postgres(handle.saver, "VACUUM FULL")
    return await saver_storage_bytes(handle.saver)


async def _latency(target: Target, rec: Recording, rounds: int) -> dict[int | None, list[float]]:
    samples: dict[int | None, list[float]] = {k: [] for k in SETTINGS}
    async with contextlib.AsyncExitStack() as stack:
        handle = await open_ours(target, stack)
        await replay(handle, "warm-up", rec)
        for r in range(rounds):
            order = SETTINGS[r % len(SETTINGS) :] + SETTINGS[: r % len(SETTINGS)]
            for keep_last in order:
                handle.saver.keep_last = keep_last
                samples[keep_last] += await replay(handle, f"lat-{r}-{keep_last}", rec)
    return samples


async def _storage(target: Target, rec: Recording) -> dict[int | None, tuple[int, int | None]]:
    out: dict[int | None, tuple[int, int | None]] = {}
    for keep_last in SETTINGS:
        async with contextlib.AsyncExitStack() as stack:
            handle = await open_ours(target, stack)
            empty = await _bytes(handle)
            handle.saver.keep_last = keep_last
            await replay(handle, "stored", rec)
            kept = len(list(handle.saver.list({"configurable": {"thread_id": "stored"}})))
            full = await _bytes(handle)
            out[keep_last] = (kept, None if full is None or empty is None else full - empty)
    return out


async def _run(args: argparse.Namespace) -> str:
    rec = record(args.steps, args.payload)
    lines = [
        f"# keep_last retention: put latency and storage ({args.steps} steps, "
        f"{args.payload}-character messages, {args.rounds} rounds, git {git_commit()})",
        "",
        "| target | setting | put median | vs keep_last=None | put mean (trims spread) "
        "| vs keep_last=None | checkpoints kept | bytes | vs keep_last=None |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_targets(args.target) as targets:
        for target in targets:
            name = target.name
            print(f"{name}: latency", file=sys.stderr)
            samples = await _latency(target, rec, args.rounds)
            print(f"{name}: storage", file=sys.stderr)
            stored = await _storage(target, rec)
            base = statistics.median(samples[None])
            base_mean = statistics.fmean(samples[None])
            base_bytes = stored[None][1]
            for keep_last in SETTINGS:
                median = statistics.median(samples[keep_last])
                mean = statistics.fmean(samples[keep_last])
                kept, size = stored[keep_last]
                lines.append(
                    f"| {name} | {_label(keep_last)} | {median * 1e6:.1f} µs "
                    f"| {median / base:.2f}x | {mean * 1e6:.1f} µs | {mean / base_mean:.2f}x "
                    f"| {kept} | {bytes_cells(size, base_bytes)} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m benchmarks.retention_bench"
    return main_of(prog, argv, _run, steps=200, payload=512, rounds=5)


if __name__ == "__main__":
    raise SystemExit(main())

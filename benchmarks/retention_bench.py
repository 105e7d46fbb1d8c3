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
import asyncio
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from checkpoint_base.testing.targets import Target, all_targets

from ._env import durable_servers, git_commit
from ._graph import PutCall, Recording, record
from ._handles import SaverHandle
from ._storage import saver_storage_bytes
from ._subjects import Subject

SETTINGS: tuple[int | None, ...] = (None, 20, 1)
DEFAULT_TARGETS = ("sqlite", "postgres-pool", "redis")


def _label(keep_last: int | None) -> str:
    return "keep_last=None" if keep_last is None else f"keep_last={keep_last}"


async def _open(target: Target, stack: contextlib.AsyncExitStack) -> SaverHandle:
    handle = await Subject(target, "sync", "ours").open(stack)
    assert isinstance(handle, SaverHandle)
    return handle


async def _replay(handle: SaverHandle, thread_id: str, rec: Recording) -> list[float]:
    """Write the recorded thread; the seconds of each put."""
    seconds = []
    for call in rec.calls:
        if isinstance(call, PutCall):
            args = handle.prepare_put(thread_id, call)
            start = time.perf_counter()
            handle.put_sync(args)
            seconds.append(time.perf_counter() - start)
        else:
            await handle.put_writes(handle.prepare_writes(thread_id, call))
    return seconds


def _vacuum_full(saver: Any) -> None:
    """Rewrite the saver's PostgreSQL tables, so that deleted rows hold no space."""
    import psycopg
    from psycopg import sql

    pool = saver.conn
    kwargs = {k: v for k, v in (pool.kwargs or {}).items() if k in ("password", "options")}
    with psycopg.connect(pool.conninfo, autocommit=True, **kwargs) as conn:
        for table in ("checkpoints", "blobs", "writes"):
            name = sql.Identifier(saver.backend.schema, table)
            conn.execute(sql.SQL("VACUUM FULL {}").format(name))


async def _bytes(handle: SaverHandle) -> int | None:
    if handle.saver.backend.name == "postgres":
        _vacuum_full(handle.saver)
    return await saver_storage_bytes(handle.saver)


async def _latency(target: Target, rec: Recording, rounds: int) -> dict[int | None, list[float]]:
    samples: dict[int | None, list[float]] = {k: [] for k in SETTINGS}
    async with contextlib.AsyncExitStack() as stack:
        handle = await _open(target, stack)
        await _replay(handle, "warm-up", rec)
        for r in range(rounds):
            order = SETTINGS[r % len(SETTINGS) :] + SETTINGS[: r % len(SETTINGS)]
            for keep_last in order:
                handle.saver.keep_last = keep_last
                samples[keep_last] += await _replay(handle, f"lat-{r}-{keep_last}", rec)
    return samples


async def _storage(target: Target, rec: Recording) -> dict[int | None, tuple[int, int | None]]:
    out: dict[int | None, tuple[int, int | None]] = {}
    for keep_last in SETTINGS:
        async with contextlib.AsyncExitStack() as stack:
            handle = await _open(target, stack)
            empty = await _bytes(handle)
            handle.saver.keep_last = keep_last
            await _replay(handle, "stored", rec)
            kept = len(list(handle.saver.list({"configurable": {"thread_id": "stored"}})))
            full = await _bytes(handle)
            out[keep_last] = (kept, None if full is None or empty is None else full - empty)
    return out


def _mib(n: int | None) -> str:
    return "n/a" if n is None else f"{n / 2**20:.2f} MiB"


async def _run(args: argparse.Namespace) -> str:
    registry = {t.name: t for t in all_targets()}
    unknown = [n for n in args.target if n not in registry]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; known: {sorted(registry)}")
    rec = record(args.steps, args.payload)
    lines = [
        f"# keep_last retention: put latency and storage ({args.steps} steps, "
        f"{args.payload}-character messages, {args.rounds} rounds, git {git_commit()})",
        "",
        "| target | setting | put median | vs keep_last=None | put mean (trims spread) "
        "| vs keep_last=None | checkpoints kept | bytes | vs keep_last=None |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_servers([registry[n] for n in args.target]):
        for name in args.target:
            target = {t.name: t for t in all_targets()}[name]  # openers see the servers
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
                ratio = "" if not (size and base_bytes) else f"{size / base_bytes:.3f}x"
                lines.append(
                    f"| {name} | {_label(keep_last)} | {median * 1e6:.1f} µs "
                    f"| {median / base:.2f}x | {mean * 1e6:.1f} µs | {mean / base_mean:.2f}x "
                    f"| {kept} | {_mib(size)} | {ratio} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.retention_bench")
    parser.add_argument("--target", nargs="+", default=list(DEFAULT_TARGETS))
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--payload", type=int, default=512)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    table: Any = asyncio.run(_run(args))
    sys.stdout.write(table)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

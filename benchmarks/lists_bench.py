"""What storing long lists in segments (`segment_lists`, on by default) costs and saves.

For each backend (sync savers of this package on the durable benchmark servers), one recorded
agent thread (`--steps` puts, the message list growing by one message per step, with its
`put_writes`) is replayed with `segment_lists` on and off:

- latency: on one saver, rounds of one block per setting, the order turning each round, each
  block a fresh thread: every `put` timed, then `--reads` reads of the thread's latest
  checkpoint (`get_tuple`, which LangGraph makes at the start of every run). Reported: the
  median put and read, each as a ratio to the whole-value setting of the same run;
- end to end: on one saver, rounds of one block per setting (the order turning), each block
  the agent graph compiled anew on the saver and run `--turns` turns on a fresh thread
  (`invoke`, durability "sync"): turns per second, the median round against whole values;
- storage: for each setting, a fresh isolated store holding only that thread, and the bytes
  it holds (SQLite: pages in use; PostgreSQL: table, TOAST and index bytes; Redis: `MEMORY
  USAGE` of its keys; memory: the bytes held), against the whole-value setting. Every
  checkpoint is read back and compared with the one recorded first.

    python -m benchmarks.lists_bench                 # sqlite, postgres-pool, redis
    python -m benchmarks.lists_bench --target memory sqlite --out benchmarks/results/lists.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

from checkpoint_base.testing.targets import Target

from ._env import git_commit
from ._graph import Recording, build_agent_graph, for_thread, record, turn_input
from ._handles import SaverHandle
from ._side import bytes_cells, durable_targets, main_of, open_ours, replay
from ._storage import saver_storage_bytes

SETTINGS = (True, False)


def _label(segments: bool) -> str:
    return "segments" if segments else "whole"


async def _reads(handle: SaverHandle, thread_id: str, n: int) -> list[float]:
    config = {"configurable": {"thread_id": thread_id}}
    seconds = []
    for _ in range(n):
        start = time.perf_counter()
        found = handle.saver.get_tuple(config)
        seconds.append(time.perf_counter() - start)
        assert found is not None
    return seconds


async def _latency(
    target: Target, rec: Recording, rounds: int, reads: int
) -> dict[bool, tuple[list[float], list[float]]]:
    samples: dict[bool, tuple[list[float], list[float]]] = {s: ([], []) for s in SETTINGS}
    async with contextlib.AsyncExitStack() as stack:
        handle = await open_ours(target, stack)
        await replay(handle, "warm-up", rec)
        for r in range(rounds):
            order = SETTINGS if r % 2 == 0 else SETTINGS[::-1]
            for segments in order:
                handle.saver.segment_lists = segments
                thread_id = f"lat-{r}-{_label(segments)}"
                samples[segments][0].extend(await replay(handle, thread_id, rec))
                samples[segments][1].extend(await _reads(handle, thread_id, reads))
        handle.saver.segment_lists = True
    return samples


def _turns(handle: SaverHandle, segments: bool, name: str, payload: int, turns: int) -> float:
    """Turns per second of the agent graph over `turns` turns of a fresh thread (durability
    "sync"), the saver storing lists as `segments` says."""
    handle.saver.segment_lists = segments
    graph = build_agent_graph(payload).compile(checkpointer=handle.saver)
    config: Any = {"configurable": {"thread_id": name}}
    start = time.perf_counter()
    for turn in range(turns):
        graph.invoke(turn_input(payload, turn), config, durability="sync")
    return turns / (time.perf_counter() - start)


async def _end_to_end(
    target: Target, payload: int, turns: int, rounds: int
) -> dict[bool, list[float]]:
    samples: dict[bool, list[float]] = {s: [] for s in SETTINGS}
    async with contextlib.AsyncExitStack() as stack:
        handle = await open_ours(target, stack)
        _turns(handle, True, "e2e-warm-up", payload, 2)
        for r in range(rounds):
            for segments in SETTINGS if r % 2 == 0 else SETTINGS[::-1]:
                name = f"e2e-{r}-{_label(segments)}"
                samples[segments].append(_turns(handle, segments, name, payload, turns))
        handle.saver.segment_lists = True
    return samples


async def _storage(target: Target, rec: Recording) -> dict[bool, int | None]:
    out: dict[bool, int | None] = {}
    for segments in SETTINGS:
        async with contextlib.AsyncExitStack() as stack:
            handle = await open_ours(target, stack)
            handle.saver.segment_lists = segments
            empty = await saver_storage_bytes(handle.saver)
            await replay(handle, "stored", rec)
            full = await saver_storage_bytes(handle.saver)
            _check(handle, rec)
            out[segments] = None if full is None or empty is None else full - empty
    return out


def _check(handle: SaverHandle, rec: Recording) -> None:
    """Every checkpoint of the stored thread reads back with the recorded values."""
    saver = handle.saver
    saver.segment_lists = not saver.segment_lists  # the reads must not lean on the cache
    for call in rec.puts:
        config = for_thread(call.config, "stored")
        config["configurable"]["checkpoint_id"] = call.checkpoint["id"]
        found = saver.get_tuple(config)
        assert found is not None, call.checkpoint["id"]
        values = found.checkpoint["channel_values"]
        expected = call.checkpoint["channel_values"]
        assert values == expected, f"checkpoint {call.checkpoint['id']} reads back changed"


async def _run(args: argparse.Namespace) -> str:
    steps, payload, rounds, reads, turns = (
        args.steps,
        args.payload,
        args.rounds,
        args.reads,
        args.turns,
    )
    rec = record(steps, payload)
    lines = [
        f"# Long lists in segments: put, read, end to end and storage ({steps} steps, "
        f"{payload}-character messages, {rounds} rounds, {reads} reads a round, "
        f"{turns}-turn threads, git {git_commit()})",
        "",
        "| target | setting | put median | vs whole | get_tuple latest median | vs whole "
        "| turns/s (median round) | vs whole | bytes | vs whole |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_targets(args.target) as targets:
        for target in targets:
            print(f"{target.name}: latency", file=sys.stderr)
            samples = await _latency(target, rec, rounds, reads)
            print(f"{target.name}: end to end", file=sys.stderr)
            rates = await _end_to_end(target, payload, turns, rounds)
            print(f"{target.name}: storage", file=sys.stderr)
            stored = await _storage(target, rec)
            rate0 = statistics.median(rates[False])
            put0 = statistics.median(samples[False][0])
            read0 = statistics.median(samples[False][1])
            for segments in SETTINGS:
                put = statistics.median(samples[segments][0])
                read = statistics.median(samples[segments][1])
                rate = statistics.median(rates[segments])
                lines.append(
                    f"| {target.name} | {_label(segments)} | {put * 1e6:.1f} µs "
                    f"| {put / put0:.2f}x | {read * 1e6:.1f} µs | {read / read0:.2f}x "
                    f"| {rate:.1f} | {rate / rate0:.2f}x "
                    f"| {bytes_cells(stored[segments], stored[False])} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m benchmarks.lists_bench"
    return main_of(prog, argv, _run, steps=200, payload=512, rounds=8, reads=20, turns=20)


if __name__ == "__main__":
    raise SystemExit(main())

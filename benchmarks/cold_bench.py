"""Reads as a graph meets them: back to back, and each one after a turn of other work.

LangGraph reads a thread's latest checkpoint (`get_tuple`) once at the start of every run,
after the application's and LangGraph's own work; a history view lists a page
(`list(limit=10)`) after serving the request that asked for it. The harness (`_w_ops`)
times reads in blocks, ten calls of one saver back to back, so from the second call on the
saver's code and the data it reads are in the CPU's caches. Here, for each backend (sync
savers of this package and the official savers of the same target, on the durable benchmark
servers), both reads of a `--steps`-checkpoint recorded agent thread are timed two ways in
each round:

- back to back: `--reads` calls of one saver, then of the other (the order turning each
  round), as the harness times them;
- after a turn: before each timed call, one turn of the benchmarks' agent graph compiled
  without a checkpointer runs, untimed (LangGraph and LangChain building and routing
  messages of `--payload` characters), and the savers take turns call by call.

Reported per read: the medians of each saver and the speed-up (official / ours, the median
of the rounds' ratios, as the harness decides its targets), for each way, and how much
slower our read is after a turn than back to back (the median of the rounds' ratios too:
a slow spell of the machine falls on both ways of a round). Every read is checked: the latest
checkpoint is found, a page holds ten checkpoints.

    python -m benchmarks.cold_bench                      # sqlite, postgres-pool, redis
    python -m benchmarks.cold_bench --target sqlite-memory --out benchmarks/results/cold.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any

from checkpoint_base.testing.targets import Target

from ._env import git_commit
from ._graph import Recording, build_agent_graph, record, turn_input
from ._handles import SaverHandle
from ._side import durable_targets, main_of, replay
from ._subjects import Subject

SAVERS = ("ours", "official")
WAYS = ("back to back", "after a turn")
READS = ("get_tuple latest", "list(limit=10)")

Samples = dict[tuple[str, str, str], list[list[float]]]
"""(read, way, saver) -> per round, the seconds of each timed call."""


def _read(saver: Any, name: str, thread_id: str, page: int) -> Callable[[], None]:
    """One read of `thread_id` by `saver`, checking what it returns."""
    config: Any = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
    if name == "get_tuple latest":

        def latest() -> None:
            if saver.get_tuple(config) is None:
                raise AssertionError(f"{type(saver).__name__}: the latest checkpoint is missing")

        return latest

    def listed() -> None:
        count = sum(1 for _ in saver.list(config, limit=10))
        if count != page:
            raise AssertionError(f"{type(saver).__name__}: a page of {count}, not {page}")

    return listed


def _timed(call: Callable[[], None]) -> float:
    start = time.perf_counter()
    call()
    return time.perf_counter() - start


def _round(
    reads: dict[str, dict[str, Callable[[], None]]],
    order: Sequence[str],
    count: int,
    other_work: Callable[[], None],
    samples: Samples,
) -> None:
    """One round: every read, back to back and after a turn, for the savers in `order`."""
    for name, by_saver in reads.items():
        for saver in order:
            call = by_saver[saver]
            samples[name, WAYS[0], saver].append([_timed(call) for _ in range(count)])
        after: dict[str, list[float]] = {saver: [] for saver in order}
        for _ in range(count):
            for saver in order:
                other_work()
                after[saver].append(_timed(by_saver[saver]))
        for saver in order:
            samples[name, WAYS[1], saver].append(after[saver])


async def _measure(
    target: Target, rec: Recording, rounds: int, count: int, payload: int
) -> Samples:
    samples: Samples = {(n, w, s): [] for n in READS for w in WAYS for s in SAVERS}
    graph = build_agent_graph(payload).compile()
    turns = iter(range(1 << 30))

    def other_work() -> None:
        graph.invoke(turn_input(payload, next(turns)))

    async with contextlib.AsyncExitStack() as stack:
        reads: dict[str, dict[str, Callable[[], None]]] = {n: {} for n in READS}
        for kind in SAVERS:
            handle = await Subject(target, "sync", kind).open(stack)
            assert isinstance(handle, SaverHandle)
            await replay(handle, "read", rec)
            for name in READS:
                reads[name][kind] = _read(handle.saver, name, "read", min(10, rec.steps))
        for name in READS:  # warm-up: connections, statements, classes
            for call in reads[name].values():
                other_work()
                call()
        for r in range(rounds):
            order = SAVERS if r % 2 == 0 else SAVERS[::-1]
            _round(reads, order, count, other_work, samples)
    return samples


def _per_round(slow: list[list[float]], fast: list[list[float]]) -> float:
    """The median over the rounds of `slow` / `fast` (each round's medians)."""
    return statistics.median(
        statistics.median(s) / statistics.median(f) for s, f in zip(slow, fast, strict=True)
    )


def _median(rounds: list[list[float]]) -> float:
    return statistics.median(s for r in rounds for s in r)


def _time(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"


def rows(target: str, samples: Samples) -> list[str]:
    """The table's rows for one target."""
    out = []
    for name in READS:
        cells = []
        for way in WAYS:
            ours = _median(samples[name, way, "ours"])
            theirs = _median(samples[name, way, "official"])
            speed_up = _per_round(samples[name, way, "official"], samples[name, way, "ours"])
            cells += [_time(ours), _time(theirs), f"{speed_up:.2f}x"]
        slowed = _per_round(samples[name, WAYS[1], "ours"], samples[name, WAYS[0], "ours"])
        out.append(f"| {target} | {name} | {' | '.join(cells)} | {slowed:.2f}x |")
    return out


async def _run(args: argparse.Namespace) -> str:
    rec = record(args.steps, args.payload)
    lines = [
        f"# Reads back to back and after a turn of other work ({args.steps} steps, "
        f"{args.payload}-character messages, {args.rounds} rounds of {args.reads} reads, "
        f"git {git_commit()})",
        "",
        "| target | read | ours, back to back | official | speed-up | ours, after a turn "
        "| official | speed-up | ours after a turn / back to back |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_targets(args.target) as targets:
        alone = [t.name for t in targets if t.official_sync is None]
        if alone:
            raise SystemExit(
                f"no official saver to compare with on {', '.join(alone)}: leave "
                f"{'it' if len(alone) == 1 else 'them'} out of --target"
            )
        for target in targets:
            print(f"{target.name}: reads", file=sys.stderr)
            samples = await _measure(target, rec, args.rounds, args.reads, args.payload)
            lines += rows(target.name, samples)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m benchmarks.cold_bench"
    return main_of(prog, argv, _run, steps=100, payload=512, rounds=7, reads=10)


if __name__ == "__main__":
    raise SystemExit(main())

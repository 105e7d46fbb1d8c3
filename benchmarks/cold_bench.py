"""Reads as a graph meets them: back to back, and each one after a turn of other work.

LangGraph reads a thread's latest checkpoint (`get_tuple`) once at the start of every run,
after the application's and LangGraph's own work; a history view lists a page
(`list(limit=10)`) after serving the request that asked for it. The harness (`_w_ops`)
times reads in blocks, ten calls of one saver back to back, so from the second call on the
saver's code and the data it reads are in the CPU's caches. Here, for each target and each
flavor of `--flavor`, our saver and the official saver of the same target (on the durable
benchmark servers) read a recorded agent thread of `--steps` checkpoints, timed two ways in
each round:

- back to back: `--reads` calls of one saver, then of the other (the order turning each
  round), as the harness times them;
- after a turn: before each timed call, one turn of the benchmarks' agent graph compiled
  without a checkpointer runs, untimed (`invoke`, or `ainvoke` for the async flavor:
  LangGraph and LangChain building and routing messages of `--payload` characters), and
  the savers take turns call by call.

Reported per read: the medians of each saver and the speed-up (official / ours, the median
of the rounds' ratios, as the harness decides its targets), for each way, and how much
slower our read is after a turn than back to back (the median of the rounds' ratios too:
a slow spell of the machine falls on both ways of a round). Every read is checked: the latest
checkpoint is found, a page holds ten checkpoints (all of a shorter thread).

    python -m benchmarks.cold_bench                      # sqlite, postgres-pool, redis
    python -m benchmarks.cold_bench --target sqlite-memory --flavor sync
    python -m benchmarks.cold_bench --target memory sqlite sqlite-full sqlite-memory postgres \
        postgres-pool postgres-pgbouncer redis valkey --out benchmarks/results/cold.md
"""

from __future__ import annotations

import argparse
import contextlib
import statistics
import sys
from collections.abc import Awaitable, Callable, Sequence

from checkpoint_base.testing.targets import Target

from ._env import git_commit
from ._graph import Recording, build_agent_graph, record, turn_input
from ._handles import SaverHandle
from ._report import _time
from ._runner import timed
from ._side import durable_targets, main_of, replay
from ._subjects import Subject

SAVERS = ("ours", "official")
WAYS = ("back to back", "after a turn")
READS = ("get_tuple latest", "list(limit=10)")

Samples = dict[tuple[str, str, str], list[list[float]]]
"""(read, way, saver) -> per round, the seconds of each timed call."""


Read = Callable[[], Awaitable[None]]


def _read(handle: SaverHandle, name: str, thread_id: str, page: int) -> Read:
    """One read of `thread_id` through `handle` (either flavor), checking what it returns."""
    saver = type(handle.saver).__name__
    if name == "get_tuple latest":

        async def latest() -> None:
            if not await handle.get(thread_id, None):
                raise AssertionError(f"{saver}: the latest checkpoint is missing")

        return latest

    async def listed() -> None:
        count = await handle.list(thread_id, 10, None)
        if count != page:
            raise AssertionError(f"{saver}: a page of {count}, not {page}")

    return listed


async def _timed(read: Read) -> float:
    """Seconds of one read (`timed`: the coroutine is made outside the clock)."""
    seconds, _ = await timed(read())
    return seconds


async def _round(
    reads: dict[str, dict[str, Read]],
    order: Sequence[str],
    count: int,
    other_work: Callable[[], Awaitable[None]],
    samples: Samples,
) -> None:
    """One round: every read, back to back and after a turn, for the savers in `order`."""
    for name, by_saver in reads.items():
        for saver in order:
            read = by_saver[saver]
            samples[name, WAYS[0], saver].append([await _timed(read) for _ in range(count)])
        after: dict[str, list[float]] = {saver: [] for saver in order}
        for _ in range(count):
            for saver in order:
                await other_work()
                after[saver].append(await _timed(by_saver[saver]))
        for saver in order:
            samples[name, WAYS[1], saver].append(after[saver])


async def _measure(
    target: Target, flavor: str, rec: Recording, rounds: int, count: int, payload: int
) -> Samples:
    samples: Samples = {(n, w, s): [] for n in READS for w in WAYS for s in SAVERS}
    graph = build_agent_graph(payload).compile()
    turns = iter(range(1 << 30))

    async def other_work() -> None:
        """A turn of the agent graph, in the flavor's way (`invoke` or `ainvoke`)."""
        if flavor == "sync":
            graph.invoke(turn_input(payload, next(turns)))
        else:
            await graph.ainvoke(turn_input(payload, next(turns)))

    async with contextlib.AsyncExitStack() as stack:
        reads: dict[str, dict[str, Read]] = {n: {} for n in READS}
        for kind in SAVERS:
            handle = await Subject(target, flavor, kind).open(stack)
            assert isinstance(handle, SaverHandle)
            await replay(handle, "read", rec)
            for name in READS:
                reads[name][kind] = _read(handle, name, "read", min(10, rec.steps))
        for name in READS:  # warm-up: connections, statements, classes
            for read in reads[name].values():
                await other_work()
                await read()
        for r in range(rounds):
            order = SAVERS if r % 2 == 0 else SAVERS[::-1]
            await _round(reads, order, count, other_work, samples)
    return samples


def _per_round(slow: list[list[float]], fast: list[list[float]]) -> float:
    """The median over the rounds of `slow` / `fast` (each round's medians)."""
    return statistics.median(
        statistics.median(s) / statistics.median(f) for s, f in zip(slow, fast, strict=True)
    )


def _median(rounds: list[list[float]]) -> float:
    return statistics.median(s for r in rounds for s in r)


def rows(target: str, flavor: str, samples: Samples) -> list[str]:
    """The table's rows for one target and flavor."""
    out = []
    for name in READS:
        cells = []
        for way in WAYS:
            ours = _median(samples[name, way, "ours"])
            theirs = _median(samples[name, way, "official"])
            speed_up = _per_round(samples[name, way, "official"], samples[name, way, "ours"])
            cells += [_time(ours), _time(theirs), f"{speed_up:.2f}x"]
        slowed = _per_round(samples[name, WAYS[1], "ours"], samples[name, WAYS[0], "ours"])
        out.append(f"| {target} | {flavor} | {name} | {' | '.join(cells)} | {slowed:.2f}x |")
    return out


async def _run(args: argparse.Namespace) -> str:
    rec = record(args.steps, args.payload)
    lines = [
        f"# Reads back to back and after a turn of other work ({args.steps} steps, "
        f"{args.payload}-character messages, {args.rounds} rounds of {args.reads} reads, "
        f"git {git_commit()})",
        "",
        "| target | flavor | read | ours, back to back | official | speed-up "
        "| ours, after a turn | official | speed-up | ours after a turn / back to back |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with durable_targets(args.target) as targets:
        alone = [
            f"{t.name} ({flavor})"
            for t in targets
            for flavor in args.flavor
            if (t.official_sync if flavor == "sync" else t.official_async) is None
        ]
        if alone:
            raise SystemExit(
                f"no official saver to compare with on {', '.join(alone)}: leave "
                f"{'it' if len(alone) == 1 else 'them'} out of --target"
            )
        for target in targets:
            for flavor in args.flavor:
                print(f"{target.name} {flavor}: reads", file=sys.stderr)
                samples = await _measure(target, flavor, rec, args.rounds, args.reads, args.payload)
                lines += rows(target.name, flavor, samples)
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    prog = "python -m benchmarks.cold_bench"
    return main_of(prog, argv, _run, flavors=True, steps=100, payload=512, rounds=7, reads=10)


if __name__ == "__main__":
    raise SystemExit(main())

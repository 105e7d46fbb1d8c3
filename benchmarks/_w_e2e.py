"""End-to-end: the agent graph compiled with each saver, invoked turn after turn.

Each round starts `threads` fresh threads and runs `turns` turns on each (the size's `e2e`
pairs: every pair at the first payload, the first pair at the other payloads), turn after
turn, one turn of every thread per block (`invoke` for the sync flavor, `ainvoke` for the
async one), with one of LangGraph's durability modes; the subjects take turns block by block
(`_runner.interleave`). Samples: seconds per turn, and turns per second of each round (its
turns over the time its blocks took). After each round one thread's state is read back and
checked (every message there).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Sequence
from typing import Any

from ._context import Context
from ._graph import build_agent_graph, turn_input
from ._handles import SaverHandle
from ._results import THROUGHPUT
from ._runner import Block, interleave, round_units
from ._subjects import Opened, Subject, open_subjects

__all__ = ["run", "units"]

WORKLOAD = "e2e"
MESSAGES_PER_TURN = 4  # human, AI tool call, tool result, AI answer


def _savers(subjects: Sequence[Subject]) -> list[Subject]:
    return [s for s in subjects if s.is_saver]


def _runs(ctx: Context) -> list[tuple[int, int, int]]:
    """(payload, threads, turns) of each run."""
    sizes = ctx.sizes
    first, *others = sizes.payloads
    return [(first, *pair) for pair in sizes.e2e] + [(p, *sizes.e2e[0]) for p in others]


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    per = round_units(ctx, len(_savers(subjects)))
    return per * len(ctx.sizes.durabilities) * len(_runs(ctx))


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure turns per second for every durability mode and run."""
    for payload, threads, turns in _runs(ctx):
        for durability in ctx.sizes.durabilities:
            async with contextlib.AsyncExitStack() as stack:
                ctx.progress.begin(
                    f"end-to-end: durability={durability} payload={payload} turns={turns}"
                )
                opened = await open_subjects(_savers(subjects), stack, ctx.results)
                await _measure(ctx, opened, durability, payload, threads, turns)


async def _measure(
    ctx: Context,
    opened: Sequence[Opened],
    durability: str,
    payload: int,
    threads: int,
    turns: int,
) -> None:
    params = {"durability": durability, "payload": payload, "turns": turns}
    graphs: dict[int, Any] = {}
    for o in opened:
        assert isinstance(o.handle, SaverHandle)
        graphs[id(o)] = build_agent_graph(payload).compile(checkpointer=o.handle.saver)

    # Each subject's state in the current round: its threads, turn times, time spent.
    rounds: dict[int, tuple[list[Any], list[float], list[float]]] = {}

    def turn_block(turn: int) -> Block:
        async def block(o: Opened, measured: bool) -> None:
            if turn == 0:
                configs = [
                    {"configurable": {"thread_id": ctx.thread_id("e2e")}} for _ in range(threads)
                ]
                rounds[id(o)] = (configs, [], [])
            configs, turn_seconds, spent = rounds[id(o)]
            graph = graphs[id(o)]
            block_start = time.perf_counter()
            for config in configs:
                message = turn_input(payload, turn)
                start = time.perf_counter()
                if o.handle.sync:
                    graph.invoke(message, config, durability=durability)
                else:
                    await graph.ainvoke(message, config, durability=durability)
                turn_seconds.append(time.perf_counter() - start)
            spent.append(time.perf_counter() - block_start)

        return block

    async def finish(o: Opened, measured: bool) -> None:
        configs, turn_seconds, spent = rounds.pop(id(o))
        if measured:
            for seconds in turn_seconds:
                ctx.results.add(WORKLOAD, "turn", params, o.id, seconds)
            ctx.results.add(
                WORKLOAD, "turns/s", params, o.id, len(turn_seconds) / sum(spent), THROUGHPUT
            )
        graph = graphs[id(o)]
        state = graph.get_state(configs[0]) if o.handle.sync else await graph.aget_state(configs[0])
        got = len(state.values.get("messages", []))
        want = MESSAGES_PER_TURN * turns
        if got != want:
            ctx.results.problem(
                f"{o.id.label} end-to-end {params}: {got} messages stored, expected {want}"
            )

    await interleave(ctx, opened, *(turn_block(t) for t in range(turns)), finish)

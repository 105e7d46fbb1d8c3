"""`stream(stream_mode=["checkpoints", "tasks", "updates"])` under each durability mode, on
every saver against `InMemorySaver`: the streamed checkpoints, what was stored, the resume."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.types import Command

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, ask_graph, linear_graph, new_thread, thread_config
from .harness import Harness
from .reference import assert_same_as_reference, stored

MODES = ["checkpoints", "tasks", "updates"]


@pytest.mark.parametrize("durability", ["exit", "async", "sync"])
async def test_stream_modes_with_interrupt_and_resume(h: Harness, durability: str) -> None:
    skip_async_interrupts(h.is_async)

    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        graph = ask_graph(runs).compile(checkpointer=r.saver)
        first = await r.stream(graph, {"log": []}, config, stream_mode=MODES, durability=durability)
        paused = await r.get_state(graph, config)
        fresh = ask_graph(runs).compile(checkpointer=r.saver)
        second = await r.stream(
            fresh, Command(resume="Ada"), config, stream_mode=MODES, durability=durability
        )
        return {
            "first": first,
            "paused": paused,
            "second": second,
            "history": await r.state_history(fresh, config),
            "runs": runs.snapshot(),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["runs"] == {"prepare": 1, "ask": 2}
    assert seen["history"][0]["snapshot"]["values"] == {"log": ["prepare1", "hello Ada"]}


@pytest.mark.parametrize("durability", ["exit", "sync"])
async def test_stream_modes_across_runs_and_a_fork(h: Harness, durability: str) -> None:
    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        graph = linear_graph(runs).compile(checkpointer=r.saver, interrupt_after=["b"])
        chunks = [
            await r.stream(graph, {"log": []}, config, stream_mode=MODES, durability=durability),
            await r.stream(graph, None, config, stream_mode=MODES, durability=durability),
        ]
        history = await r.state_history(graph, config)
        fork = await r.update_state(graph, history[-2].config, {"log": ["edit"]})
        chunks.append(await r.stream(graph, None, fork, stream_mode=MODES, durability=durability))
        return {
            "chunks": chunks,
            "history": await r.state_history(graph, config),
            "runs": runs.snapshot(),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    if durability == "sync":
        # The fork of the step-0 checkpoint reran a and b and stopped after b again.
        assert seen["runs"] == {"a": 2, "b": 2, "c": 1}
        assert seen["history"][0]["snapshot"]["values"] == {"log": ["edit", "a2", "b2"]}
    else:
        # With "exit" only run ends are stored: the oldest but one is the first run's end,
        # so the fork edits a finished state and nothing runs.
        assert seen["runs"] == {"a": 1, "b": 1, "c": 1}
        assert seen["history"][0]["snapshot"]["values"] == {"log": ["a1", "b1", "c1", "edit"]}

"""`update_state` as each kind of node, `bulk_update_state`, forks and history queries,
on every saver against LangGraph's `InMemorySaver`."""

from __future__ import annotations

from typing import Any

from langgraph.types import StateSnapshot, StateUpdate

from .graphs import Runs, linear_graph, new_thread, thread_config
from .harness import Harness
from .reference import assert_same_as_reference, stored


async def _queries(r: Harness, graph: Any, config: Any, history: list[StateSnapshot]) -> Any:
    """The history queries a user makes of a thread with branches."""
    middle = history[len(history) // 2].config
    return {
        "limit": await r.state_history(graph, config, limit=3),
        "before": await r.state_history(graph, config, before=middle),
        "before_limit": await r.state_history(graph, config, before=middle, limit=2),
        "updates": await r.state_history(graph, config, filter={"source": "update"}),
        "step_2": await r.state_history(graph, config, filter={"step": 2}),
        "forks": await r.state_history(graph, config, filter={"source": "fork", "step": 1}),
        "none": await r.state_history(graph, config, filter={"source": "nope"}),
        # A config that names a checkpoint lists that checkpoint only.
        "at": await r.state_history(graph, middle),
        "at_before": await r.state_history(graph, middle, before=history[0].config),
        "at_filtered": await r.state_history(graph, middle, filter={"source": "nope"}),
    }


async def test_bulk_update_state_and_update_as_node(h: Harness) -> None:
    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        graph = linear_graph(runs).compile(checkpointer=r.saver)
        # An empty thread is seeded in bulk: input, then two supersteps as nodes.
        seeded = await r.bulk_update_state(
            graph,
            config,
            [
                [StateUpdate({"log": ["in"]}, as_node="__input__")],
                [StateUpdate({"log": ["as-a"]}, as_node="a")],
                [StateUpdate({"log": ["b-1"]}, as_node="b"), StateUpdate({"log": ["b-2"]}, "b")],
            ],
        )
        after_bulk = await r.get_state(graph, seeded)
        finished = await r.invoke(graph, None, config)
        # `__copy__` copies the latest checkpoint as a new one; `as_node` moves it on.
        copied = await r.update_state(graph, config, None, as_node="__copy__")
        moved = await r.update_state(graph, config, {"log": ["again-a"]}, as_node="a")
        rerun = await r.invoke(graph, None, config)
        restarted = await r.update_state(graph, config, {"log": ["new"]}, as_node="__input__")
        last = await r.invoke(graph, None, config)
        history = await r.state_history(graph, config)
        return {
            "after_bulk": after_bulk,
            "finished": finished,
            "copied": await r.get_state(graph, copied),
            "moved": await r.get_state(graph, moved),
            "rerun": rerun,
            "restarted": await r.get_state(graph, restarted),
            "last": last,
            "runs": runs.snapshot(),
            "history": history,
            "queries": await _queries(r, graph, config, history),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["finished"] == {"log": ["as-a", "b-1", "b-2", "c1"]}
    assert seen["after_bulk"]["snapshot"]["next"] == {"tuple": ["c"]}
    assert seen["copied"]["snapshot"]["metadata"]["source"] == "fork"
    assert seen["runs"] == {"c": 3, "b": 2, "a": 1}


async def test_forks_of_old_checkpoints_and_history_queries(h: Harness) -> None:
    async def scenario(r: Harness) -> Any:
        runs = Runs()
        config = thread_config(new_thread())
        graph = linear_graph(runs).compile(checkpointer=r.saver)
        await r.invoke(graph, {"log": []}, config)
        original = await r.state_history(graph, config)
        after_a = next(s for s in original if s.next == ("b",))
        after_b = next(s for s in original if s.next == ("c",))
        results = [
            await r.invoke(graph, None, after_a.config),  # time travel: replay b and c
            await r.invoke(graph, None, after_b.config),  # and again from another point
        ]
        forked = await r.update_state(graph, after_a.config, {"log": ["edit"]})
        results.append(await r.invoke(graph, None, forked))
        # A fork of a fork, written as node b, skips b.
        fork_of_fork = await r.update_state(graph, forked, {"log": ["as-b"]}, as_node="b")
        results.append(await r.invoke(graph, None, fork_of_fork))
        # New input on the thread after all the branches starts from the newest checkpoint.
        results.append(await r.invoke(graph, {"log": ["more"]}, config))
        history = await r.state_history(graph, config)
        return {
            "results": results,
            "runs": runs.snapshot(),
            "history": history,
            "old_heads": [await r.get_state(graph, s.config) for s in original],
            "queries": await _queries(r, graph, config, history),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["results"][0] == {"log": ["a1", "b2", "c2"]}
    assert seen["results"][2] == {"log": ["a1", "edit", "b3", "c4"]}

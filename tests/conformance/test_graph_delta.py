"""A graph whose state lives in a `DeltaChannel`: rebuilt from ancestor writes, pruned safely."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from .graphs import checkpoint_id, new_thread
from .harness import Harness

delta = pytest.importorskip("langgraph.channels.delta", reason="this LangGraph has no DeltaChannel")
DeltaChannel = delta.DeltaChannel

SNAPSHOT_EVERY = 7


def extend(state: list[int], batches: Sequence[list[int]]) -> list[int]:
    """Batching-invariant reducer: concatenate every batch of writes."""
    return [*state, *(item for batch in batches for item in batch)]


class Counting(TypedDict):
    items: Annotated[list[int], DeltaChannel(extend, snapshot_frequency=SNAPSHOT_EVERY)]
    n: int
    stop: int


def counting_graph() -> StateGraph[Any]:
    """One node that loops: append `n` to `items`, until `n` reaches `stop`."""

    def step(state: Counting) -> dict[str, Any]:
        return {"items": [state["n"]], "n": state["n"] + 1}

    def again(state: Counting) -> str:
        return "step" if state["n"] < state["stop"] else END

    builder = StateGraph(Counting)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", again, ["step", END])
    return builder


def run_config(thread_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id}, "recursion_limit": 100}


def _stores_items(t: Any) -> bool:
    return "items" in t.checkpoint["channel_values"]


async def _assert_history_rebuilds(h: Harness, graph: Any, config: RunnableConfig) -> int:
    history = await h.state_history(graph, config)
    for snap in history:
        if "n" in snap.values:  # all but the very first input checkpoint
            assert snap.values["items"] == list(range(snap.values["n"])), snap.metadata
    return len(history)


async def test_graph_delta_channel_survives_many_steps_and_pruning(h: Harness) -> None:
    thread = new_thread()
    config = run_config(thread)
    graph = counting_graph().compile(checkpointer=h.saver)
    first = await h.invoke(graph, {"items": [], "n": 0, "stop": 25}, config)
    assert first == {"items": list(range(25)), "n": 25, "stop": 25}
    result = await h.invoke(graph, {"stop": 40}, config)
    assert result == {"items": list(range(40)), "n": 40, "stop": 40}

    # The channel is really stored as deltas: most checkpoints hold no value for it.
    stored = await h.list({"configurable": {"thread_id": thread}})
    snapshots = [t for t in stored if _stores_items(t)]
    assert 3 <= len(snapshots) < len(stored) // 3
    head = stored[0]
    assert not _stores_items(head)
    assert "items" in head.metadata["counters_since_delta_snapshot"]

    # A fresh graph instance rebuilds every checkpoint's value from the saver alone.
    fresh = counting_graph().compile(checkpointer=h.saver)
    state = await h.get_state(fresh, config)
    assert state.values == {"items": list(range(40)), "n": 40, "stop": 40}
    assert await _assert_history_rebuilds(h, fresh, config) == len(stored)
    histories = await h.delta_history(head.config, ["items"])
    seed = histories["items"].get("seed")
    seed_items = seed.value if seed is not None else []
    replayed = extend(seed_items, [v for _, _, v in histories["items"]["writes"]])
    assert replayed == list(range(40))

    # keep_latest keeps the head and its ancestors back to the nearest snapshot, no more.
    chain = []
    for t in stored:
        chain.append(checkpoint_id(t.config))
        if _stores_items(t):
            break
    assert len(chain) > 1
    await h.prune([thread], strategy="keep_latest")
    kept = await h.list({"configurable": {"thread_id": thread}})
    assert [checkpoint_id(t.config) for t in kept] == chain

    rebuilt = counting_graph().compile(checkpointer=h.saver)
    assert (await h.get_state(rebuilt, config)).values == state.values
    assert await _assert_history_rebuilds(h, rebuilt, config) == len(chain)

    # The pruned thread keeps running from where it was.
    result = await h.invoke(rebuilt, {"stop": 45}, config)
    assert result == {"items": list(range(45)), "n": 45, "stop": 45}
    again = counting_graph().compile(checkpointer=h.saver)
    assert (await h.get_state(again, config)).values["items"] == list(range(45))

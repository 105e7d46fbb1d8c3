"""Durability modes `exit`, `async` and `sync`: what is stored, and when it is stored."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from .graphs import LogState, Runs, checkpoint_id, new_thread, thread_config
from .harness import Harness

Seen = dict[str, "int | None"]


def observing_graph(h: Harness, seen: Seen, *, fail_in: str | None = None) -> StateGraph[Any]:
    """START -> a -> b -> c; each node records the step of the thread's latest stored checkpoint.

    Nodes read the saver through the flavor's own API (`aget_tuple` in async nodes for the
    async flavor), so the observation does not depend on a sync-over-async bridge.
    """
    failures = Runs()

    def latest_config(config: RunnableConfig) -> RunnableConfig:
        return thread_config(config["configurable"]["thread_id"])

    def record(name: str, stored: Any) -> dict[str, list[str]]:
        seen[name] = stored.metadata["step"] if stored is not None else None
        if name == fail_in and failures.hit(name) == 1:
            raise ValueError(f"{name} failed")
        return {"log": [name]}

    def make(name: str) -> Any:
        if h.is_async:

            async def anode(state: LogState, config: RunnableConfig) -> dict[str, list[str]]:
                return record(name, await h.saver.aget_tuple(latest_config(config)))

            return anode

        def node(state: LogState, config: RunnableConfig) -> dict[str, list[str]]:
            return record(name, h.saver.get_tuple(latest_config(config)))

        return node

    builder = StateGraph(LogState)
    for name in ("a", "b", "c"):
        builder.add_node(name, make(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder


async def test_graph_durability_exit_stores_only_the_final_checkpoint(h: Harness) -> None:
    seen: Seen = {}
    config = thread_config(new_thread())
    graph = observing_graph(h, seen).compile(checkpointer=h.saver)

    result = await h.invoke(graph, {"log": []}, config, durability="exit")
    assert result == {"log": ["a", "b", "c"]}
    assert seen == {"a": None, "b": None, "c": None}
    (only,) = await h.list(config)
    assert only.metadata["step"] == 3
    assert only.checkpoint["channel_values"]["log"] == ["a", "b", "c"]
    assert only.pending_writes == []

    # A second run adds exactly one checkpoint, whose parent is the first run's.
    result = await h.invoke(graph, {"log": ["again"]}, config, durability="exit")
    assert result == {"log": ["a", "b", "c", "again", "a", "b", "c"]}
    assert seen == {"a": 3, "b": 3, "c": 3}
    listed = await h.list(config)
    assert [t.metadata["step"] for t in listed] == [8, 3]
    assert listed[0].parent_config is not None
    assert checkpoint_id(listed[0].parent_config) == checkpoint_id(only.config)


async def test_graph_durability_exit_error_then_resume(h: Harness) -> None:
    seen: Seen = {}
    config = thread_config(new_thread())
    graph = observing_graph(h, seen, fail_in="b").compile(checkpointer=h.saver)

    with pytest.raises(ValueError, match="b failed"):
        await h.invoke(graph, {"log": []}, config, durability="exit")
    (stored,) = await h.list(config)
    assert stored.metadata["step"] == 1
    assert [ch for _, ch, _ in stored.pending_writes or []] == ["__error__"]
    state = await h.get_state(graph, config)
    assert state.values == {"log": ["a"]}
    assert state.next == ("b",)
    assert state.tasks[0].error is not None

    result = await h.invoke(graph, None, config, durability="exit")
    assert result == {"log": ["a", "b", "c"]}
    assert [t.metadata["step"] for t in await h.list(config)] == [3, 1]


async def test_graph_durability_async_stores_every_step(h: Harness) -> None:
    seen: Seen = {}
    config = thread_config(new_thread())
    graph = observing_graph(h, seen).compile(checkpointer=h.saver)

    result = await h.invoke(graph, {"log": []}, config, durability="async")
    assert result == {"log": ["a", "b", "c"]}
    # Saves run in the background: a node sees some earlier checkpoint, never its own step's.
    steps = {"a": 1, "b": 2, "c": 3}
    for name, step in steps.items():
        observed = seen[name]
        assert observed is None or -1 <= observed < step, (name, observed)
    listed = await h.list(config)
    assert [t.metadata["step"] for t in listed] == [3, 2, 1, 0, -1]
    assert [t.checkpoint["channel_values"].get("log") for t in listed[:4]] == [
        ["a", "b", "c"],
        ["a", "b"],
        ["a"],
        [],
    ]
    # Each task's writes are stored against the checkpoint it ran from.
    assert [[v for _, ch, v in t.pending_writes or [] if ch == "log"] for t in listed[:4]] == [
        [],
        [["c"]],
        [["b"]],
        [["a"]],
    ]


async def test_graph_durability_sync_stores_each_step_before_the_next(h: Harness) -> None:
    seen: Seen = {}
    config = thread_config(new_thread())
    graph = observing_graph(h, seen).compile(checkpointer=h.saver)

    result = await h.invoke(graph, {"log": []}, config, durability="sync")
    assert result == {"log": ["a", "b", "c"]}
    # The checkpoint a task runs from is stored before the task starts.
    assert seen == {"a": 0, "b": 1, "c": 2}
    listed = await h.list(config)
    assert [t.metadata["step"] for t in listed] == [3, 2, 1, 0, -1]
    assert [[v for _, ch, v in t.pending_writes or [] if ch == "log"] for t in listed[:4]] == [
        [],
        [["c"]],
        [["b"]],
        [["a"]],
    ]

"""Real graphs that stop for a human and resume: `interrupt()`, `interrupt_before/after`."""

from __future__ import annotations

from typing import Any

from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from ..langgraph_limits import skip_async_interrupts
from .graphs import (
    LogState,
    Runs,
    ask_graph,
    checkpoint_id,
    linear_graph,
    new_thread,
    thread_config,
)
from .harness import Harness

INTERRUPT = "__interrupt__"
RESUME = "__resume__"


def _writes(pending: list[Any], channel: str) -> list[tuple[str, Any]]:
    return [(task_id, value) for task_id, ch, value in pending if ch == channel]


async def test_graph_interrupt_and_resume(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()
    config = thread_config(new_thread())
    graph = ask_graph(runs).compile(checkpointer=h.saver)

    result = await h.invoke(graph, {"log": []}, config)
    assert result["log"] == ["prepare1"]
    assert [i.value for i in result[INTERRUPT]] == [{"question": "name?"}]

    state = await h.get_state(graph, config)
    assert state.next == ("ask",)
    assert state.values == {"log": ["prepare1"]}
    assert [i.value for t in state.tasks for i in t.interrupts] == [{"question": "name?"}]
    stored = await h.get_tuple(config)
    assert stored is not None
    interrupts = _writes(stored.pending_writes or [], INTERRUPT)
    assert [task for task, _ in interrupts] == [state.tasks[0].id]
    assert [i.value for i in interrupts[0][1]] == [{"question": "name?"}]

    # A freshly compiled graph knows only what the saver stored.
    resumed = ask_graph(runs).compile(checkpointer=h.saver)
    result = await h.invoke(resumed, Command(resume="Ada"), config)
    assert result == {"log": ["prepare1", "hello Ada"]}
    assert runs.snapshot() == {"prepare": 1, "ask": 2}

    final = await h.get_state(resumed, config)
    assert final.next == ()
    assert final.interrupts == ()
    latest = await h.get_tuple(config)
    assert latest is not None
    assert latest.pending_writes == []
    assert latest.parent_config is not None
    assert checkpoint_id(latest.parent_config) == checkpoint_id(state.config)
    interrupted = await h.get_tuple(state.config)
    assert interrupted is not None
    resumes = _writes(interrupted.pending_writes or [], RESUME)
    assert (state.tasks[0].id, ["Ada"]) in resumes
    assert (state.tasks[0].id, ["hello Ada"]) in _writes(interrupted.pending_writes or [], "log")


async def test_graph_interrupt_twice_in_one_node(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()

    def ask(state: LogState) -> dict[str, list[str]]:
        runs.hit("ask")
        first = interrupt("first?")
        second = interrupt("second?")
        return {"log": [f"{first}-{second}"]}

    builder = StateGraph(LogState)
    builder.add_node("ask", ask)
    builder.add_edge(START, "ask")
    graph = builder.compile(checkpointer=h.saver)
    config = thread_config(new_thread())

    result = await h.invoke(graph, {"log": []}, config)
    assert [i.value for i in result[INTERRUPT]] == ["first?"]
    result = await h.invoke(graph, Command(resume="x"), config)
    assert [i.value for i in result[INTERRUPT]] == ["second?"]
    result = await h.invoke(graph, Command(resume="y"), config)
    assert result == {"log": ["x-y"]}
    assert runs["ask"] == 3

    # The task's resume and interrupt writes are special writes: each one replaced the last.
    history = await h.list(config)
    assert [t.metadata["step"] for t in history] == [1, 0, -1]
    pending = history[1].pending_writes or []
    task_ids = {task for task, ch, _ in pending if ch == "log"}
    assert len(task_ids) == 1
    task = task_ids.pop()
    assert _writes(pending, RESUME).count((task, ["x", "y"])) == 1
    assert [v for t, v in _writes(pending, RESUME) if t == task] == [["x", "y"]]
    task_interrupts = [v for t, v in _writes(pending, INTERRUPT) if t == task]
    assert [[i.value for i in v] for v in task_interrupts] == [["second?"]]


async def test_graph_interrupt_before_edit_and_resume(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver, interrupt_before=["b"])

    result = await h.invoke(graph, {"log": []}, config)
    assert result == {"log": ["a1"]}
    paused = await h.get_state(graph, config)
    assert paused.next == ("b",)
    assert paused.metadata["step"] == 1

    edited = await h.update_state(graph, config, {"log": ["edited"]})
    edit = await h.get_tuple(edited)
    assert edit is not None
    assert edit.metadata["source"] == "update"
    assert edit.parent_config is not None
    assert checkpoint_id(edit.parent_config) == checkpoint_id(paused.config)
    assert (await h.get_state(graph, config)).next == ("b",)

    fresh = linear_graph(runs).compile(checkpointer=h.saver, interrupt_before=["b"])
    result = await h.invoke(fresh, None, config)
    assert result == {"log": ["a1", "edited", "b1", "c1"]}
    assert runs.snapshot() == {"a": 1, "b": 1, "c": 1}
    assert (await h.get_state(fresh, config)).next == ()


async def test_graph_interrupt_after_and_resume(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = linear_graph(runs).compile(checkpointer=h.saver, interrupt_after=["a", "b"])

    assert await h.invoke(graph, {"log": []}, config) == {"log": ["a1"]}
    assert (await h.get_state(graph, config)).next == ("b",)
    assert await h.invoke(graph, None, config) == {"log": ["a1", "b1"]}
    assert (await h.get_state(graph, config)).next == ("c",)
    assert await h.invoke(graph, None, config) == {"log": ["a1", "b1", "c1"]}
    assert runs.snapshot() == {"a": 1, "b": 1, "c": 1}
    steps = [t.metadata["step"] for t in await h.list(config)]
    assert steps == [3, 2, 1, 0, -1]

"""Subgraphs: checkpoints in child namespaces, nested state, interrupts deep inside."""

from __future__ import annotations

import operator
import uuid
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, checkpoint_id, new_thread, thread_config
from .harness import Harness


class Outer(TypedDict):
    log: Annotated[list[str], operator.add]
    answer: str


class Middle(TypedDict):
    answer: str
    steps: Annotated[list[str], operator.add]


class Inner(TypedDict):
    answer: str
    depth: Annotated[list[str], operator.add]


def nested_graph(runs: Runs, *, ask: bool) -> StateGraph[Any]:
    """prep -> sub(s1 -> inner(i1)) -> fin; `i1` interrupts when `ask`."""

    def i1(state: Inner) -> dict[str, Any]:
        runs.hit("i1")
        answer = interrupt("deep?") if ask else "auto"
        return {"depth": ["i1"], "answer": f"deep:{answer}"}

    inner = StateGraph(Inner)
    inner.add_node("i1", i1)
    inner.add_edge(START, "i1")

    def s1(state: Middle) -> dict[str, Any]:
        return {"steps": [f"s1-{runs.hit('s1')}"]}

    middle = StateGraph(Middle)
    middle.add_node("s1", s1)
    middle.add_node("inner", inner.compile())
    middle.add_edge(START, "s1")
    middle.add_edge("s1", "inner")

    def prep(state: Outer) -> dict[str, Any]:
        return {"log": [f"prep{runs.hit('prep')}"]}

    def fin(state: Outer) -> dict[str, Any]:
        runs.hit("fin")
        return {"log": [f"fin:{state['answer']}"]}

    outer = StateGraph(Outer)
    outer.add_node("prep", prep)
    outer.add_node("sub", middle.compile())
    outer.add_node("fin", fin)
    outer.add_edge(START, "prep")
    outer.add_edge("prep", "sub")
    outer.add_edge("sub", "fin")
    return outer


START_VALUE = {"log": [], "answer": ""}


async def _by_namespace(h: Harness, thread_id: str) -> dict[str, list[Any]]:
    found: dict[str, list[Any]] = {}
    for t in await h.list({"configurable": {"thread_id": thread_id}}):
        found.setdefault(t.config["configurable"]["checkpoint_ns"], []).append(t)
    return found


def _ns_config(thread_id: str, ns: str) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


async def test_graph_subgraph_interrupt_and_resume(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()
    thread = new_thread()
    config = thread_config(thread)
    graph = nested_graph(runs, ask=True).compile(checkpointer=h.saver)

    result = await h.invoke(graph, START_VALUE, config)
    assert result["log"] == ["prep1"]
    assert [i.value for i in result["__interrupt__"]] == ["deep?"]

    state = await h.get_state(graph, config, subgraphs=True)
    assert state.next == ("sub",)
    (sub_task,) = state.tasks
    middle = sub_task.state
    assert middle.values == {"answer": "", "steps": ["s1-1"]}
    assert middle.next == ("inner",)
    (inner_task,) = middle.tasks
    assert inner_task.state.values == {"answer": "", "depth": []}
    assert inner_task.state.next == ("i1",)
    assert [i.value for i in inner_task.state.interrupts] == ["deep?"]

    sub_ns = f"sub:{sub_task.id}"
    inner_ns = f"{sub_ns}|inner:{inner_task.id}"
    assert middle.config["configurable"]["checkpoint_ns"] == sub_ns
    assert inner_task.state.config["configurable"]["checkpoint_ns"] == inner_ns
    spaces = await _by_namespace(h, thread)
    assert set(spaces) == {"", sub_ns, inner_ns}
    assert [t.metadata["step"] for t in spaces[""]] == [1, 0, -1]
    assert [t.metadata["step"] for t in spaces[sub_ns]] == [1, 0, -1]
    assert [t.metadata["step"] for t in spaces[inner_ns]] == [0, -1]
    # A child checkpoint names the parent checkpoints it ran under.
    assert spaces[inner_ns][0].metadata["parents"] == {
        "": checkpoint_id(spaces[""][0].config),
        sub_ns: checkpoint_id(spaces[sub_ns][0].config),
    }

    fresh = nested_graph(runs, ask=True).compile(checkpointer=h.saver)
    result = await h.invoke(fresh, Command(resume="yes"), config)
    assert result == {"log": ["prep1", "fin:deep:yes"], "answer": "deep:yes"}
    assert runs.snapshot() == {"prep": 1, "s1": 1, "i1": 2, "fin": 1}
    sub_state = await h.get_state(fresh, _ns_config(thread, sub_ns))
    assert sub_state.values == {"answer": "deep:yes", "steps": ["s1-1"]}
    inner_state = await h.get_state(fresh, _ns_config(thread, inner_ns))
    assert inner_state.values == {"answer": "deep:yes", "depth": ["i1"]}
    assert (await h.get_state(fresh, config, subgraphs=True)).tasks == ()


async def test_graph_subgraph_checkpoints_in_child_namespaces(h: Harness) -> None:
    runs = Runs()
    thread = new_thread()
    graph = nested_graph(runs, ask=False).compile(checkpointer=h.saver)
    result = await h.invoke(graph, START_VALUE, thread_config(thread))
    assert result == {"log": ["prep1", "fin:deep:auto"], "answer": "deep:auto"}

    spaces = await _by_namespace(h, thread)
    assert len(spaces) == 3
    sub_ns = next(ns for ns in spaces if ns.startswith("sub:") and "|" not in ns)
    inner_ns = next(ns for ns in spaces if ns.startswith(f"{sub_ns}|inner:"))
    # Each namespace lists only its own checkpoints.
    for ns, listed in spaces.items():
        scoped = await h.list(_ns_config(thread, ns))
        assert [checkpoint_id(t.config) for t in scoped] == [
            checkpoint_id(t.config) for t in listed
        ]
    assert [t.metadata["step"] for t in spaces[""]] == [3, 2, 1, 0, -1]
    assert [t.metadata["step"] for t in spaces[sub_ns]] == [2, 1, 0, -1]
    assert [t.metadata["step"] for t in spaces[inner_ns]] == [1, 0, -1]
    # The root's latest is the root's, not a child's, although children were written later.
    root = await h.get_tuple(thread_config(thread))
    assert root is not None
    assert root.config["configurable"]["checkpoint_ns"] == ""
    assert checkpoint_id(root.config) == checkpoint_id(spaces[""][0].config)

    child_head = await h.get_tuple(_ns_config(thread, inner_ns))
    assert child_head is not None
    assert checkpoint_id(child_head.config) == checkpoint_id(spaces[inner_ns][0].config)
    assert child_head.checkpoint["channel_values"]["depth"] == ["i1"]
    older = spaces[sub_ns][1]
    again = await h.get_tuple(older.config)
    assert again is not None
    assert again.checkpoint["channel_values"]["steps"] == ["s1-1"]
    assert again.config["configurable"]["checkpoint_ns"] == sub_ns


async def test_graph_subgraph_copy_thread_resumes_copy(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()
    source, target = new_thread(), new_thread()
    graph = nested_graph(runs, ask=True).compile(checkpointer=h.saver)
    await h.invoke(graph, START_VALUE, thread_config(source))
    await h.copy_thread(source, target)

    src_spaces = await _by_namespace(h, source)
    dst_spaces = await _by_namespace(h, target)
    assert set(dst_spaces) == set(src_spaces)
    for ns, listed in src_spaces.items():
        assert [checkpoint_id(t.config) for t in dst_spaces[ns]] == [
            checkpoint_id(t.config) for t in listed
        ]
        assert [t.pending_writes for t in dst_spaces[ns]] == [t.pending_writes for t in listed]
    inner_ns = max(src_spaces, key=len)
    assert any(ch == "__interrupt__" for _, ch, _ in dst_spaces[inner_ns][0].pending_writes or [])

    result = await h.invoke(graph, Command(resume="copy"), thread_config(target))
    assert result == {"log": ["prep1", "fin:deep:copy"], "answer": "deep:copy"}
    src_state = await h.get_state(graph, thread_config(source), subgraphs=True)
    assert src_state.next == ("sub",)
    assert src_state.tasks[0].state.tasks[0].state.next == ("i1",)
    result = await h.invoke(graph, Command(resume="orig"), thread_config(source))
    assert result == {"log": ["prep1", "fin:deep:orig"], "answer": "deep:orig"}
    assert runs.snapshot() == {"prep": 1, "s1": 1, "i1": 3, "fin": 2}


async def test_graph_subgraph_delete_for_runs_covers_child_namespaces(h: Harness) -> None:
    runs = Runs()
    thread = new_thread()
    graph = nested_graph(runs, ask=False).compile(checkpointer=h.saver)
    first, second = str(uuid.uuid4()), str(uuid.uuid4())

    def run(run_id: str) -> RunnableConfig:
        return {"configurable": {"thread_id": thread}, "metadata": {"run_id": run_id}}

    await h.invoke(graph, START_VALUE, run(first))
    after_first = await _by_namespace(h, thread)
    await h.invoke(graph, {"log": ["again"]}, run(second))
    after_second = await _by_namespace(h, thread)
    assert len(after_second) == 5  # the second run's subgraphs got namespaces of their own
    assert {t.metadata["run_id"] for ts in after_second.values() for t in ts} == {first, second}

    await h.delete_for_runs([second])
    remaining = await _by_namespace(h, thread)
    assert set(remaining) == set(after_first)
    for ns, listed in after_first.items():
        assert [checkpoint_id(t.config) for t in remaining[ns]] == [
            checkpoint_id(t.config) for t in listed
        ]
    state = await h.get_state(graph, thread_config(thread))
    assert state.values == {"log": ["prep1", "fin:deep:auto"], "answer": "deep:auto"}

"""`Send` fan-out: parallel tasks into a reducer, pending sends across an interrupt."""

from __future__ import annotations

import operator
import time
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, new_thread, thread_config
from .harness import Harness

TASKS = "__pregel_tasks"
ITEMS = [5, 3, 8, 1, 4]


class MapState(TypedDict):
    items: list[int]
    results: Annotated[list[str], operator.add]
    total: int


class Job(TypedDict):
    item: int


def map_reduce(runs: Runs, *, ask_for: int | None = None) -> StateGraph[Any]:
    """plan -> Send(work, item) per item -> reduce; `work` asks a human for `ask_for`."""

    def plan(state: MapState) -> dict[str, Any]:
        runs.hit("plan")
        return {}

    def fan_out(state: MapState) -> list[Send]:
        return [Send("work", {"item": i}) for i in state["items"]]

    def work(state: Job) -> dict[str, Any]:
        item = state["item"]
        runs.hit(f"work-{item}")
        # Bigger items sleep longer, so tasks finish in another order than they were sent.
        time.sleep(0.002 * item)
        note = interrupt(f"note for {item}?") if item == ask_for else "auto"
        return {"results": [f"{item}:{note}"]}

    def reduce(state: MapState) -> dict[str, Any]:
        runs.hit("reduce")
        return {"total": sum(int(r.split(":")[0]) for r in state["results"])}

    builder = StateGraph(MapState)
    builder.add_node("plan", plan)
    builder.add_node("work", work, input_schema=Job)
    builder.add_node("reduce", reduce)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["work"])
    builder.add_edge("work", "reduce")
    builder.add_edge("reduce", END)
    return builder


START_VALUE = {"items": ITEMS, "results": [], "total": 0}


async def test_graph_send_fan_out_reduces_in_send_order(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = map_reduce(runs).compile(checkpointer=h.saver)

    result = await h.invoke(graph, START_VALUE, config)
    assert result["results"] == [f"{i}:auto" for i in ITEMS]
    assert result["total"] == sum(ITEMS)
    assert runs.snapshot() == {"plan": 1, "reduce": 1, **{f"work-{i}": 1 for i in ITEMS}}

    history = await h.list(config)
    # input, start, plan, the five parallel work tasks (one step), reduce.
    assert [t.metadata["step"] for t in history] == [3, 2, 1, 0, -1]
    fanned = next(t for t in history if t.metadata["step"] == 1)
    assert fanned.checkpoint["channel_values"][TASKS] == [Send("work", {"item": i}) for i in ITEMS]
    work_writes = [(task, v) for task, ch, v in fanned.pending_writes or [] if ch == "results"]
    assert len({task for task, _ in work_writes}) == len(ITEMS)
    assert sorted(v[0] for _, v in work_writes) == sorted(f"{i}:auto" for i in ITEMS)


async def test_graph_send_pending_sends_survive_interrupt_before(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = map_reduce(runs).compile(checkpointer=h.saver, interrupt_before=["work"])

    result = await h.invoke(graph, START_VALUE, config)
    assert result["results"] == []
    state = await h.get_state(graph, config)
    assert state.next == ("work",) * len(ITEMS)
    stored = await h.get_tuple(config)
    assert stored is not None
    assert stored.checkpoint["channel_values"][TASKS] == [Send("work", {"item": i}) for i in ITEMS]
    assert not any(runs[f"work-{i}"] for i in ITEMS)

    fresh = map_reduce(runs).compile(checkpointer=h.saver, interrupt_before=["work"])
    result = await h.invoke(fresh, None, config)
    assert result["results"] == [f"{i}:auto" for i in ITEMS]
    assert result["total"] == sum(ITEMS)
    assert runs.snapshot() == {"plan": 1, "reduce": 1, **{f"work-{i}": 1 for i in ITEMS}}


async def test_graph_send_interrupt_in_one_task_keeps_the_others(h: Harness) -> None:
    skip_async_interrupts(h.is_async)
    runs = Runs()
    config = thread_config(new_thread())
    graph = map_reduce(runs, ask_for=8).compile(checkpointer=h.saver)

    result = await h.invoke(graph, START_VALUE, config)
    assert [i.value for i in result["__interrupt__"]] == ["note for 8?"]
    stored = await h.get_tuple(config)
    assert stored is not None
    done = sorted(v[0] for _, ch, v in stored.pending_writes or [] if ch == "results")
    assert done == sorted(f"{i}:auto" for i in ITEMS if i != 8)
    state = await h.get_state(graph, config)
    assert [t.name for t in state.tasks] == ["work"] * len(ITEMS)
    assert [bool(t.interrupts) for t in state.tasks] == [i == 8 for i in ITEMS]

    fresh = map_reduce(runs, ask_for=8).compile(checkpointer=h.saver)
    result = await h.invoke(fresh, Command(resume="human"), config)
    assert result["results"] == [f"{i}:{'human' if i == 8 else 'auto'}" for i in ITEMS]
    assert result["total"] == sum(ITEMS)
    # Only the interrupted task ran again; its siblings' writes came from the saver.
    assert runs.snapshot() == {
        "plan": 1,
        "reduce": 1,
        **{f"work-{i}": 2 if i == 8 else 1 for i in ITEMS},
    }

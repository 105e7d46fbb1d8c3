"""Subgraph state on every saver against `InMemorySaver`: `get_state(subgraphs=True)`, the
history of a subgraph's namespace, and `Command(graph=Command.PARENT)` from inside one."""

from __future__ import annotations

import operator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import START, StateGraph
from langgraph.types import Command, interrupt

from ..langgraph_limits import skip_async_interrupts
from .graphs import Runs, new_thread, thread_config
from .harness import Harness
from .reference import assert_same_as_reference, stored


class Parent(TypedDict):
    log: Annotated[list[str], operator.add]
    route: str


class Child(TypedDict):
    log: Annotated[list[str], operator.add]
    notes: Annotated[list[str], operator.add]


def routing_graph(runs: Runs) -> StateGraph[Any]:
    """start -> child(note -> ask -> hop) -> left | right.

    `ask` interrupts; `hop` jumps to a node of the parent with `Command.PARENT`, updating the
    parent's state, so the child never finishes on its own.
    """

    def note(state: Child) -> dict[str, Any]:
        return {"notes": [f"note{runs.hit('note')}"]}

    def ask(state: Child) -> dict[str, Any]:
        runs.hit("ask")
        return {"notes": [f"answer:{interrupt('where?')}"]}

    def hop(state: Child) -> Command[Any]:
        runs.hit("hop")
        where = state["notes"][-1].removeprefix("answer:")
        return Command(
            goto=where, update={"log": [f"hop:{where}"], "route": where}, graph=Command.PARENT
        )

    child = StateGraph(Child)
    child.add_node("note", note)
    child.add_node("ask", ask)
    child.add_node("hop", hop)
    child.add_edge(START, "note")
    child.add_edge("note", "ask")
    child.add_edge("ask", "hop")

    def begin(state: Parent) -> dict[str, Any]:
        return {"log": [f"begin{runs.hit('begin')}"]}

    def side(name: str) -> Any:
        def node(state: Parent) -> dict[str, Any]:
            return {"log": [f"{name}{runs.hit(name)}:{state['route']}"]}

        return node

    parent = StateGraph(Parent)
    parent.add_node("begin", begin)
    parent.add_node("left", side("left"))
    parent.add_node("right", side("right"))
    parent.add_node("child", child.compile(), destinations=("left", "right"))
    parent.add_edge(START, "begin")
    parent.add_edge("begin", "child")
    return parent


@pytest.mark.parametrize("durability", ["exit", "async"])
async def test_subgraph_state_history_and_command_parent(h: Harness, durability: str) -> None:
    skip_async_interrupts(h.is_async)

    async def scenario(r: Harness) -> Any:
        runs = Runs()
        thread = new_thread()
        config = thread_config(thread)
        graph = routing_graph(runs).compile(checkpointer=r.saver)
        first = await r.invoke(graph, {"log": [], "route": ""}, config, durability=durability)
        paused = await r.get_state(graph, config, subgraphs=True)
        child_config = paused.tasks[0].state.config
        child_history = await r.state_history(graph, child_config)
        child_state = await r.get_state(graph, child_config)
        fresh = routing_graph(runs).compile(checkpointer=r.saver)
        done = await r.invoke(fresh, Command(resume="right"), config, durability=durability)
        return {
            "first": first,
            "paused": paused,
            "child_history": child_history,
            "child_state": child_state,
            "done": done,
            "after": await r.get_state(fresh, config, subgraphs=True),
            "child_after": await r.state_history(fresh, child_config),
            "history": await r.state_history(fresh, config),
            "runs": runs.snapshot(),
            "stored": await stored(r, config),
        }

    seen = await assert_same_as_reference(h, scenario)
    assert seen["done"] == {"log": ["begin1", "hop:right", "right1:right"], "route": "right"}
    assert seen["runs"] == {"begin": 1, "note": 1, "ask": 2, "hop": 1, "right": 1}


def memo_graph(runs: Runs) -> StateGraph[Any]:
    """start -> memo(remember -> confirm), a subgraph compiled with `checkpointer=True`.

    Such a subgraph keeps its own thread in the namespace `memo` (no task id), so what it
    stored in one run is its state at the start of the next.
    """

    def remember(state: Child) -> dict[str, Any]:
        return {"notes": [f"seen {len(state['notes'])}:{runs.hit('remember')}"]}

    def confirm(state: Child) -> dict[str, Any]:
        runs.hit("confirm")
        return {"notes": [f"ok:{interrupt(len(state['notes']))}"]}

    child = StateGraph(Child)
    child.add_node("remember", remember)
    child.add_node("confirm", confirm)
    child.add_edge(START, "remember")
    child.add_edge("remember", "confirm")

    def done(state: Parent) -> dict[str, Any]:
        return {"log": [f"done{runs.hit('done')}"]}

    parent = StateGraph(Parent)
    parent.add_node("memo", child.compile(checkpointer=True))
    parent.add_node("done", done)
    parent.add_edge(START, "memo")
    parent.add_edge("memo", "done")
    return parent


async def test_stateful_subgraph_and_update_of_a_paused_subgraph(h: Harness) -> None:
    skip_async_interrupts(h.is_async)

    async def scenario(r: Harness) -> Any:
        runs = Runs()
        thread = new_thread()
        config = thread_config(thread)
        graph = memo_graph(runs).compile(checkpointer=r.saver)
        observed: dict[str, Any] = {"results": []}
        for turn in range(2):
            observed["results"].append(
                await r.invoke(graph, {"log": [f"turn{turn}"], "route": ""}, config)
            )
            paused = await r.get_state(graph, config, subgraphs=True)
            observed[f"paused{turn}"] = paused
            # A human edits the paused subgraph's own state through its config.
            child_config = paused.tasks[0].state.config
            edited = await r.update_state(graph, child_config, {"notes": [f"human{turn}"]})
            observed[f"edited{turn}"] = await r.get_state(graph, edited)
            fresh = memo_graph(runs).compile(checkpointer=r.saver)
            observed["results"].append(await r.invoke(fresh, Command(resume=turn), config))
        child_ns = {"configurable": {"thread_id": thread, "checkpoint_ns": "memo"}}
        observed["child_history"] = await r.state_history(graph, child_ns)
        observed["child_updates"] = await r.state_history(
            graph, child_ns, filter={"source": "update"}, limit=1
        )
        observed["history"] = await r.state_history(graph, config)
        observed["runs"] = runs.snapshot()
        observed["stored"] = await stored(r, config)
        return observed

    seen = await assert_same_as_reference(h, scenario)
    assert seen["runs"] == {"remember": 2, "confirm": 4, "done": 2}
    # The second run's subgraph started from what the first one stored, human edit included.
    assert seen["child_history"][0]["snapshot"]["values"]["notes"] == [
        *["seen 0:1", "human0", "ok:0"],
        *["seen 3:2", "human1", "ok:1"],
    ]
    assert [s["snapshot"]["metadata"]["step"] for s in seen["child_updates"]] == [7]

"""Graphs running at once through one saver: threads of a process (sync flavor) or tasks of
one event loop (async flavor), each on a conversation of its own, every call of each running
while the others' run. Each conversation must end whole: every turn's values, a history of
one linear chain of checkpoints, nothing of another conversation."""

from __future__ import annotations

import asyncio
import operator
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, Any, TypedDict

from langgraph.graph import StateGraph

from .graphs import chain_graph, checkpoint_id, new_thread, thread_config
from .harness import Harness

CONVERSATIONS = 6
TURNS = 3
NODES = ("a", "b", "c")
# The input, the step that takes it in (START), one per node (InMemorySaver stores as many).
CHECKPOINTS_PER_TURN = 2 + len(NODES)


class State(TypedDict):
    log: Annotated[list[str], operator.add]
    who: str


def _graph() -> StateGraph[Any]:
    """START -> a -> b -> c -> END; each node appends its name and the conversation's."""

    def make(name: str) -> Any:
        def node(state: State) -> dict[str, list[str]]:
            return {"log": [f"{name}:{state['who']}"]}

        return node

    return chain_graph(State, NODES, make)


def _expected(who: str, turns: int) -> list[str]:
    return [x for t in range(turns) for x in (f"in{t}:{who}", *(f"{n}:{who}" for n in NODES))]


async def test_graphs_running_at_once_each_end_whole(h: Harness) -> None:
    graph = _graph().compile(checkpointer=h.saver)
    threads = {f"c{i}": new_thread() for i in range(CONVERSATIONS)}

    def turn_input(who: str, turn: int) -> dict[str, Any]:
        return {"log": [f"in{turn}:{who}"], "who": who}

    if h.is_async:

        async def converse(who: str) -> None:
            for turn in range(TURNS):
                await graph.ainvoke(turn_input(who, turn), thread_config(threads[who]))

        await asyncio.gather(*(converse(who) for who in threads))
    else:
        start = threading.Barrier(CONVERSATIONS)

        def converse_sync(who: str) -> None:
            start.wait()
            for turn in range(TURNS):
                graph.invoke(turn_input(who, turn), thread_config(threads[who]))

        with ThreadPoolExecutor(CONVERSATIONS) as pool:
            for done in [pool.submit(converse_sync, who) for who in threads]:
                done.result()  # raises what a conversation raised

    seen: set[str] = set()
    for who, thread_id in threads.items():
        config = thread_config(thread_id)
        state = await h.get_state(graph, config)
        assert state.values == {"log": _expected(who, TURNS), "who": who}
        assert state.next == ()
        history = await h.list(config)
        assert len(history) == CHECKPOINTS_PER_TURN * TURNS
        assert {t.config["configurable"]["thread_id"] for t in history} == {thread_id}
        ids = [checkpoint_id(t.config) for t in history]
        parents = [checkpoint_id(t.parent_config) if t.parent_config else None for t in history]
        assert parents == [*ids[1:], None]  # one chain, newest first
        assert not set(ids) & seen
        seen |= set(ids)
        steps = [t.metadata["step"] for t in history]
        assert steps == sorted(steps, reverse=True)

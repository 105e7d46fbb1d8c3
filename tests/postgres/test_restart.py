"""PostgreSQL restarts in the middle of a real LangGraph run: nothing is lost.

The server is restarted from inside a node (so the restart falls at a known step); every
connection the saver held dies with it. The run either goes on transparently, or, when the
process "crashes" at that step, a new saver resumes it from its last checkpoint.
"""

from __future__ import annotations

import operator
from collections import Counter
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph

from checkpoint_base.testing import servers

from .conftest import Opened, own_postgres, unique

pytestmark = pytest.mark.skipif(
    not own_postgres(), reason="restarting needs a PostgreSQL server this test run started"
)

STEPS = 8
RESTART_AT = 4


class State(TypedDict):
    steps: Annotated[list[int], operator.add]


class Crash(RuntimeError):
    """The process dies at this step (first attempt only)."""


def build(runs: Counter[int], crash: bool) -> StateGraph:
    def work(state: State) -> dict[str, Any]:
        step = len(state["steps"])
        runs[step] += 1
        if step == RESTART_AT and runs[step] == 1:
            servers.restart_postgres()
            if crash:
                raise Crash(f"crashed at step {step}")
        return {"steps": [step]}

    def route(state: State) -> str:
        return "work" if len(state["steps"]) < STEPS else END

    builder = StateGraph(State)
    builder.add_node("work", work)
    builder.add_edge(START, "work")
    builder.add_conditional_edges("work", route, ["work", END])
    return builder


async def _history_steps(opened: Opened, cfg: RunnableConfig) -> list[int]:
    listed = await opened.h.list(cfg)
    return sorted(t.metadata["step"] for t in listed)


@pytest.mark.parametrize("durability", ["sync", "async"])
async def test_run_goes_on_across_a_restart(opened: Opened, durability: str) -> None:
    runs: Counter[int] = Counter()
    graph = build(runs, crash=False).compile(checkpointer=opened.saver)
    cfg: RunnableConfig = {"configurable": {"thread_id": unique()}}

    result = await opened.h.invoke(graph, {"steps": []}, cfg, durability=durability)

    assert result["steps"] == list(range(STEPS))
    assert runs == Counter(range(STEPS))  # every step ran once: no failure, no replay
    state = await opened.h.get_state(graph, cfg)
    assert state.values["steps"] == list(range(STEPS)) and state.next == ()
    # One checkpoint per step (input -1, loop 0..STEPS), none lost around the restart.
    assert await _history_steps(opened, cfg) == list(range(-1, STEPS + 1))


async def test_crashed_run_resumes_from_its_last_checkpoint(opened: Opened, schema: str) -> None:
    runs: Counter[int] = Counter()
    cfg: RunnableConfig = {"configurable": {"thread_id": unique()}}
    graph = build(runs, crash=True).compile(checkpointer=opened.saver)
    with pytest.raises(Crash):
        await opened.h.invoke(graph, {"steps": []}, cfg, durability="sync")

    # A new process: new connections (the old ones died in the restart), same schema.
    await opened.close()
    fresh = Opened(opened.kind, opened.flavor, schema)
    await fresh.open()
    try:
        graph = build(runs, crash=True).compile(checkpointer=fresh.saver)
        before = await fresh.h.get_state(graph, cfg)
        assert before.values["steps"] == list(range(RESTART_AT))  # the last checkpoint
        assert before.next == ("work",)

        result = await fresh.h.invoke(graph, None, cfg, durability="sync")

        assert result["steps"] == list(range(STEPS))
        # Steps before the crash were not run again; the crashed step ran twice.
        assert runs == Counter({**dict.fromkeys(range(STEPS), 1), RESTART_AT: 2})
        assert await _history_steps(fresh, cfg) == list(range(-1, STEPS + 1))
    finally:
        await fresh.close()

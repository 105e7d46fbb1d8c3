"""A node fails; the run resumes without re-running the tasks that succeeded."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from langgraph.graph import END, START, StateGraph

from .graphs import LogState, Runs, new_thread, thread_config
from .harness import Harness

ERROR = "__error__"


def parallel_graph(runs: Runs, *, failures: int) -> StateGraph[Any]:
    """START -> (steady, flaky) in parallel -> join; `flaky` fails its first `failures` runs."""

    steady_done = threading.Event()

    def steady(state: LogState) -> dict[str, list[str]]:
        run = runs.hit("steady")
        steady_done.set()
        return {"log": [f"steady{run}"]}

    def flaky(state: LogState) -> dict[str, list[str]]:
        attempt = runs.hit("flaky")
        if attempt == 1:
            # A failure cancels the step's unfinished tasks: fail only once `steady` has
            # returned and its writes had time to be committed, as the test expects.
            assert steady_done.wait(5), "steady never ran"
            time.sleep(0.05)
        if attempt <= failures:
            raise ValueError(f"flaky attempt {attempt}")
        return {"log": [f"flaky{attempt}"]}

    def join(state: LogState) -> dict[str, list[str]]:
        return {"log": [f"join{runs.hit('join')}"]}

    builder = StateGraph(LogState)
    builder.add_node("steady", steady)
    builder.add_node("flaky", flaky)
    builder.add_node("join", join)
    builder.add_edge(START, "steady")
    builder.add_edge(START, "flaky")
    builder.add_edge(["steady", "flaky"], "join")
    builder.add_edge("join", END)
    return builder


async def test_graph_error_then_resume_keeps_successful_writes(h: Harness) -> None:
    runs = Runs()
    config = thread_config(new_thread())
    graph = parallel_graph(runs, failures=2).compile(checkpointer=h.saver)

    with pytest.raises(ValueError, match="flaky attempt 1"):
        await h.invoke(graph, {"log": []}, config)
    stored = await h.get_tuple(config)
    assert stored is not None
    assert stored.metadata["step"] == 0
    writes = stored.pending_writes or []
    assert [v for _, ch, v in writes if ch == "log"] == [["steady1"]]
    errors = [(task, v) for task, ch, v in writes if ch == ERROR]
    assert len(errors) == 1
    assert "flaky attempt 1" in str(errors[0][1])
    state = await h.get_state(graph, config)
    assert {t.name: t.error is not None for t in state.tasks} == {"steady": False, "flaky": True}
    assert state.next == ("flaky",)

    # A second failure replaces the task's error write; the steady write is still the first.
    with pytest.raises(ValueError, match="flaky attempt 2"):
        await h.invoke(graph, None, config)
    stored = await h.get_tuple(config)
    assert stored is not None
    writes = stored.pending_writes or []
    assert [v for _, ch, v in writes if ch == "log"] == [["steady1"]]
    errors = [(task, v) for task, ch, v in writes if ch == ERROR]
    assert len(errors) == 1
    assert "flaky attempt 2" in str(errors[0][1])

    fresh = parallel_graph(runs, failures=2).compile(checkpointer=h.saver)
    result = await h.invoke(fresh, None, config)
    # Writes apply in task order, not finishing order: deterministic on every backend.
    assert result == {"log": ["flaky3", "steady1", "join1"]}
    assert runs.snapshot() == {"steady": 1, "flaky": 3, "join": 1}
    assert [t.metadata["step"] for t in await h.list(config)] == [2, 1, 0, -1]

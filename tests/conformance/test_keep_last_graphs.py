"""`keep_last` under a real LangGraph graph: a subgraph that interrupts, `Send` fan-out with a
task that fails once (raised, or retried), every durability. The scenario runs on the same
saver with `keep_last=None` (the reference) and with `keep_last` 1, 2, 3: everything the graph
returns or shows must be the same, and each namespace must hold no more than the bound."""

from __future__ import annotations

import operator
import threading
import time
from collections.abc import Iterator
from typing import Annotated, Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, RetryPolicy, Send, interrupt

from .graphs import Runs, new_thread, thread_config
from .harness import Harness


@pytest.fixture
def keep(h: Harness) -> Iterator[Harness]:
    before = h.saver.keep_last
    yield h
    h.saver.keep_last = before


class Flaky:
    """Fails the first call for each key it is told to fail on, once the others are done
    (so which tasks' writes were stored when it failed does not depend on timing)."""

    def __init__(self, keys: set[str], others: int) -> None:
        self.pending = set(keys)
        self.others = others
        self.done = threading.Semaphore(0)

    def maybe_fail(self, key: str) -> None:
        if key in self.pending:
            self.pending.discard(key)
            for _ in range(self.others):
                assert self.done.acquire(timeout=10)
            time.sleep(0.02)  # their writes committed
            raise RuntimeError(f"flaky {key}")
        self.done.release()


class Outer(TypedDict):
    items: list[int]
    results: Annotated[list[str], operator.add]
    log: Annotated[list[str], operator.add]
    answer: str


class Inner(TypedDict):
    answer: str
    steps: Annotated[list[str], operator.add]


class Job(TypedDict):
    item: int


def big_graph(runs: Runs, flaky: Flaky, *, retry: bool) -> StateGraph[Any]:
    """plan -> Send(work) per item -> sub (s1 -> ask, interrupts) -> fin."""

    def s1(state: Inner) -> dict[str, Any]:
        return {"steps": [f"s1-{runs.hit('s1')}"]}

    def ask(state: Inner) -> dict[str, Any]:
        runs.hit("ask")
        answer = interrupt({"q": "answer?"})
        return {"steps": ["ask"], "answer": f"sub:{answer}"}

    inner = StateGraph(Inner)
    inner.add_node("s1", s1)
    inner.add_node("ask", ask)
    inner.add_edge(START, "s1")
    inner.add_edge("s1", "ask")

    def plan(state: Outer) -> dict[str, Any]:
        return {"log": [f"plan{runs.hit('plan')}"]}

    def fan_out(state: Outer) -> list[Send]:
        return [Send("work", {"item": i}) for i in state["items"]]

    def work(state: Job) -> dict[str, Any]:
        item = state["item"]
        runs.hit(f"work-{item}")
        flaky.maybe_fail(f"work-{item}")
        return {"results": [f"r{item}"]}

    def fin(state: Outer) -> dict[str, Any]:
        runs.hit("fin")
        return {"log": [f"fin:{state['answer']}:{len(state['results'])}"]}

    builder = StateGraph(Outer)
    builder.add_node("plan", plan)
    policy = RetryPolicy(max_attempts=2, initial_interval=0.001, jitter=False) if retry else None
    builder.add_node("work", work, input_schema=Job, retry_policy=policy)
    builder.add_node("sub", inner.compile())
    builder.add_node("fin", fin)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["work"])
    builder.add_edge("work", "sub")
    builder.add_edge("sub", "fin")
    builder.add_edge("fin", END)
    return builder


def _plain(value: Any) -> Any:
    """Interrupts and other objects as comparable plain data."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if hasattr(value, "value") and hasattr(value, "id"):  # an Interrupt
        return ("interrupt", _plain(value.value))
    return value


async def _state_view(h: Harness, graph: Any, cfg: Any) -> Any:
    state = await h.get_state(graph, cfg, subgraphs=True)

    def view(s: Any) -> Any:
        return {
            "values": _plain(s.values),
            "next": s.next,
            "interrupts": [_plain(i.value) for i in s.interrupts],
            "tasks": [
                (t.name, t.error is not None, view(t.state) if t.state else None) for t in s.tasks
            ],
        }

    return view(state)


async def _bounded(h: Harness, thread_id: str, bound: int) -> dict[str, int]:
    counts: dict[str, int] = {}
    for t in await h.list(thread_config(thread_id)):
        ns = t.config["configurable"]["checkpoint_ns"]
        counts[ns] = counts.get(ns, 0) + 1
    assert all(n <= bound for n in counts.values()), counts
    return counts


async def _run_big(h: Harness, keep_last: int | None, durability: str, retry: bool) -> Any:
    h.saver.keep_last = keep_last
    runs, flaky = Runs(), Flaky({"work-3"}, others=3)
    graph = big_graph(runs, flaky, retry=retry).compile(checkpointer=h.saver)
    thread = new_thread()
    cfg = thread_config(thread)
    trace: list[Any] = []

    async def invoke(value: Any) -> None:
        try:
            trace.append(("ok", _plain(await h.invoke(graph, value, cfg, durability=durability))))
        except RuntimeError as exc:
            trace.append(("error", str(exc)))
        trace.append(await _state_view(h, graph, cfg))

    for round_ in range(2):
        await invoke({"items": [1, 2, 3, 4], "results": [], "log": [f"in{round_}"]})
        if trace[-2][0] == "error":
            await invoke(None)  # the failed task again; the others' writes were kept
        await invoke(Command(resume=f"a{round_}"))
        flaky.pending.add("work-3")
        flaky.done = threading.Semaphore(0)
    history = await h.state_history(graph, cfg)
    if keep_last is not None:
        bound = keep_last + max(1, keep_last // 2) - 1
        await _bounded(h, thread, bound)
        assert len(history) <= bound
    trace.append(runs.snapshot())
    return trace, history


@pytest.mark.parametrize(
    ("durability", "retry"), [("sync", False), ("async", True), ("exit", False)]
)
async def test_big_graph_matches_a_run_without_keep_last(
    keep: Harness, durability: str, retry: bool
) -> None:
    h = keep
    reference, _ = await _run_big(h, None, durability, retry)
    assert ("error", "flaky work-3") in reference or retry
    for n in (1, 2, 3):
        got, history = await _run_big(h, n, durability, retry)
        assert got == reference, n
        assert history, n


class Memo(TypedDict):
    last: str
    notes: Annotated[list[str], operator.add]


class Told(TypedDict):
    last: str
    log: Annotated[list[str], operator.add]


def remembering_graph(*, nested: bool) -> StateGraph[Any]:
    """memo -> done, where `memo` is a subgraph compiled with `checkpointer=True`.

    Such a subgraph keeps one history per thread, in a namespace without task ids (`memo`,
    or `outer|memo` inside a per-run subgraph `outer:<task id>`), and starts each run from
    the state its last run stored: that state is the thread's, not one run's.
    """

    def remember(state: Memo) -> dict[str, Any]:
        return {"notes": ["x"], "last": f"seen {len(state['notes'])}"}

    child = StateGraph(Memo)
    child.add_node("remember", remember)
    child.add_edge(START, "remember")
    memo: Any = child.compile(checkpointer=True)
    if nested:
        outer = StateGraph(Memo)
        outer.add_node("memo", memo)
        outer.add_edge(START, "memo")
        memo = outer.compile()

    def done(state: Told) -> dict[str, Any]:
        return {"log": [state["last"]]}

    builder = StateGraph(Told)
    builder.add_node("sub", memo)
    builder.add_node("done", done)
    builder.add_edge(START, "sub")
    builder.add_edge("sub", "done")
    return builder


@pytest.mark.parametrize("nested", [False, True])
async def test_stateful_subgraph_keeps_its_state(keep: Harness, nested: bool) -> None:
    async def run(keep_last: int | None) -> Any:
        keep.saver.keep_last = keep_last
        graph = remembering_graph(nested=nested).compile(checkpointer=keep.saver)
        cfg = thread_config(new_thread())
        results = [await keep.invoke(graph, {"last": ""}, cfg) for _ in range(3)]
        spaces = {t.config["configurable"]["checkpoint_ns"] for t in await keep.list(cfg)}
        return results, spaces

    reference, spaces = await run(None)
    assert reference[-1]["log"] == ["seen 0", "seen 1", "seen 2"]
    for n in (1, 2):
        got, kept = await run(n)
        assert got == reference, n
        # The subgraph's one history stays; each per-run namespace around it may go.
        assert {ns for ns in spaces if ":" not in ns} <= kept, n

"""Real LangGraph runs to migrate, and the checks that the target gives what the source gave.

Two graphs cover what a migration must carry:

- the demo agent (`checkpoint_base._demo`): a growing message list, a tool call, an
  `interrupt()` waiting for approval (pending interrupt and resume writes);
- a "pipeline": `Send` fan-out to workers, a subgraph that stops on `interrupt()` (its
  checkpoints live in their own namespace), and channels whose values are bytes, None,
  a datetime and plain numbers (the official Postgres saver keeps primitives inline).

Each source gets four threads: each graph once stopped at its interrupt and once finished.
"""

from __future__ import annotations

import datetime
import operator
import uuid
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.messages import BaseMessage, HumanMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send, interrupt

from checkpoint_base._demo import build_demo_graph

__all__ = [
    "Workload",
    "afill",
    "aresume_both",
    "assert_same_storage",
    "fill",
    "resume_both",
]


class PipelineState(TypedDict, total=False):
    items: list[str]
    log: Annotated[list[str], operator.add]
    count: int
    data: bytes
    note: str | None
    when: datetime.datetime
    answer: str


class SubState(TypedDict, total=False):
    log: Annotated[list[str], operator.add]
    answer: str


def _subgraph() -> Any:
    def check(state: SubState) -> dict[str, Any]:
        return {"log": ["sub:check"]}

    def ask(state: SubState) -> dict[str, Any]:
        answer = interrupt({"question": "ship it?"})
        return {"log": [f"sub:{answer}"], "answer": str(answer)}

    builder = StateGraph(SubState)
    builder.add_node("check", check)
    builder.add_node("ask", ask)
    builder.add_edge(START, "check")
    builder.add_edge("check", "ask")
    builder.add_edge("ask", END)
    return builder.compile()


def build_pipeline(checkpointer: Any) -> Any:
    """START -> plan -(Send x3)-> work -> review (a subgraph that interrupts) -> finish."""

    def plan(state: PipelineState) -> dict[str, Any]:
        return {
            "count": 3,
            "data": b"\x00\x01raw",
            "note": None,
            "when": datetime.datetime(2024, 5, 4, 6, 32, 42, tzinfo=datetime.timezone.utc),
        }

    def fan_out(state: PipelineState) -> list[Send]:
        return [Send("work", {"items": [item]}) for item in state["items"]]

    def work(state: PipelineState) -> dict[str, Any]:
        return {"log": [f"work:{state['items'][0]}"]}

    def finish(state: PipelineState) -> dict[str, Any]:
        return {"log": [f"done:{state.get('answer')}"], "count": state["count"] + 1}

    builder = StateGraph(PipelineState)
    builder.add_node("plan", plan)
    builder.add_node("work", work)
    builder.add_node("review", _subgraph())
    builder.add_node("finish", finish)
    builder.add_edge(START, "plan")
    builder.add_conditional_edges("plan", fan_out, ["work"])
    builder.add_edge("work", "review")
    builder.add_edge("review", "finish")
    builder.add_edge("finish", END)
    return builder.compile(checkpointer=checkpointer)


@dataclass(frozen=True)
class Workload:
    """The threads one `fill` created: which graph, and whether it waits at an interrupt."""

    threads: dict[str, tuple[str, bool]]

    @property
    def thread_ids(self) -> list[str]:
        return sorted(self.threads)

    @property
    def interrupted(self) -> list[str]:
        return sorted(t for t, (_, stopped) in self.threads.items() if stopped)


_GRAPHS = {"agent": build_demo_graph, "pipeline": build_pipeline}
_FIRST_INPUT: dict[str, Any] = {
    "agent": {"messages": [HumanMessage("What is 12 * 7?")], "approvals": []},
    "pipeline": {"items": ["a", "b", "c"], "log": []},
}
_RESUME = {"agent": "approved", "pipeline": "yes"}


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


def _new_threads(prefix: str) -> dict[str, tuple[str, bool]]:
    tag = uuid.uuid4().hex[:8]
    return {
        f"{prefix}-{graph}-{state}-{tag}": (graph, state == "waiting")
        for graph in _GRAPHS
        for state in ("waiting", "done")
    }


def fill(saver: BaseCheckpointSaver[Any], prefix: str = "mig") -> Workload:
    """Run every workload graph on `saver` (sync): one thread waiting, one finished, each."""
    threads = _new_threads(prefix)
    for thread_id, (graph_name, waiting) in threads.items():
        graph = _GRAPHS[graph_name](saver)
        graph.invoke(_FIRST_INPUT[graph_name], _config(thread_id))
        if not waiting:
            graph.invoke(Command(resume=_RESUME[graph_name]), _config(thread_id))
    return Workload(threads)


async def afill(saver: BaseCheckpointSaver[Any], prefix: str = "mig") -> Workload:
    """Async twin of `fill`."""
    threads = _new_threads(prefix)
    for thread_id, (graph_name, waiting) in threads.items():
        graph = _GRAPHS[graph_name](saver)
        await graph.ainvoke(_FIRST_INPUT[graph_name], _config(thread_id))
        if not waiting:
            await graph.ainvoke(Command(resume=_RESUME[graph_name]), _config(thread_id))
    return Workload(threads)


def _tuple_view(t: CheckpointTuple) -> tuple[Any, ...]:
    return (t.config, t.checkpoint, t.metadata, t.parent_config, t.pending_writes)


def _listing(
    saver: BaseCheckpointSaver[Any], thread_id: str, ns: str | None = None
) -> list[tuple[Any, ...]]:
    config = _config(thread_id)
    if ns is not None:
        config["configurable"]["checkpoint_ns"] = ns
    return [_tuple_view(t) for t in saver.list(config)]


def _key(view: tuple[Any, ...]) -> tuple[str, str]:
    configurable = view[0]["configurable"]
    return configurable["checkpoint_ns"], configurable["checkpoint_id"]


def _as_seen_by(serde: Any) -> Any:
    """A view's values as `serde` gives them back after storing them (None: unchanged)."""

    def convert(view: tuple[Any, ...]) -> tuple[Any, ...]:
        if serde is None:
            return view
        config, checkpoint, metadata, parent, writes = view
        return (
            config,
            serde.loads_typed(serde.dumps_typed(checkpoint)),
            metadata,
            parent,
            serde.loads_typed(serde.dumps_typed(writes)),
        )

    return convert


def _weaker_serde(source: BaseCheckpointSaver[Any], target: BaseCheckpointSaver[Any]) -> Any:
    """LangGraph's serializer when one side uses it and the other ours, else None.

    Ours keeps what `JsonPlusSerializer` cannot (a tuple stays a tuple; it reads back a
    list), so a value stored in the official format is compared as that format gives it.
    """
    if type(source.serde) is type(target.serde):
        return None
    return JsonPlusSerializer()


def assert_same_storage(
    source: BaseCheckpointSaver[Any], target: BaseCheckpointSaver[Any], work: Workload
) -> int:
    """`list` and `get_tuple` on the target give exactly what they give on the source.

    A whole thread is compared as a set (LangGraph's `InMemorySaver` lists namespace by
    namespace, ours newest first across them); each namespace's listing in order. Between
    our serializer and LangGraph's, values are compared as LangGraph's gives them back.
    Returns the number of checkpoints compared.
    """
    seen = _as_seen_by(_weaker_serde(source, target))
    compared = 0
    for thread_id in work.thread_ids:
        expected = sorted(map(seen, _listing(source, thread_id)), key=_key)
        got = sorted(map(seen, _listing(target, thread_id)), key=_key)
        assert len(expected) >= 3, f"{thread_id}: the source holds too little to compare"
        assert [_key(v) for v in got] == [_key(v) for v in expected], f"{thread_id}: ids differ"
        for exp, act in zip(expected, got, strict=True):
            assert act == exp, f"{thread_id} {_key(exp)}: target differs from source"
        namespaces = sorted({_key(v)[0] for v in expected})
        for ns in namespaces:
            in_target = [seen(v) for v in _listing(target, thread_id, ns)]
            assert in_target == [seen(v) for v in _listing(source, thread_id, ns)]
        for view in expected:
            exact = target.get_tuple(view[0])
            assert exact is not None and seen(_tuple_view(exact)) == view
        latest_src = source.get_tuple(_config(thread_id))
        latest_dst = target.get_tuple(_config(thread_id))
        assert latest_src is not None and latest_dst is not None
        assert seen(_tuple_view(latest_dst)) == seen(_tuple_view(latest_src))
        if work.threads[thread_id] == ("pipeline", True):
            assert len(namespaces) > 1, f"{thread_id}: no subgraph namespace to migrate"
        compared += len(expected)
    return compared


async def _alisting(saver: BaseCheckpointSaver[Any], thread_id: str) -> list[tuple[Any, ...]]:
    return sorted([_tuple_view(t) async for t in saver.alist(_config(thread_id))], key=_key)


async def aassert_same_storage(
    source: BaseCheckpointSaver[Any], target: BaseCheckpointSaver[Any], work: Workload
) -> int:
    """Async twin of `assert_same_storage` (through `alist` / `aget_tuple`)."""
    seen = _as_seen_by(_weaker_serde(source, target))
    compared = 0
    for thread_id in work.thread_ids:
        expected = [seen(v) for v in await _alisting(source, thread_id)]
        got = [seen(v) for v in await _alisting(target, thread_id)]
        assert len(expected) >= 3
        assert got == expected, f"{thread_id}: target differs from source"
        for view in expected:
            exact = await target.aget_tuple(view[0])
            assert exact is not None and seen(_tuple_view(exact)) == view
        compared += len(expected)
    return compared


def _message_ids(value: Any) -> set[str]:
    if isinstance(value, BaseMessage):
        return {value.id} if value.id else set()
    if isinstance(value, dict):
        return set().union(*(_message_ids(v) for v in value.values()))
    if isinstance(value, (list, tuple)):
        return set().union(*(_message_ids(v) for v in value))
    return set()


def _fresh_ids_blanked(value: Any, known: set[str]) -> Any:
    """`value` with the random ids of messages made by the resumed run blanked.

    `add_messages` gives a new message a random id, so the two resumed runs name their new
    messages differently; every message that existed before (and was migrated) keeps its id.
    """
    if isinstance(value, BaseMessage):
        return value if value.id in known else value.model_copy(update={"id": None})
    if isinstance(value, dict):
        return {k: _fresh_ids_blanked(v, known) for k, v in value.items()}
    if isinstance(value, list):
        return [_fresh_ids_blanked(v, known) for v in value]
    if isinstance(value, tuple):
        return tuple(_fresh_ids_blanked(v, known) for v in value)
    return value


def _outcome(graph: Any, thread_id: str, result: Any, known: set[str]) -> Any:
    state = graph.get_state(_config(thread_id))
    history = [
        (s.values, s.next, s.metadata.get("step"))
        for s in graph.get_state_history(_config(thread_id))
    ]
    return _fresh_ids_blanked((result, state.values, state.next, history), known)


def resume_both(
    source: BaseCheckpointSaver[Any], target: BaseCheckpointSaver[Any], work: Workload
) -> None:
    """Resume every waiting thread on both sides: the same result, state and history."""
    assert work.interrupted
    for thread_id in work.interrupted:
        name = work.threads[thread_id][0]
        known = _message_ids(_GRAPHS[name](source).get_state(_config(thread_id)).values)
        outcomes = []
        for saver in (source, target):
            graph = _GRAPHS[name](saver)
            result = graph.invoke(Command(resume=_RESUME[name]), _config(thread_id))
            outcomes.append(_outcome(graph, thread_id, result, known))
        assert outcomes[1] == outcomes[0], f"{thread_id}: resumed differently on the target"
        assert outcomes[0][2] == (), f"{thread_id}: the resumed run did not finish"


async def aresume_both(
    source: BaseCheckpointSaver[Any], target: BaseCheckpointSaver[Any], work: Workload
) -> None:
    """Async twin of `resume_both`."""
    for thread_id in work.interrupted:
        name = work.threads[thread_id][0]
        before = await _GRAPHS[name](source).aget_state(_config(thread_id))
        known = _message_ids(before.values)
        outcomes = []
        for saver in (source, target):
            graph = _GRAPHS[name](saver)
            result = await graph.ainvoke(Command(resume=_RESUME[name]), _config(thread_id))
            state = await graph.aget_state(_config(thread_id))
            history = [
                (s.values, s.next) async for s in graph.aget_state_history(_config(thread_id))
            ]
            outcomes.append(_fresh_ids_blanked((result, state.values, state.next, history), known))
        assert outcomes[1] == outcomes[0], f"{thread_id}: resumed differently on the target"

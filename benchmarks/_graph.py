"""The benchmark's agent graph, and the saver calls it makes, recorded for replay.

A small tool-calling agent with deterministic nodes (no LLM): each turn a human message comes
in, the agent asks for a tool, the tool answers, the agent replies. Every super-step appends
exactly one LangChain message to the `messages` channel, so a thread of N checkpoints holds
a message list that grew by one message per step, as a chat agent's does.

The storage workloads do not invent checkpoints: they replay the `put` / `put_writes` calls
that this graph made on a recording saver (LangGraph's own `InMemorySaver` underneath), with
the thread id swapped. So channel values, `new_versions` (only the changed channels),
metadata and pending writes are exactly what LangGraph hands a checkpointer.
"""

from __future__ import annotations

import copy
import dataclasses
import random
import string
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from checkpoint_base import default_serde
from checkpoint_base._convert import put_records
from checkpoint_base._lists import Lists

__all__ = ["PutCall", "Recording", "WritesCall", "build_agent_graph", "record", "turn_input"]


def _vocabulary(size: int = 2000) -> list[str]:
    rng = random.Random(20241124)
    letters = string.ascii_lowercase
    return ["".join(rng.choice(letters) for _ in range(rng.randint(2, 10))) for _ in range(size)]


# Words drawn from 2,000 made-up ones compress about as well as English prose (zlib: 2.1x
# against 2.3x for this repository's ARCHITECTURE.md); the repetitive filler this replaced
# compressed 99x and made PostgreSQL's TOAST compression look like magic.
_VOCABULARY = _vocabulary()


def text(size: int, seed: int) -> str:
    """Deterministic text of `size` characters that differs with `seed`."""
    rng = random.Random(seed)
    out: list[str] = []
    n = 0
    while n < size:
        word = rng.choice(_VOCABULARY)
        out.append(word)
        n += len(word) + 1
    return " ".join(out)[:size]


class AgentState(TypedDict):
    """The agent's state: a conversation that only grows."""

    messages: Annotated[list[Any], add_messages]


def build_agent_graph(payload: int) -> StateGraph:
    """An uncompiled agent graph whose messages carry about `payload` characters each."""

    def agent(state: AgentState) -> dict[str, Any]:
        messages = state["messages"]
        last = messages[-1]
        n = len(messages)
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(content=text(payload, n), id=f"ai-{n}")]}
        call = {"name": "lookup", "args": {"query": text(32, n)}, "id": f"call-{n}"}
        return {"messages": [AIMessage(content=text(payload, n), tool_calls=[call], id=f"ai-{n}")]}

    def tools(state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        n = len(state["messages"])
        call_id = last.tool_calls[0]["id"]
        message = ToolMessage(content=text(payload, n), tool_call_id=call_id, id=f"tool-{n}")
        return {"messages": [message]}

    def route(state: AgentState) -> str:
        return "tools" if getattr(state["messages"][-1], "tool_calls", None) else END

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder


def turn_input(payload: int, turn: int) -> dict[str, Any]:
    """The input of one conversation turn: a human message."""
    return {"messages": [HumanMessage(content=text(payload, 1000 + turn), id=f"human-{turn}")]}


@dataclass(frozen=True)
class PutCall:
    """One recorded `put`."""

    config: RunnableConfig
    checkpoint: Any
    metadata: Any
    new_versions: Any
    data: bytes = b""
    """What the raw-driver floors write: the serialized checkpoint, new blobs and metadata."""


@dataclass(frozen=True)
class WritesCall:
    """One recorded `put_writes`."""

    config: RunnableConfig
    writes: tuple[tuple[str, Any], ...]
    task_id: str
    task_path: str
    data: bytes = b""
    """What the raw-driver floors write: the serialized writes."""


@dataclass(frozen=True)
class Recording:
    """The saver calls of a thread with `steps` checkpoints, in the order LangGraph made them.

    Attributes:
        steps: Number of `put` calls (checkpoints).
        payload: Characters per message.
        calls: Puts and writes, in order; the last call is the `steps`-th put.
    """

    steps: int
    payload: int
    calls: tuple[PutCall | WritesCall, ...]

    @property
    def puts(self) -> list[PutCall]:
        """The puts only."""
        return [c for c in self.calls if isinstance(c, PutCall)]

    @property
    def last_checkpoint(self) -> Any:
        """The newest checkpoint (its channel values hold the longest message list)."""
        return self.puts[-1].checkpoint


def _public(config: RunnableConfig) -> RunnableConfig:
    """The config keys a saver reads; LangGraph's private `__pregel_*` runtime objects dropped."""
    configurable = config.get("configurable") or {}
    return {"configurable": {k: v for k, v in configurable.items() if not k.startswith("__")}}


class _RecordingSaver(InMemorySaver):
    def __init__(self) -> None:
        # Our serializer, so that the messages LangGraph reads back between turns are the
        # objects our savers give it (fields set as given; LangGraph's marks every field set).
        super().__init__(serde=default_serde())
        self.calls: list[PutCall | WritesCall] = []

    def with_allowlist(self, extra_allowlist: Any) -> _RecordingSaver:
        # InMemorySaver's would warn that our serializer takes no msgpack allowlist: it
        # takes one of its own (the clone shares the recorded calls and the storage).
        clone = copy.copy(self)
        clone.serde = self.serde.with_allowlist(extra_allowlist)  # type: ignore[attr-defined]
        return clone

    def put(self, config: RunnableConfig, checkpoint: Any, metadata: Any, new_versions: Any) -> Any:
        # LangGraph may reuse containers after the call: keep a private copy of each level.
        stored = dict(checkpoint)
        stored["channel_values"] = {
            k: list(v) if isinstance(v, list) else v
            for k, v in checkpoint["channel_values"].items()
        }
        self.calls.append(
            PutCall(_public(config), stored, copy.deepcopy(metadata), dict(new_versions))
        )
        return super().put(config, checkpoint, metadata, new_versions)

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        self.calls.append(WritesCall(_public(config), tuple(writes), task_id, task_path))
        super().put_writes(config, writes, task_id, task_path)


def record(steps: int, payload: int) -> Recording:
    """Run the agent graph turn after turn until it has made `steps` puts; keep those calls."""
    saver = _RecordingSaver()
    graph = build_agent_graph(payload).compile(checkpointer=saver)
    config: RunnableConfig = {"configurable": {"thread_id": "recording"}}
    turn = 0
    while sum(isinstance(c, PutCall) for c in saver.calls) < steps:
        graph.invoke(turn_input(payload, turn), config, durability="sync")
        turn += 1
    calls: list[PutCall | WritesCall] = []
    puts = 0
    for call in saver.calls:
        calls.append(call)
        if isinstance(call, PutCall):
            puts += 1
            if puts == steps:
                break
    return Recording(steps=steps, payload=payload, calls=tuple(_with_bytes(calls)))


def _with_bytes(calls: Sequence[PutCall | WritesCall]) -> list[PutCall | WritesCall]:
    """The calls with `data` set: the bytes a saver of this package stores for each, in order
    (a put of a long message list stores only the segments its parent did not; `_lists`)."""
    serde = default_serde()
    lists = Lists()
    out: list[PutCall | WritesCall] = []
    for call in calls:
        parts: list[bytes] = []
        if isinstance(call, PutCall):
            config = for_thread(call.config, "recording")
            record, blobs, layouts = put_records(
                serde, lists, config, fresh_checkpoint(call.checkpoint), call.metadata,
                call.new_versions,
            )  # fmt: skip
            assert layouts is not None
            lists.remember(record.thread_id, record.checkpoint_ns, record.checkpoint_id, layouts)
            parts.append(record.checkpoint)
            parts.extend(bytes(b.data) for b in blobs)
            parts.append(record.metadata)
        else:
            parts.extend(serde.dumps_typed(value)[1] for _, value in call.writes)
        out.append(dataclasses.replace(call, data=b"".join(parts)))
    return out


def for_thread(config: RunnableConfig, thread_id: str) -> RunnableConfig:
    """`config` with its thread id replaced."""
    configurable = dict(config.get("configurable") or {})
    configurable["thread_id"] = thread_id
    return {"configurable": configurable}


def fresh_checkpoint(checkpoint: Any) -> Any:
    """A copy a saver may mutate without changing the recording (copies each level it owns)."""
    copied = dict(checkpoint)
    copied["channel_values"] = dict(checkpoint["channel_values"])
    copied["channel_versions"] = dict(checkpoint["channel_versions"])
    copied["versions_seen"] = {k: dict(v) for k, v in checkpoint["versions_seen"].items()}
    return copied

"""Small deterministic LangGraph graphs shared by the `test_graph_*` conformance tests.

Builders return an uncompiled `StateGraph`; each test compiles it with `h.saver` as its
checkpointer. Nodes count their executions in a `Runs` so tests can tell a re-run from a
write that was restored from a checkpoint.
"""

from __future__ import annotations

import operator
import threading
import uuid
from collections import Counter
from typing import Annotated, Any, TypedDict

from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt


class Runs:
    """Counts node executions; parallel tasks may run on several threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def hit(self, name: str) -> int:
        """Record one execution of `name`; return how many there have been."""
        with self._lock:
            self._counts[name] += 1
            return self._counts[name]

    def __getitem__(self, name: str) -> int:
        with self._lock:
            return self._counts[name]

    def snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counts)


def new_thread() -> str:
    """A fresh thread id: tests never share state through thread names."""
    return str(uuid.uuid4())


def thread_config(thread_id: str, **configurable: Any) -> RunnableConfig:
    return {"configurable": {"thread_id": thread_id, **configurable}}


def checkpoint_id(config: RunnableConfig) -> str:
    cid = (config.get("configurable") or {}).get("checkpoint_id")
    assert isinstance(cid, str), f"config names no checkpoint: {config}"
    return cid


class LogState(TypedDict):
    log: Annotated[list[str], operator.add]


def chain_graph(state: Any, names: tuple[str, ...], make: Any) -> StateGraph[Any]:
    """START -> each of `names` in turn -> END, node `name` being `make(name)`."""
    builder = StateGraph(state)
    previous = START
    for name in names:
        builder.add_node(name, make(name))
        builder.add_edge(previous, name)
        previous = name
    builder.add_edge(previous, END)
    return builder


def linear_graph(runs: Runs, names: tuple[str, ...] = ("a", "b", "c")) -> StateGraph[Any]:
    """START -> a -> b -> c -> END; node `x` appends `"x<run number>"` to `log`."""

    def make(name: str) -> Any:
        def node(state: LogState) -> dict[str, list[str]]:
            return {"log": [f"{name}{runs.hit(name)}"]}

        return node

    return chain_graph(LogState, names, make)


def ask_graph(runs: Runs) -> StateGraph[Any]:
    """START -> prepare -> ask; `ask` calls `interrupt()` and greets the answer."""

    def prepare(state: LogState) -> dict[str, list[str]]:
        return {"log": [f"prepare{runs.hit('prepare')}"]}

    def ask(state: LogState) -> dict[str, list[str]]:
        runs.hit("ask")
        answer = interrupt({"question": "name?"})
        return {"log": [f"hello {answer}"]}

    builder = StateGraph(LogState)
    builder.add_node("prepare", prepare)
    builder.add_node("ask", ask)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "ask")
    return builder

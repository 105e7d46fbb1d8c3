"""What the failover tests share: a LangGraph graph that calls a hook mid-run, and a wait
until a master's replicas hold everything it acknowledged."""

from __future__ import annotations

import operator
import time
from collections.abc import Callable
from typing import Annotated, Any, TypedDict

import redis
from langgraph.graph import END, START, StateGraph

STEPS = 12
KILL_AT = 6


class State(TypedDict):
    count: int
    log: Annotated[list[int], operator.add]


def counting_graph(hook: Callable[[], None] | None = None) -> StateGraph[Any]:
    """Counts to `STEPS`, one step per super-step; `hook` runs inside step `KILL_AT`."""

    def step(state: State) -> dict[str, Any]:
        n = state["count"] + 1
        if n == KILL_AT and hook is not None:
            hook()
        return {"count": n, "log": [n]}

    def route(state: State) -> str:
        return "step" if state["count"] < STEPS else END

    builder = StateGraph(State)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route)
    return builder


def wait_replicated(port: int, timeout: float = 10.0, **connection: Any) -> None:
    """Until every replica of the master at `port` has its whole replication stream
    (`connection`: more of redis-py's connection options, TLS ones for a TLS server).

    Redis replicates asynchronously: a crash before that can lose a write on any deployment,
    whatever the client.
    """
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=2, **connection)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            info = client.info("replication")
            offsets = [v["offset"] for k, v in info.items() if k.startswith("slave")]
            if not offsets or min(offsets) >= info["master_repl_offset"]:
                return
            time.sleep(0.02)
        raise TimeoutError(f"replicas of {port} did not catch up")
    finally:
        client.close()

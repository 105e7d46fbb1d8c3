"""`checkpointers demo`: a small agent graph that persists, is interrupted, and resumes.

Deterministic (no LLM): an "agent" node asks for a calculator tool, a human must approve the
call (an `interrupt`), the tool runs, and the agent answers. The run stops at the approval,
is resumed from storage with `Command(resume=...)`, and the thread's history is printed.
"""

from __future__ import annotations

import operator
import re
import uuid
from typing import Annotated, Any, TextIO, TypedDict

try:
    from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
    from langgraph.graph import END, START, StateGraph
    from langgraph.graph.message import add_messages
    from langgraph.types import Command, interrupt
except ImportError as exc:  # LangGraph itself is not a dependency of the savers
    raise ImportError(
        "the demo needs LangGraph: pip install 'checkpointers[all]' (or pip install langgraph)"
    ) from exc

__all__ = ["DEFAULT_DEMO_URL", "build_demo_graph", "run_demo"]

DEFAULT_DEMO_URL = "sqlite:///checkpointers-demo.db"


class State(TypedDict):
    """The demo graph's state: a conversation and an audit log of approvals."""

    messages: Annotated[list[Any], add_messages]
    approvals: Annotated[list[str], operator.add]


def build_demo_graph(checkpointer: Any) -> Any:
    """Compile the demo agent graph with `checkpointer`."""

    def agent(state: State) -> dict[str, Any]:
        last = state["messages"][-1]
        if isinstance(last, ToolMessage):
            return {"messages": [AIMessage(content=f"The answer is {last.content}.")]}
        match = re.search(r"(\d+)\s*([*+-])\s*(\d+)", str(last.content))
        if match is None:
            return {"messages": [AIMessage(content="Ask me to compute something, like 12 * 7.")]}
        call = {"name": "calculator", "args": {"expression": match.group(0)}, "id": "call-1"}
        return {"messages": [AIMessage(content="", tool_calls=[call])]}

    def approve(state: State) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]
        decision = interrupt({"question": "Run this tool call?", "tool_call": call})
        return {"approvals": [f"{call['name']}({call['args']['expression']}): {decision}"]}

    def tools(state: State) -> dict[str, Any]:
        call = state["messages"][-1].tool_calls[0]
        a, op, b = re.fullmatch(r"(\d+)\s*([*+-])\s*(\d+)", call["args"]["expression"]).groups()  # type: ignore[union-attr]
        ops = {"*": operator.mul, "+": operator.add, "-": operator.sub}
        result = ops[op](int(a), int(b))
        return {"messages": [ToolMessage(content=str(result), tool_call_id=call["id"])]}

    def route(state: State) -> str:
        last = state["messages"][-1]
        return "approve" if getattr(last, "tool_calls", None) else END

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("approve", approve)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, ["approve", END])
    builder.add_edge("approve", "tools")
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=checkpointer)


def run_demo(url: str, out: TextIO, *, thread_id: str | None = None) -> int:
    """Run the demo against the saver at `url`, printing to `out`. Returns an exit status."""
    from ._connect import connect

    thread_id = thread_id or f"demo-{uuid.uuid4().hex[:8]}"
    config: Any = {"configurable": {"thread_id": thread_id}}
    saver = connect(url)
    try:
        graph = build_demo_graph(saver)
        out.write(f"checkpointers demo: {url}  thread {thread_id}\n\n")
        out.write("user> What is 12 * 7?\n")
        result = graph.invoke(
            {"messages": [HumanMessage("What is 12 * 7?")], "approvals": []}, config
        )
        pending = result.get("__interrupt__") or []
        if not pending:
            out.write("error: the run was expected to stop for approval\n")
            return 1
        out.write(
            f"   ... interrupted, waiting for approval: {pending[0].value['tool_call']['args']}\n"
        )
        out.write(f"   ... state saved; next node: {graph.get_state(config).next}\n\n")
        if saver.backend.capabilities.durable:
            # A new saver and a new graph: the run resumes from storage, not from memory.
            saver.close()
            saver = connect(url)
            graph = build_demo_graph(saver)
            out.write("(reconnected: resuming from storage)\n")
        out.write("human> approve\n")
        result = graph.invoke(Command(resume="approved"), config)
        out.write(f"agent> {result['messages'][-1].content}\n\n")
        out.write("history (newest first):\n")
        out.write(f"  {'step':>4}  {'source':<6}  {'next':<10}  last message\n")
        for snapshot in graph.get_state_history(config):
            meta = snapshot.metadata or {}
            messages = snapshot.values.get("messages") or []
            text = f"{type(messages[-1]).__name__}: {_short(messages[-1])}" if messages else ""
            nxt = ",".join(snapshot.next) or "-"
            out.write(
                f"  {meta.get('step', '?'):>4}  {meta.get('source', '?'):<6}  {nxt:<10}  {text}\n"
            )
        out.write(f"\napprovals: {result['approvals']}\n")
    finally:
        saver.close()
    return 0


def _short(message: Any) -> str:
    if getattr(message, "tool_calls", None):
        call = message.tool_calls[0]
        return f"call {call['name']}({call['args']['expression']})"
    text = str(message.content)
    return text if len(text) <= 40 else text[:37] + "..."

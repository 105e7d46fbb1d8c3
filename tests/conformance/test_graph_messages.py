"""A chat graph over `add_messages`: many turns on one thread, then its whole history."""

from __future__ import annotations

from typing import Annotated, Any, TypedDict

from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from .graphs import checkpoint_id, new_thread, thread_config
from .harness import Harness

TURNS = 20


class Chat(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]


def echo_bot() -> StateGraph[Any]:
    """One deterministic "model" node that answers every human message."""

    def bot(state: Chat) -> dict[str, Any]:
        last = state["messages"][-1]
        turn = sum(isinstance(m, HumanMessage) for m in state["messages"])
        reply = AIMessage(
            content=f"echo {turn}: {last.content}",
            id=f"ai-{turn}",
            response_metadata={"turn": turn, "model": "echo"},
        )
        return {"messages": [reply]}

    builder = StateGraph(Chat)
    builder.add_node("bot", bot)
    builder.add_edge(START, "bot")
    builder.add_edge("bot", END)
    return builder


def human(turn: int) -> HumanMessage:
    return HumanMessage(content=f"tour n°{turn} — ✓ 日本", id=f"human-{turn}")


async def test_graph_messages_many_turns_then_history(h: Harness) -> None:
    config = thread_config(new_thread())
    graph = echo_bot().compile(checkpointer=h.saver)
    for turn in range(1, TURNS + 1):
        result = await h.invoke(graph, {"messages": [human(turn)]}, config)
        assert len(result["messages"]) == 2 * turn
        assert result["messages"][-1].content == f"echo {turn}: {human(turn).content}"

    # A fresh graph rebuilds the same messages, classes and fields from the saver.
    fresh = echo_bot().compile(checkpointer=h.saver)
    messages = (await h.get_state(fresh, config)).values["messages"]
    assert [type(m) for m in messages] == [HumanMessage, AIMessage] * TURNS
    assert [m.id for m in messages] == [
        mid for t in range(1, TURNS + 1) for mid in (f"human-{t}", f"ai-{t}")
    ]
    assert messages[0] == human(1)
    assert messages[-1].content == f"echo {TURNS}: {human(TURNS).content}"
    assert messages[-1].response_metadata == {"turn": TURNS, "model": "echo"}

    history = await h.state_history(fresh, config)
    # Each turn stores three checkpoints: its input, the start step, the bot's answer.
    assert len(history) == 3 * TURNS
    assert [s.metadata["step"] for s in history] == list(range(3 * TURNS - 2, -2, -1))
    expected_sizes = [n for t in range(1, TURNS + 1) for n in (2 * t - 2, 2 * t - 1, 2 * t)]
    assert [len(s.values["messages"]) for s in history] == expected_sizes[::-1]
    assert [s.metadata["source"] for s in history[:3]] == ["loop", "loop", "input"]
    ids = [checkpoint_id(s.config) for s in history]
    assert ids == sorted(ids, reverse=True)
    # Turn 7's answer is in every checkpoint from that turn's bot step on, unchanged.
    with_turn_7 = [s for s in history if len(s.values["messages"]) >= 14]
    assert len(with_turn_7) == 3 * (TURNS - 7) + 1
    assert {s.values["messages"][13].content for s in with_turn_7} == {
        f"echo 7: {human(7).content}"
    }

    page = await h.state_history(fresh, config, before=history[9].config, limit=4)
    assert [checkpoint_id(s.config) for s in page] == ids[10:14]
    assert len(await h.list(config)) == 3 * TURNS

"""Checkpoints encrypted with LangGraph's `EncryptedSerializer` around our serializer.

LangGraph's `EncryptedSerializer.from_pycryptodome_aes(serde=MsgpackSerializer(), key=...)`
encrypts every value a saver stores. The graph's own types must still come back (LangGraph
hands a graph's schema types only to a `JsonPlusSerializer` inside the encrypting one; the
saver hands them to ours), nothing readable may reach storage, and a saver without the key,
or with another one, must say that the data is encrypted rather than damaged.
"""

from __future__ import annotations

import logging
import operator
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from checkpoint_base import DamagedDataError
from checkpoint_base._migrate_side import SaverSide
from checkpoint_base.serde import MsgpackSerializer

from .builders import new_thread
from .harness import Harness
from .test_graph_user_types import Customer, Order, Tier

KEY = b"0123456789abcdef0123456789abcdef"
OTHER_KEY = b"fedcba9876543210fedcba9876543210"
SECRET = "plaintext-7b1d93e0-must-not-reach-storage"


def encrypting(key: bytes = KEY) -> EncryptedSerializer:
    # pycryptodome is in the dev extra: without it this fails, it does not skip.
    return EncryptedSerializer.from_pycryptodome_aes(serde=MsgpackSerializer(), key=key)


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]
    customer: Customer
    orders: Annotated[list[Order], operator.add]


def _graph(saver: object) -> Any:
    def agent(state: State) -> dict[str, object]:
        n = len(state["messages"])
        return {
            "messages": [AIMessage(content=f"{SECRET} answer {n}", id=f"ai-{n}")],
            "customer": state["customer"].model_copy(update={"tier": Tier.PRO}),
            "orders": [Order(SECRET, n)],
        }

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_edge(START, "agent")
    builder.add_edge("agent", END)
    return builder.compile(checkpointer=saver)


async def _stored(h: Harness, thread_id: str) -> list[Any]:
    plan = SaverSide(h.saver).read_thread(thread_id)
    return await h.saver._arun(plan) if h.is_async else h.saver._run(plan)


async def test_encrypted_graph_keeps_its_types_and_stores_no_plaintext(
    h: Harness, caplog: pytest.LogCaptureFixture
) -> None:
    h.saver.serde = encrypting()
    graph = _graph(h.saver)
    cfg = {"configurable": {"thread_id": new_thread()}}
    start = {
        "messages": [HumanMessage(content=f"{SECRET} question", id="human-0")],
        "customer": Customer(name=SECRET, tier=Tier.FREE),
        "orders": [],
    }
    with caplog.at_level(logging.WARNING):
        await h.invoke(graph, start, cfg)
        await h.invoke(graph, {"messages": [HumanMessage(content="again", id="human-1")]}, cfg)
    # LangGraph warns when it cannot hand the schema's types to the serializer; ours takes them.
    assert not [r for r in caplog.records if "allowlist" in r.getMessage()]

    state = await h.get_state(graph, cfg)
    assert state.values["customer"] == Customer(name=SECRET, tier=Tier.PRO)
    assert state.values["orders"] == [Order(SECRET, 1), Order(SECRET, 3)]
    assert [type(m) for m in state.values["messages"]] == [HumanMessage, AIMessage] * 2
    history = await h.state_history(graph, cfg)
    assert len(history) == 6  # input, start and agent steps of two invocations

    rows = await _stored(h, cfg["configurable"]["thread_id"])
    assert len(rows) == 6
    values = [(r.checkpoint.type, r.checkpoint.checkpoint) for r in rows]
    values += [(b.type, bytes(b.data)) for r in rows for b in r.blobs if b.data]
    values += [(w.type, bytes(w.data)) for r in rows for w in r.writes]
    assert len(values) > 8
    for type_tag, data in values:
        assert type_tag.endswith("+aes"), type_tag
        assert SECRET.encode() not in data
        assert b"Customer" not in data


async def test_encrypted_data_read_without_its_key_says_so(h: Harness) -> None:
    h.saver.serde = encrypting()
    graph = _graph(h.saver)
    cfg = {"configurable": {"thread_id": new_thread()}}
    start = {"messages": [], "customer": Customer(name="Ann", tier=Tier.FREE), "orders": []}
    await h.invoke(graph, start, cfg)

    h.saver.serde = MsgpackSerializer()  # no key
    with pytest.raises(DamagedDataError) as no_key:
        await h.get_tuple(cfg)
    assert no_key.value.encryption == "no key"
    message = str(no_key.value)
    assert "+aes" in message and "is encrypted" in message and "holds no key" in message
    assert "LANGGRAPH_AES_KEY" in message and "damaged or" not in message

    h.saver.serde = encrypting(OTHER_KEY)
    with pytest.raises(DamagedDataError) as other_key:
        await h.get_tuple(cfg)
    assert other_key.value.encryption == "failed"
    assert "a key other than the one that wrote it" in str(other_key.value)

    h.saver.serde = encrypting()  # the right key reads it again (in a graph: its types)
    state = await h.get_state(_graph(h.saver), cfg)
    assert state.values["customer"] == Customer(name="Ann", tier=Tier.PRO)


async def test_the_same_allowlist_gives_back_the_same_saver(h: Harness) -> None:
    # LangGraph asks for the schema's types on every invoke: the answer must be cached, not
    # a new serializer and a new saver each time.
    h.saver.serde = encrypting()
    entries = [(Customer.__module__, "Customer"), (Order.__module__, "Order")]
    first = h.saver.with_allowlist(entries)
    assert first is not h.saver
    assert isinstance(first.serde, EncryptedSerializer)
    assert first.serde.cipher is h.saver.serde.cipher
    assert h.saver.with_allowlist(entries).serde is first.serde
    assert first.with_allowlist(entries) is first

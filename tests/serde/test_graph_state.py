"""A real LangGraph graph whose state holds the user's own pydantic models, dataclasses and
enums works with no serializer configuration: compiling the graph registers the state schema's
types through `with_allowlist`.

LangGraph computes that allowlist and calls `with_allowlist` only when strict msgpack mode is on
(`LANGGRAPH_STRICT_MSGPACK=true`, read when LangGraph is imported). The in-process tests switch
the flag LangGraph reads; `test_with_the_real_environment_variable` runs a fresh interpreter
with the variable set, as a user would.
"""

from __future__ import annotations

import collections.abc
import copy
import dataclasses
import enum
import textwrap
import typing
import uuid
from collections.abc import Collection
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pydantic
import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph._internal import _serde as langgraph_serde
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Send, interrupt

from checkpoint_base.serde import DisallowedTypeError, MsgpackSerializer

from .helpers import assert_script_prints_ok


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Customer(pydantic.BaseModel):
    name: str
    tier: Tier = Tier.FREE
    tags: set[str] = pydantic.Field(default_factory=set)


@dataclasses.dataclass
class Ticket:
    subject: str
    notes: list[str] = dataclasses.field(default_factory=list)
    priority: Tier = Tier.FREE


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    customer: Customer
    ticket: Ticket
    handled: Annotated[list[str], lambda a, b: a + b]


class AllowlistingSaver(InMemorySaver):
    """InMemorySaver whose `with_allowlist` reaches our serializer, as our own saver does
    (LangGraph's base class only knows how to extend JsonPlusSerializer)."""

    def with_allowlist(self, extra_allowlist: Collection[tuple[str, ...]]) -> AllowlistingSaver:
        serde = self.serde.with_allowlist(extra_allowlist)  # type: ignore[attr-defined]
        if serde is self.serde:
            return self
        clone = copy.copy(self)  # shares the stored data
        clone.serde = serde
        return clone


def _build_graph(saver: InMemorySaver) -> Any:
    def triage(state: State) -> dict[str, Any]:
        ticket = state["ticket"]
        approved = interrupt({"ticket": ticket, "question": "escalate?"})
        customer = state["customer"].model_copy(
            update={"tier": Tier.PRO if approved else Tier.FREE}
        )
        return {
            "customer": customer,
            "ticket": dataclasses.replace(ticket, notes=[*ticket.notes, "triaged"]),
            "messages": [AIMessage(content=f"triaged {ticket.subject}")],
        }

    def fan_out(state: State) -> list[Send]:
        return [Send("handle", {"step": s, "tier": state["customer"].tier}) for s in ("a", "b")]

    def handle(arg: dict[str, Any]) -> dict[str, Any]:
        return {"handled": [f"{arg['step']}:{arg['tier'].value}"]}

    builder = StateGraph(State)
    builder.add_node("triage", triage)
    builder.add_node("handle", handle)
    builder.add_edge(START, "triage")
    builder.add_conditional_edges("triage", fan_out, ["handle"])
    builder.add_edge("handle", END)
    return builder.compile(checkpointer=saver)


def _start() -> dict[str, Any]:
    return {
        "messages": [HumanMessage("my order is late")],
        "customer": Customer(name="Ada", tags={"vip"}),
        "ticket": Ticket(subject="late order", priority=Tier.PRO),
        "handled": [],
    }


@pytest.fixture
def strict_langgraph(monkeypatch: pytest.MonkeyPatch) -> None:
    """What LANGGRAPH_STRICT_MSGPACK=true does: LangGraph registers the schema's types."""
    monkeypatch.setattr(langgraph_serde, "STRICT_MSGPACK_ENABLED", True)


@pytest.mark.usefixtures("strict_langgraph")
def test_user_types_in_state_need_no_configuration() -> None:
    saver = AllowlistingSaver(serde=MsgpackSerializer())  # no allowlist given by the user
    graph = _build_graph(saver)
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}

    first = graph.invoke(_start(), config)
    assert first["__interrupt__"][0].value["ticket"] == Ticket("late order", priority=Tier.PRO)
    final = graph.invoke(Command(resume=True), config)  # loads the stored state

    assert final["customer"] == Customer(name="Ada", tier=Tier.PRO, tags={"vip"})
    assert type(final["ticket"]) is Ticket and final["ticket"].notes == ["triaged"]
    assert sorted(final["handled"]) == ["a:pro", "b:pro"]
    state = graph.get_state(config)  # read back from the saver, not from memory
    assert type(state.values["customer"]) is Customer and state.values["customer"].tier is Tier.PRO
    assert [type(m) for m in state.values["messages"]] == [HumanMessage, AIMessage]
    history = list(graph.get_state_history(config))
    assert len(history) >= 4
    assert all(type(s.values["ticket"]) is Ticket for s in history if "ticket" in s.values)

    # The user configured nothing; LangGraph extended the serializer with the schema's types.
    assert saver.serde.allowed == frozenset()  # type: ignore[attr-defined]
    assert (__name__, "Customer") in graph.checkpointer.serde.allowed
    assert {(__name__, "Ticket"), (__name__, "Tier")} <= graph.checkpointer.serde.allowed


def test_a_type_outside_the_schema_fails_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Without LangGraph's schema registration nothing allows Customer: the error says so.
    # (Creating one of our savers turns the registration on; this test turns it off.)
    monkeypatch.setattr(langgraph_serde, "STRICT_MSGPACK_ENABLED", False)
    graph = _build_graph(AllowlistingSaver(serde=MsgpackSerializer()))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke(_start(), config)
    with pytest.raises(DisallowedTypeError, match=r"with_allowlist\(\[\('tests\.serde"):
        graph.invoke(Command(resume=True), config)


def test_explicit_allowlist_without_strict_mode() -> None:
    serde = MsgpackSerializer(allowed=[Customer, Ticket, Tier])
    graph = _build_graph(AllowlistingSaver(serde=serde))
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    graph.invoke(_start(), config)
    final = graph.invoke(Command(resume=False), config)
    assert final["customer"].tier is Tier.FREE and sorted(final["handled"]) == ["a:free", "b:free"]


SCRIPT = """
import sys, uuid
sys.path[:0] = [{root!r}]
from langgraph.types import Command
from checkpoint_base.serde import MsgpackSerializer
from tests.serde.test_graph_state import AllowlistingSaver, Customer, Tier, _build_graph, _start

graph = _build_graph(AllowlistingSaver(serde=MsgpackSerializer()))
config = {{"configurable": {{"thread_id": str(uuid.uuid4())}}}}
graph.invoke(_start(), config)
final = graph.invoke(Command(resume=True), config)
assert final["customer"] == Customer(name="Ada", tier=Tier.PRO, tags={{"vip"}}), final
print("ok")
"""


@pytest.mark.slow
def test_with_the_real_environment_variable() -> None:
    root = str(Path(__file__).resolve().parents[2])
    script = textwrap.dedent(SCRIPT.format(root=root))
    assert_script_prints_ok(script, LANGGRAPH_STRICT_MSGPACK="true")


class AbcState(TypedDict):
    customers: collections.abc.Sequence[Customer]
    tickets: typing.Mapping[str, Ticket]  # the typing alias, on purpose


def test_schema_aliases_of_abstract_containers_reach_the_allowlist() -> None:
    """A state naming `collections.abc.Sequence[Customer]` or `typing.Mapping[str, Ticket]`
    compiles with one of our savers, and the types inside the aliases are allowlisted
    (LangGraph's schema walk stepped only into the builtin containers' aliases). On Python 3.10 LangGraph's schema walk
    (which our savers turn on) took such an alias for a class and raised "issubclass() arg 1
    must be a class" at compile time."""
    from checkpoint_base import connect

    def grow(state: AbcState) -> dict[str, Any]:
        customers = [*state["customers"], Customer(name=f"c{len(state['customers'])}")]
        return {"customers": customers, "tickets": {**state["tickets"], "t": Ticket("s")}}

    builder = StateGraph(AbcState)
    builder.add_node("grow", grow)
    builder.add_edge(START, "grow")
    with connect("memory://") as saver:
        graph = builder.compile(checkpointer=saver)
        config = {"configurable": {"thread_id": uuid.uuid4().hex}}
        graph.invoke({"customers": [], "tickets": {}}, config)
        graph.invoke({"customers": [], "tickets": {}}, config)
        values = graph.get_state(config).values
    assert values["customers"] == [Customer(name="c0")]
    assert values["tickets"] == {"t": Ticket("s")}

"""A graph whose state holds the user's own pydantic models, dataclasses and enums.

No configuration: compiling the graph registers its schema types with the saver's
serializer, which rebuilds them with their types; anything else stays refused.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from enum import Enum
from typing import Annotated, TypedDict

import pydantic
import pytest
from langgraph.graph import END, START, StateGraph

from checkpoint_base.serde import DisallowedTypeError

from .builders import checkpoint, config, new_thread
from .harness import Harness


class Tier(Enum):
    FREE = "free"
    PRO = "pro"


class Customer(pydantic.BaseModel):
    name: str
    tier: Tier
    tags: list[str] = []


@dataclass(frozen=True)
class Order:
    sku: str
    quantity: int


class State(TypedDict):
    customer: Customer
    orders: Annotated[list[Order], operator.add]
    tier: Tier


class NotInSchema(pydantic.BaseModel):
    secret: str


def _graph(saver: object) -> object:
    def upgrade(state: State) -> dict[str, object]:
        customer = state["customer"].model_copy(update={"tier": Tier.PRO})
        return {
            "customer": customer,
            "orders": [Order("sku-1", len(state["orders"]) + 1)],
            "tier": Tier.PRO,
        }

    builder = StateGraph(State)
    builder.add_node("upgrade", upgrade)
    builder.add_edge(START, "upgrade")
    builder.add_edge("upgrade", END)
    return builder.compile(checkpointer=saver)


async def test_user_types_round_trip_with_no_configuration(h: Harness) -> None:
    graph = _graph(h.saver)
    cfg = {"configurable": {"thread_id": new_thread()}}
    start = {
        "customer": Customer(name="Ann", tier=Tier.FREE, tags=["a"]),
        "orders": [],
        "tier": Tier.FREE,
    }
    await h.invoke(graph, start, cfg)
    second = await h.invoke(graph, {"orders": [Order("sku-0", 9)]}, cfg)
    assert second["orders"] == [Order("sku-1", 1), Order("sku-0", 9), Order("sku-1", 3)]
    state = await h.get_state(graph, cfg)
    assert isinstance(state.values["customer"], Customer)
    assert state.values["customer"] == Customer(name="Ann", tier=Tier.PRO, tags=["a"])
    assert state.values["tier"] is Tier.PRO
    assert all(isinstance(o, Order) for o in state.values["orders"])
    history = await h.state_history(graph, cfg)
    assert [s.values.get("tier") for s in history[:2]] == [Tier.PRO, Tier.PRO]


async def test_types_outside_the_schema_stay_refused(h: Harness) -> None:
    graph = _graph(h.saver)
    compiled_saver = graph.checkpointer  # type: ignore[attr-defined]
    assert compiled_saver is not h.saver  # a clone whose serializer knows the schema's types
    schema_side = Harness(h.target, h.flavor, compiled_saver)
    tid = new_thread()
    ok = await schema_side.put(
        config(tid), checkpoint({"c": Customer(name="B", tier=Tier.FREE)}), {}, {"c": 1}
    )
    got = await schema_side.get_tuple(ok)
    assert got is not None and got.checkpoint["channel_values"]["c"] == Customer(
        name="B", tier=Tier.FREE
    )
    stored = await schema_side.put(
        config(tid), checkpoint({"x": NotInSchema(secret="s")}), {}, {"x": 1}
    )
    with pytest.raises(DisallowedTypeError, match="NotInSchema"):
        await schema_side.get_tuple(stored)
    with pytest.raises(
        DisallowedTypeError, match=r"Tier|Customer"
    ):  # the saver itself was not widened
        await h.get_tuple(ok)

"""Records written by LangGraph's `JsonPlusSerializer` load without re-encoding, to what
`JsonPlusSerializer` itself returns (or better: the original value, where it gives up)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import operator
import pathlib
import sqlite3
import uuid
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, AnyMessage, HumanMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages
from langgraph.types import Command, Interrupt, Send, interrupt

from checkpoint_base.serde import MsgpackSerializer

from . import user_types as u
from .helpers import assert_same
from .test_roundtrip import ALL

OURS = MsgpackSerializer(allowed=u.ALL_USER_TYPES)
THEIRS = JsonPlusSerializer(allowed_msgpack_modules=True, allowed_json_modules=True)


@pytest.fixture(autouse=True)
def _quiet_jsonplus(caplog: pytest.LogCaptureFixture) -> None:
    # The permissive reader warns about every user type it rebuilds.
    caplog.set_level(logging.ERROR, logger="langgraph.checkpoint.serde.jsonplus")


def _written_by_jsonplus() -> dict[str, tuple[Any, tuple[str, bytes]]]:
    out = {}
    for name, value in ALL.items():
        try:
            out[name] = (value, THEIRS.dumps_typed(value))
        except TypeError:  # JsonPlusSerializer cannot write it (complex, big ints, ...)
            continue
    out["bytearray"] = (bytearray(b"ba"), THEIRS.dumps_typed(bytearray(b"ba")))
    out["none"] = (None, THEIRS.dumps_typed(None))
    return out


WRITTEN = _written_by_jsonplus()
# Where JsonPlusSerializer gives up (returns the stored arguments), we rebuild the original.
BETTER = {"dataclass", "nested class", "pydantic root model"}


@pytest.mark.parametrize(("value", "data"), WRITTEN.values(), ids=WRITTEN.keys())
def test_msgpack_records_load_like_jsonplus_loads_them(
    request: pytest.FixtureRequest, value: Any, data: tuple[str, bytes]
) -> None:
    ours = OURS.loads_typed(data)
    if request.node.callspec.id in BETTER:
        assert type(THEIRS.loads_typed(data)) is not type(value)
        assert_same(value, ours)
    else:
        assert_same(THEIRS.loads_typed(data), ours)


def test_most_of_the_type_list_is_covered_by_jsonplus() -> None:
    assert len(WRITTEN) > 0.8 * len(ALL)


def _lc2(ident: list[str], **extra: Any) -> dict[str, Any]:
    return {"lc": 2, "type": "constructor", "id": ident, **extra}


def _plan_with_attempts() -> u.Plan:
    plan = u.Plan(steps=["a"], done=True)
    plan.attempts = 2
    return plan


# What the older JsonPlusSerializer wrote under the "json" tag, and what it stood for.
JSON_DOCS: dict[str, tuple[dict[str, Any], Any]] = {
    "uuid": (
        _lc2(["uuid", "UUID"], args=["12345678123456781234567812345678"]),
        uuid.UUID("12345678123456781234567812345678"),
    ),
    "datetime": (
        _lc2(["datetime", "datetime"], method="fromisoformat", args=["2024-01-02T03:04:05+00:00"]),
        dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=dt.timezone.utc),
    ),
    "set": (_lc2(["builtins", "set"], args=[[1, 2]]), {1, 2}),
    "bytes": (_lc2(["builtins", "bytes"], method="fromhex", args=["6869"]), b"hi"),
    "time": (
        _lc2(["datetime", "time"], args=[1, 2, 3, 4, None], kwargs={"fold": 1}),
        dt.time(1, 2, 3, 4, fold=1),
    ),
    "path": (_lc2(["pathlib", "Path"], args=["/", "tmp", "x"]), pathlib.Path("/tmp/x")),
    "pydantic": (
        _lc2(
            ["tests", "serde", "user_types", "Address"],
            method=[None, "model_construct"],
            kwargs={"city": "Paris", "zip_code": None},
        ),
        u.Address(city="Paris", zip_code=None),
    ),
    "dataclass": (
        _lc2(
            ["tests", "serde", "user_types", "Plan"],
            kwargs={"steps": ["a"], "done": True, "attempts": 2},
        ),
        _plan_with_attempts(),
    ),
    "enum": (_lc2(["tests", "serde", "user_types", "Color"], args=["red"]), u.Color.RED),
    "named tuple": (
        _lc2(["tests", "serde", "user_types", "Point"], kwargs={"x": 1, "y": 2}),
        u.Point(1, 2),
    ),
    "old Send": (
        _lc2(["langgraph", "constants", "Send"], kwargs={"node": "n", "arg": 1}),
        Send("n", 1),
    ),
    "message": (
        AIMessage(content="hi", id="a").to_json(),
        AIMessage(content="hi", id="a", tool_calls=[], invalid_tool_calls=[]),
    ),
}


@pytest.mark.parametrize(("doc", "expected"), JSON_DOCS.values(), ids=JSON_DOCS.keys())
def test_json_records_load(doc: dict[str, Any], expected: Any) -> None:
    loaded = OURS.loads_typed(("json", json.dumps({"value": doc}).encode()))["value"]
    assert type(loaded) is type(expected)
    assert loaded == expected


class State(TypedDict):
    messages: Annotated[list[AnyMessage], add_messages]
    profile: u.Profile
    results: Annotated[list[Any], operator.add]


def _graph(saver: Any) -> Any:
    def ask(state: State) -> dict[str, Any]:
        answer = interrupt({"question": "go?", "where": u.Point(1, 2)})
        return {"messages": [AIMessage(content=f"ok {answer}")]}

    def fan_out(state: State) -> list[Send]:
        return [Send("work", {"n": i, "color": u.Color.GREEN}) for i in range(3)]

    def work(arg: dict[str, Any]) -> dict[str, Any]:
        return {"results": [(arg["n"], arg["color"], u.Point(arg["n"]))]}

    builder = StateGraph(State)
    builder.add_node("ask", ask)
    builder.add_node("work", work)
    builder.add_edge(START, "ask")
    builder.add_conditional_edges("ask", fan_out, ["work"])
    builder.add_edge("work", END)
    return builder.compile(checkpointer=saver)


def test_records_of_the_official_sqlite_saver() -> None:
    conn = sqlite3.connect(":memory:", check_same_thread=False)
    graph = _graph(SqliteSaver(conn))  # writes with JsonPlusSerializer
    config = {"configurable": {"thread_id": str(uuid.uuid4())}}
    profile = u.Profile(name="p", address=u.Address(city="c"), history=[u.Plan(["s"])])
    graph.invoke({"messages": [HumanMessage("hi")], "profile": profile, "results": []}, config)
    graph.invoke(Command(resume="yes"), config)
    rows = [
        *conn.execute("SELECT type, checkpoint FROM checkpoints"),
        *conn.execute("SELECT type, value FROM writes"),
    ]
    assert len(rows) > 5 and "msgpack" in {tag for tag, _ in rows}
    loaded = []
    for tag, blob in rows:
        value = OURS.loads_typed((tag, blob))
        assert_same(THEIRS.loads_typed((tag, blob)), value)
        loaded.append(value)
    profiles = [
        v["channel_values"]["profile"]
        for v in loaded
        if isinstance(v, dict) and "profile" in v.get("channel_values", ())
    ]
    assert profiles and all(type(p) is u.Profile and p == profile for p in profiles)
    assert any(isinstance(v, list) and v and isinstance(v[0], Interrupt) for v in loaded)
    assert any(isinstance(v, Send) and v.arg["color"] is u.Color.GREEN for v in loaded)

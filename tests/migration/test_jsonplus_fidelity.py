"""Export to LangGraph's storage gives the official savers exactly what ours held, or refuses.

Values in our own format are decoded and encoded again with the official saver's
`JsonPlusSerializer`; `for_jsonplus` reads each one back with that serializer and refuses one
that comes back changed (but for a tuple that comes back a list, as LangGraph's own savers give
every tuple back). The official PostgreSQL tables keep metadata as JSONB, which changes or
refuses a few JSON values: `jsonb_change` names them before anything is written.
"""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import math
import zoneinfo
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.types import Interrupt, Send

from checkpoint_base import default_serde
from checkpoint_base._migrate_lgpostgres import jsonb_change
from checkpoint_base._migrate_msgpack import KEEP_IT, first_change, for_jsonplus
from checkpoint_base.serde import UnsupportedTypeError

from ..serde import user_types as u


@dataclasses.dataclass
class _Pair:
    left: Any
    right: Any


class _NoEquality:
    """Equal only to itself: a copy of it cannot be judged."""


SAME: list[Any] = [
    None,
    1,
    "é",
    b"x",
    [1, [2.5, {"k": (3, "4")}]],
    {1: "a", "b": {2}},
    float("nan"),
    _Pair([1], {"x": 2.0}),
    AIMessage("hi", id="a1", tool_calls=[{"name": "f", "args": {"q": 1}, "id": "c1"}]),
]


@pytest.mark.parametrize("value", SAME, ids=repr)
def test_first_change_finds_nothing_in_an_equal_copy(value: Any) -> None:
    serde = default_serde().with_allowlist([_Pair])
    copy = serde.loads_typed(serde.dumps_typed(value))
    assert first_change(value, copy) is None


_NY_TIME = dt.datetime(2024, 7, 1, 12, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
_OFFSET = dt.timezone(dt.timedelta(hours=-4))  # New York's offset that day: same instant

CHANGES = [
    ((1, 2), [1, 2], "value, a tuple, comes back as a list"),
    ([1], [1.0], "value[0], a int, comes back as a float"),
    ({"k": -0.0}, {"k": 0.0}, "value['k'], -0.0, comes back as 0.0"),
    ([b"x"], [bytearray(b"x")], "value[0], a bytes, comes back as a bytearray"),
    ({1: "a"}, {1.0: "a"}, "value's key 1 comes back as 1.0"),
    ({1: "a"}, {"1": "a"}, "value loses its key 1"),
    ({"a": 1}, {"a": 1, "b": 2}, "value gains a key 'b'"),
    ([1, 2], [1], "value has 2 items and comes back with 1"),
    (_Pair(1, [2]), _Pair(1, [3]), "value.right[0], 2, comes back as 3"),
    (collections.deque([1]), collections.deque([1.0]), "value[0], a int, comes back as a float"),
    (HumanMessage("a", id="h"), HumanMessage("b", id="h"), "value.content, 'a', comes back as 'b'"),
    (u.Plan(["a"]), {"steps": ["a"]}, "value, a Plan, comes back as a dict"),
    ({1, 2}, {1, 3}, "value (set) comes back different"),
    (u.Open(a=1, more=(2,)), u.Open(a=1, more=[2]), "value.more, a tuple, comes back as a list"),
    (u.Open(a=1, more=2), u.Open(a=1), "value loses its attribute 'more'"),
    (_NY_TIME, _NY_TIME.astimezone(_OFFSET), "value's time zone, zoneinfo.ZoneInfo(key="),
    (dt.datetime(2024, 1, 1, fold=1), dt.datetime(2024, 1, 1), "value, datetime.datetime(20"),
    (decimal.Decimal("1.0"), decimal.Decimal("1.00"), "value, Decimal('1.0'), comes back as"),
    (collections.deque([1], 2), collections.deque([1]), "a deque of maxlen 2, comes back with"),
    (Send("n", _NY_TIME), Send("n", _NY_TIME.astimezone(_OFFSET)), "value.arg's time zone"),
]


@pytest.mark.parametrize(("before", "after", "said"), CHANGES, ids=lambda v: repr(v)[:40])
def test_first_change_says_where_and_what(before: Any, after: Any, said: str) -> None:
    change = first_change(before, after)
    assert change is not None and said in change, change


def test_a_tuple_may_come_back_a_list_only_where_asked() -> None:
    before, after = {"m": [("user", "hi")]}, {"m": [["user", "hi"]]}
    assert first_change(before, after) == "value['m'][0], a tuple, comes back as a list"
    assert first_change(before, after, lists_for_tuples=True) is None
    # Its items are still judged, and a list never comes back a tuple.
    assert first_change((1,), [2], lists_for_tuples=True) is not None
    assert first_change([1], (1,), lists_for_tuples=True) is not None


def test_first_change_does_not_judge_what_it_cannot_compare() -> None:
    assert first_change(_NoEquality(), _NoEquality()) is None
    numpy = pytest.importorskip("numpy")
    assert first_change(numpy.array([1, 2]), numpy.array([1, 3])) is None


class _Changes:
    """A stand-in for LangGraph's serializer that reads back what `back` makes of a value."""

    def __init__(self, back: Any) -> None:
        self.back = back
        self.real = JsonPlusSerializer()

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        return self.real.dumps_typed(obj)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        return self.back(self.real.loads_typed(data))


def _ours(value: Any) -> tuple[str, bytes]:
    return default_serde().dumps_typed(value)


def test_a_value_that_comes_back_changed_is_refused_with_what_and_the_way_out() -> None:
    type_, data = _ours({"n": [1, 2]})
    changed = _Changes(lambda v: {"n": [1, 2.0]})
    with pytest.raises(UnsupportedTypeError) as caught:
        for_jsonplus(type_, data, default_serde(), changed, "the value of channel 'x'")
    message = str(caught.value)
    assert message.startswith("the value of channel 'x' cannot go into LangGraph's storage")
    assert "value['n'][1], a int, comes back as a float" in message
    assert KEEP_IT in message


def test_a_value_that_cannot_be_read_back_is_refused_with_the_cause() -> None:
    def fail(value: Any) -> Any:
        raise TypeError("cannot rebuild it")

    type_, data = _ours([1])
    with pytest.raises(UnsupportedTypeError, match="cannot rebuild it") as caught:
        for_jsonplus(type_, data, default_serde(), _Changes(fail), "the write to channel 'w'")
    assert isinstance(caught.value.__cause__, TypeError)


def test_a_value_langgraph_cannot_write_is_refused_with_what_and_the_cause() -> None:
    type_, data = _ours([10**40])  # ormsgpack, under JsonPlusSerializer, packs 64-bit ints
    with pytest.raises(UnsupportedTypeError) as caught:
        for_jsonplus(type_, data, default_serde(), JsonPlusSerializer(), "the value of 'big'")
    message = str(caught.value)
    assert message.startswith("the value of 'big' cannot go into LangGraph's storage: its")
    assert "cannot write it" in message and KEEP_IT in message
    assert caught.value.__cause__ is not None


def test_values_of_real_graphs_go_through_unrefused() -> None:
    """LangChain messages, LangGraph's interrupts and sends, and an input given as tuples:
    what real threads hold comes back as it went (tuples as lists, as the official savers
    give them)."""
    jsonplus = JsonPlusSerializer()
    values = [
        [
            SystemMessage("be brief", id="s"),
            HumanMessage("What is 6 * 7?", id="h"),
            AIMessage("", id="a", tool_calls=[{"name": "mul", "args": {"a": 6}, "id": "c"}]),
            ToolMessage("42", tool_call_id="c", id="t"),
        ],
        (Interrupt(value={"question": "approve?"}, id="i1"),),
        [Send("node", {"x": 1})],
        {"messages": [("user", "What is 6 * 7?")]},
    ]
    for value in values:
        type_, data = _ours(value)
        got_type, got = for_jsonplus(type_, data, default_serde(), jsonplus, "a value")
        assert (got_type, got) == jsonplus.dumps_typed(value)


JSONB_SAME: list[Any] = [
    {"step": 3, "source": "loop", "parents": {}},
    {"k": [0.0, 1.5, 1e15, 1e-7, -2.5e-300, 10**30, True, None]},
    {"k": "é😀", "😀": {"n": [1]}},
]


@pytest.mark.parametrize("metadata", JSONB_SAME, ids=repr)
def test_jsonb_keeps_these(metadata: Any) -> None:
    assert jsonb_change(metadata) is None


JSONB_CHANGES = [
    ({"k": -0.0}, "metadata['k'] is -0.0, which comes back as 0.0"),
    ({"k": [1, {"n": 1e16}]}, "metadata['k'][1]['n'] is the float 1e+16, which comes back as"),
    ({"k": -math.ldexp(1, 60)}, "which comes back as the int -1152921504606846976"),
    ({"k": "a\x00"}, "metadata['k'], a string, holds a NUL character"),
    ({"a\x00": 1}, "metadata has a key 'a\\x00' that holds a NUL character"),
    ({"k": ["\ud800"]}, "metadata['k'][0], a string, holds a lone surrogate"),
]


@pytest.mark.parametrize(("metadata", "said"), JSONB_CHANGES, ids=lambda v: repr(v)[:30])
def test_jsonb_change_says_where_and_what(metadata: Any, said: str) -> None:
    change = jsonb_change(metadata)
    assert change is not None and said in change, change

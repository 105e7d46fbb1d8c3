"""The cp2 row layout of pydantic models, and reading data written in cp1 by earlier versions."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from checkpoint_base.serde import MalformedDataError, MsgpackSerializer
from checkpoint_base.serde import _codes as C

from . import user_types as u
from .helpers import roundtrip

Ext = msgpack.ExtType
SERDE = MsgpackSerializer(allowed=[u.Address, u.Profile, u.Open, u.Plan])
ADDRESS = b"tests.serde.user_types:Address"


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _raw(value: Any) -> Any:
    return msgpack.unpackb(SERDE.dumps_typed(value)[1], strict_map_key=False)


def test_a_message_is_written_as_a_row_once_per_class_of_names() -> None:
    raw = _raw(HumanMessage(content="hi", id="h1"))
    *values, fields_set, marker = raw
    assert marker.code == C.PYDANTIC_V2_ROW
    key, names = marker.data.split(b"\0")
    assert key == b"langchain_core.messages.human:HumanMessage"
    assert names.decode().split(",") == list(HumanMessage.model_fields)
    assert values[0] == "hi" and "id" in fields_set  # only the fields the caller set
    assert "content" not in [v for v in values if isinstance(v, dict)]  # no per-instance keys


@pytest.mark.parametrize(
    "message",
    [
        HumanMessage(content="hi"),
        HumanMessage(content="hi", id="h1", name="ann"),
        AIMessage(
            content=[{"type": "text", "text": "x"}],
            tool_calls=[{"name": "f", "args": {"a": 1}, "id": "c1"}],
            usage_metadata={"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
        ),
        ToolMessage(content="r", tool_call_id="c1", artifact={"k": (1, 2)}),
    ],
)
def test_rows_keep_values_and_fields_set(message: Any) -> None:
    back = roundtrip(SERDE, message)
    assert back == message and type(back) is type(message)
    assert back.__pydantic_fields_set__ == message.__pydantic_fields_set__
    assert back.model_dump() == message.model_dump()


def test_every_field_set_writes_no_name_list() -> None:
    address = u.Address(city="Oslo", zip_code="0150")
    *_, fields_set, marker = _raw(address)
    assert fields_set is None and marker.code == C.PYDANTIC_V2_ROW
    assert roundtrip(SERDE, address).model_fields_set == {"city", "zip_code"}


def test_extra_fields_fall_back_to_the_map_layout() -> None:
    value = u.Open(a=1, b=[2])  # type: ignore[call-arg]
    raw = _raw(value)
    assert raw[-1].code == C.PYDANTIC_V2  # a row cannot hold extra names
    back = roundtrip(SERDE, value)
    assert back == value and back.__pydantic_extra__ == {"b": [2]}
    plain = u.Open(a=1)
    assert _raw(plain)[-1].code == C.PYDANTIC_V2_ROW
    assert roundtrip(SERDE, plain).__pydantic_extra__ == {}


def test_a_model_missing_a_field_falls_back_to_the_map_layout() -> None:
    partial = u.Address.model_construct(city="Oslo")  # zip_code gets its default ...
    del partial.__dict__["zip_code"]  # ... and now has none at all
    partial.__dict__["cached"] = 1  # while __dict__ keeps its length
    raw = _raw(partial)
    assert raw[-1].code == C.PYDANTIC_V2
    assert roundtrip(SERDE, partial).zip_code is None  # default filled in on load


def test_rows_written_with_other_fields_fit_the_class_now() -> None:
    # Written when Address had a "country" field and no "zip_code".
    data = _pack(["Oslo", "NO", None, Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city,country")])
    back = SERDE.loads_typed((C.TYPE_TAG, data))
    assert back == u.Address(city="Oslo") and back.model_fields_set == {"city"}
    # A required field missing from the stored row is an error naming it.
    data = _pack(["0150", None, Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0zip_code")])
    with pytest.raises(MalformedDataError, match="required field 'city'"):
        SERDE.loads_typed((C.TYPE_TAG, data))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        (["Oslo", None, Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city,zip_code")], "1 values"),
        (["a", "b", None, Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city,city")], "twice"),
        (["Oslo", Ext(C.PYDANTIC_V2_ROW, ADDRESS)], "malformed row marker"),
        ([Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city")], "unexpected state"),
        (["Oslo", 7, Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city")], "list of field names"),
    ],
)
def test_malformed_rows_are_clear_errors(state: Any, message: str) -> None:
    with pytest.raises(MalformedDataError, match=message):
        SERDE.loads_typed((C.TYPE_TAG, _pack(state)))


def test_a_row_cannot_set_names_that_are_not_fields() -> None:
    data = _pack(["Oslo", ["city", "__class__"], Ext(C.PYDANTIC_V2_ROW, ADDRESS + b"\0city")])
    back = SERDE.loads_typed((C.TYPE_TAG, data))
    assert back.model_fields_set == {"city"} and type(back) is u.Address


def test_cp1_data_of_earlier_versions_still_loads() -> None:
    # Exactly what version 0.1 wrote for these values (map layout, tag msgpack.cp1).
    message = [
        {"content": "hi", "additional_kwargs": {}, "response_metadata": {}, "type": "human"}
        | {"name": None, "id": "h1"},
        {},
        ["content", "id"],
        Ext(C.PYDANTIC_V2, b"langchain_core.messages.human:HumanMessage"),
    ]
    data = _pack({"messages": [message], "pair": [1, 2, Ext(C.TUPLE, b"")]})
    back = SERDE.loads_typed(("msgpack.cp1", data))
    assert back == {"messages": [HumanMessage(content="hi", id="h1")], "pair": (1, 2)}
    assert back["messages"][0].model_fields_set == {"content", "id"}

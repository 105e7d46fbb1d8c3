"""Lists of pydantic models written as one ROWS list (tag msgpack.cp5); cp4 and cp3 still load."""

from __future__ import annotations

from typing import Any

import msgpack
import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage

from checkpoint_base.serde import DisallowedTypeError, MalformedDataError, MsgpackSerializer
from checkpoint_base.serde import _codes as C
from checkpoint_base.serde._rows import _RECENT_SETS

from . import user_types as u

Ext = msgpack.ExtType
SERDE = MsgpackSerializer(allowed=[u.Address, u.Profile, u.Open, u.Plan, u.Root, u.Mood])
ADDRESS = "tests.serde.user_types:Address\0city,zip_code"
ROWS = Ext(C.ROWS, b"")
ROW_LISTS = Ext(C.ROW_LISTS, b"")

MESSAGES = [
    HumanMessage(content="What is 12 * 7?", id="h1"),
    AIMessage(content="", tool_calls=[{"name": "calc", "args": {"q": "12 * 7"}, "id": "c1"}]),
    ToolMessage(content="84", tool_call_id="c1", artifact={"exact": (84, 1)}),
    AIMessage(content="The answer is 84.", name="bot", response_metadata={"model": "m"}),
]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _same(back: list[Any], values: list[Any]) -> None:
    assert back == values
    assert [type(b) for b in back] == [type(v) for v in values]
    assert [b.model_fields_set for b in back] == [v.model_fields_set for v in values]
    assert [b.__pydantic_extra__ for b in back] == [v.__pydantic_extra__ for v in values]


def test_a_message_list_is_one_rows_list_naming_each_class_once() -> None:
    tag, data = SERDE.dumps_typed(MESSAGES)
    assert tag == C.ROWS_TAG == "msgpack.cp5"
    names, *flat, marker = msgpack.unpackb(data, strict_map_key=False)
    assert marker == ROWS
    assert [n.split("\0")[0] for n in names] == [
        "langchain_core.messages.human:HumanMessage",
        "langchain_core.messages.ai:AIMessage",
        "langchain_core.messages.tool:ToolMessage",
    ]
    # Each row: its class's index, fields_set (None: every field set), then one value per
    # field the class's name lists; no array per row.
    widths = [len(n.split("\0")[1].split(",")) for n in names]
    classes, at = [], 0
    while at < len(flat):
        classes.append(flat[at])
        at += 2 + widths[flat[at]]
    assert at == len(flat)
    assert classes == [0, 1, 2, 1]
    assert flat[2:4] == [MESSAGES[0].content, {}]  # content, additional_kwargs
    _same(SERDE.loads_typed((tag, data)), MESSAGES)
    # Smaller than the same messages written one marker each.
    one_by_one = _pack([SERDE.dumps_typed(m)[1] for m in MESSAGES])
    assert len(data) < len(one_by_one)


def _row_lists(names: list[str], flat: list[Any]) -> list[Any]:
    """The cp3 layout of a ROWS list: each row an array [value, ..., fields_set, index]."""
    widths = [len(n.split("\0")[1].split(",")) for n in names]
    rows, at = [], 0
    while at < len(flat):
        index, fields_set = flat[at], flat[at + 1]
        rows.append([*flat[at + 2 : at + 2 + widths[index]], fields_set, index])
        at += 2 + widths[index]
    return [names, *rows, ROW_LISTS]


@pytest.mark.parametrize(
    "values",
    [
        pytest.param(MESSAGES, id="messages"),
        pytest.param(
            [u.Profile(name="ann", tags={"x"}), u.Root([1, 2]), u.Address(city="Oslo")],
            id="rows the common path does not cover",
        ),
    ],
)
def test_cp3_row_lists_keep_loading(values: list[Any]) -> None:
    # What the previous version wrote for the same list: the same rows, one array each.
    names, *flat, _ = msgpack.unpackb(SERDE.dumps_typed(values)[1], strict_map_key=False)
    data = _pack(_row_lists(names, flat))
    back = SERDE.loads_typed((C.ROW_LISTS_TAG, data))
    _same(back, values)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param([HumanMessage(content="a")], id="one model"),
        pytest.param([HumanMessage(content="a"), {"k": 1}], id="not only models"),
        pytest.param([{"k": 1}, HumanMessage(content="a")], id="a model after a dict"),
        pytest.param([u.Open(a=1, b=2), u.Open(a=2)], id="extra fields"),  # type: ignore[call-arg]
        pytest.param([u.Open(a=2), u.Open(a=1, b=2)], id="extra fields after a row"),  # type: ignore[call-arg]
        pytest.param((HumanMessage(content="a"), HumanMessage(content="b")), id="a tuple"),
        pytest.param({"messages": MESSAGES}, id="a list inside a dict"),
        pytest.param([], id="empty"),
    ],
)
def test_other_values_are_written_item_by_item_under_cp2(value: Any) -> None:
    tag, data = SERDE.dumps_typed(value)
    assert tag == C.TYPE_TAG
    back = SERDE.loads_typed((tag, data))
    assert back == value and type(back) is type(value)


def test_a_model_missing_a_field_is_written_item_by_item() -> None:
    partial = u.Address.model_construct(city="Oslo")
    del partial.__dict__["zip_code"]  # no value at all, not even the default
    partial.__dict__["cached"] = 1  # while __dict__ keeps its length
    tag, data = SERDE.dumps_typed([u.Address(city="Bergen"), partial])
    assert tag == C.TYPE_TAG
    back = SERDE.loads_typed((tag, data))
    assert back == [u.Address(city="Bergen"), u.Address(city="Oslo")]


def test_rows_that_the_common_path_does_not_cover() -> None:
    values = [
        u.Profile(name="ann", tags={"x"}),  # private attributes: a post-init hook
        u.Root([1, 2]),  # a root model
        u.Address(city="Oslo"),  # zip_code not set: a fields_set list
        u.Address(city="Bergen", zip_code="5003"),  # every field set
        u.Open(a=1),  # extra="allow", no extra field
    ]
    tag, data = SERDE.dumps_typed(values)
    assert tag == C.ROWS_TAG
    back = SERDE.loads_typed((tag, data))
    _same(back, values)
    assert back[0]._cache == {}  # the private attribute got its default
    assert back[4].__pydantic_extra__ == {}


def test_rows_written_with_other_fields_fit_the_class_now() -> None:
    # Written when Address had a "country" field and no "zip_code".
    name = "tests.serde.user_types:Address\0city,country"
    flat = [0, None, "Oslo", "NO", 0, ["city"], "Bergen", "NO"]
    for tag, data in [
        (C.ROWS_TAG, _pack([[name], *flat, ROWS])),
        (C.ROW_LISTS_TAG, _pack(_row_lists([name], flat))),
    ]:
        back = SERDE.loads_typed((tag, data))
        assert back == [u.Address(city="Oslo"), u.Address(city="Bergen")]
        assert [b.model_fields_set for b in back] == [{"city"}, {"city"}]


def test_a_rows_list_rebuilds_only_allowed_classes() -> None:
    data = SERDE.dumps_typed([u.Address(city="a"), u.Address(city="b")])
    with pytest.raises(DisallowedTypeError, match="Address"):
        MsgpackSerializer().loads_typed(data)


def test_each_decoder_keeps_a_bounded_number_of_compiled_lists() -> None:
    serde = MsgpackSerializer(allowed=[u.Address])
    for n in range(300):  # 300 distinct name lists (fields renamed over time)
        name = f"tests.serde.user_types:Address\0city,old{n}"
        back = serde.loads_typed((C.ROWS_TAG, _pack([[name], 0, None, "x", n, ROWS])))
        assert back == [u.Address(city="x")]
        back = serde.loads_typed((C.ROW_LISTS_TAG, _pack([[name], ["x", n, None, 0], ROW_LISTS])))
        assert back == [u.Address(city="x")]
    assert len(serde._decoder._rows) <= 256


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([ROWS], "names of its classes"),
        (["x", 0, None, "Oslo", None, ROWS], "names of its classes"),
        ([[7], ROWS], "expected a class name"),
        ([["tests.serde.user_types:Address"], ROWS], "malformed row marker"),
        ([[ADDRESS], 1, None, "Oslo", None, ROWS], "row names class 1 of 1"),
        ([[ADDRESS], -1, None, "Oslo", None, ROWS], "class -1"),
        ([[ADDRESS], True, None, "Oslo", None, ROWS], "class True"),
        ([[ADDRESS], "0", None, "Oslo", None, ROWS], "class '0'"),
        ([[ADDRESS], 0, None, "Oslo", None, "x", ROWS], "class 'x'"),  # a value too many
        ([[ADDRESS], 0, None, "Oslo", ROWS], "ends inside a row"),  # a value short
        ([[ADDRESS], 0, ROWS], "ends inside a row"),
        ([[ADDRESS], 0, None, "Oslo", None, 0, None, ROWS], "ends inside a row"),
        ([[ADDRESS], 0, "city", "Oslo", None, ROWS], "list of field names"),
        ([[ADDRESS], 0, True, "Oslo", None, ROWS], "list of field names"),
        ([[ADDRESS], 0, 7, "Oslo", None, ROWS], "fields_set mask 7 names fields past"),
        ([[ADDRESS], 0, -1, "Oslo", None, ROWS], "fields_set mask -1"),
        ([["tests.serde.user_types:Address\0city,city"], 0, None, "a", "b", ROWS], "twice"),
        # A class whose row the common path does not rebuild (a root model).
        ([["tests.serde.user_types:Root\0root"], 0, None, ROWS], "ends inside a row"),
        ([["tests.serde.user_types:Root\0root"], 0, ROWS], "ends inside a row"),
    ],
)
def test_malformed_rows_lists_are_clear_errors(state: Any, message: str) -> None:
    with pytest.raises(MalformedDataError, match=message):
        SERDE.loads_typed((C.ROWS_TAG, _pack(state)))


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ([ROW_LISTS], "names of its classes"),
        (["x", ["Oslo", None, None, 0], ROW_LISTS], "names of its classes"),
        ([[7], ROW_LISTS], "expected a class name"),
        ([[ADDRESS], ["Oslo", None, None, 1], ROW_LISTS], "row names class 1 of 1"),
        ([[ADDRESS], ["Oslo", None, None, -1], ROW_LISTS], "class -1"),
        ([[ADDRESS], ["Oslo", None, None, True], ROW_LISTS], "class True"),
        ([[ADDRESS], ["Oslo", None, None, "0"], ROW_LISTS], "class '0'"),
        ([[ADDRESS], "Oslo", ROW_LISTS], "row of field values"),
        ([[ADDRESS], [], ROW_LISTS], "row of field values"),
        ([[ADDRESS], ["Oslo", "x", "y", None, 0], ROW_LISTS], "3 values for 2 fields"),
        ([[ADDRESS], ["Oslo", None, 0], ROW_LISTS], "1 values for 2 fields"),
        ([[ADDRESS], ["Oslo", None, "city", 0], ROW_LISTS], "list of field names"),
        # cp3 is read as a ROWS list: an int fields_set is a mask there too.
        ([[ADDRESS], ["Oslo", None, 7, 0], ROW_LISTS], "fields_set mask 7"),
    ],
)
def test_malformed_cp3_row_lists_are_clear_errors(state: Any, message: str) -> None:
    with pytest.raises(MalformedDataError, match=message):
        SERDE.loads_typed((C.ROW_LISTS_TAG, _pack(state)))


def test_cp2_data_keeps_loading() -> None:
    # What the previous version wrote for the same list: one row marker per message.
    from checkpoint_base.serde._encode import encode

    data = encode(MESSAGES)
    assert msgpack.unpackb(data, strict_map_key=False)[0][-1].code == C.PYDANTIC_V2_ROW
    _same(SERDE.loads_typed((C.TYPE_TAG, data)), MESSAGES)


def test_a_row_cannot_set_names_that_are_not_fields() -> None:
    data = _pack([[ADDRESS], 0, ["city", "__class__"], "Oslo", None, ROWS])
    (back,) = SERDE.loads_typed((C.ROWS_TAG, data))
    assert type(back) is u.Address and back.model_fields_set == {"city"}


def test_many_fields_sets_of_one_class_each_come_back_and_pack_alike() -> None:
    """Row writers remember a few recent fields_sets with their sorted names: more shapes
    than that, interleaved, must each be written as their own (and the same bytes whatever
    was written before)."""
    shapes = [
        {"content": "a"},
        {"content": "b", "id": "x"},
        {"content": "c", "name": "n"},
        {"content": "d", "id": "y", "name": "m"},
        {"content": "e", "response_metadata": {"k": 1}},
        {"content": "f", "id": "z", "response_metadata": {"k": 2}, "name": "o"},
    ]
    values = [AIMessage(**kwargs) for _ in range(3) for kwargs in shapes]
    values += [HumanMessage(content="h", id=f"h{i}") for i in range(3)]
    assert len({frozenset(v.model_fields_set) for v in values}) > _RECENT_SETS
    first = SERDE.dumps_typed(values)
    _same(SERDE.loads_typed(first), values)
    for shape in reversed(shapes):  # other sets written in between
        SERDE.dumps_typed([AIMessage(**shape), AIMessage(**shape)])
    assert SERDE.dumps_typed(values) == first
    one = AIMessage(content="g", id="w", name="p")  # a single model: the class's own writer
    back = SERDE.loads_typed(SERDE.dumps_typed(one))
    assert back == one and back.model_fields_set == one.model_fields_set


def test_fields_sets_are_bit_masks_and_cp4_name_lists_still_load() -> None:
    values = [u.Address(city="Oslo"), u.Address(city="Bergen", zip_code="5003")]
    tag, data = SERDE.dumps_typed(values)
    assert tag == "msgpack.cp5"
    _names, *flat, _marker = msgpack.unpackb(data, strict_map_key=False)
    assert flat == [0, 0b01, "Oslo", None, 0, None, "Bergen", "5003"]  # city is bit 0
    # What cp4 wrote for the same list: the fields_set as a list of names.
    cp4 = _pack([[ADDRESS], 0, ["city"], "Oslo", None, 0, None, "Bergen", "5003", ROWS])
    for back in (SERDE.loads_typed((tag, data)), SERDE.loads_typed(("msgpack.cp4", cp4))):
        _same(back, values)
    # A class the common path does not rebuild reads masks too.
    roots = [u.Profile(name="a", tags={"x"}), u.Profile(name="b")]
    _same(SERDE.loads_typed(SERDE.dumps_typed(roots)), roots)

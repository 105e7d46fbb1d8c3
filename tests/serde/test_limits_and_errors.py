"""Deep nesting fails with a clear error, never a crash; unsupported values are named."""

from __future__ import annotations

import collections
import threading
from typing import Any

import msgpack
import pytest

from checkpoint_base.serde import (
    MsgpackSerializer,
    NestingTooDeepError,
    SerializationError,
    UnsupportedTypeError,
)
from checkpoint_base.serde import _codes as C

from . import user_types as u
from .helpers import assert_same, assert_script_prints_ok, roundtrip

SERDE = MsgpackSerializer(allowed=u.ALL_USER_TYPES)


def _nest(depth: int, wrap: Any) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = wrap(value)
    return value


WRAPPERS = {
    "list": lambda v: [v],
    "dict": lambda v: {"k": v},
    "tuple": lambda v: (v,),
    "dataclass": lambda v: u.Slotted(1, v),
    "pydantic": lambda v: u.Open(a=1, child=v),
}


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
def test_moderate_nesting_round_trips(wrap: Any) -> None:
    value = _nest(200, wrap)
    assert_same(value, roundtrip(SERDE, value))


@pytest.mark.parametrize("wrap", WRAPPERS.values(), ids=WRAPPERS.keys())
@pytest.mark.parametrize("depth", [5_000, 100_000])
def test_deep_nesting_on_dumps_is_a_clear_error(wrap: Any, depth: int) -> None:
    with pytest.raises(NestingTooDeepError, match="deeper than msgpack allows"):
        SERDE.dumps_typed(_nest(depth, wrap))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((C.TYPE_TAG, b"\x91" * 200_000 + b"\xc0"), id="cp1 arrays"),
        pytest.param((C.TYPE_TAG, b"\x81\xa1k" * 200_000 + b"\xc0"), id="cp1 maps"),
        pytest.param(("msgpack", b"\x91" * 200_000 + b"\xc0"), id="jsonplus arrays"),
        pytest.param(("json", b"[" * 200_000 + b"]" * 200_000), id="json arrays"),
        pytest.param(("json", b'{"a":' * 200_000 + b"1" + b"}" * 200_000), id="json objects"),
    ],
)
def test_deep_nesting_on_loads_is_a_clear_error(data: tuple[str, bytes]) -> None:
    with pytest.raises(NestingTooDeepError):
        SERDE.loads_typed(data)


def test_deeply_nested_jsonplus_extensions_are_a_clear_error() -> None:
    # Each level is a nested msgpack buffer: LangGraph's format recurses in Python here.
    blob = msgpack.packb(None)
    for _ in range(5_000):
        blob = msgpack.packb(msgpack.ExtType(7, blob))  # 7: DeltaSnapshot wrapping the next
    with pytest.raises(NestingTooDeepError):
        SERDE.loads_typed(("msgpack", blob))


def test_json_with_deep_lc_envelopes() -> None:
    head = b'{"lc": 2, "type": "constructor", "id": ["builtins", "frozenset"], "args": [['
    doc = head * 50_000 + b"1" + b"]]}" * 50_000
    assert SERDE.loads_typed(("json", head * 3 + b"1" + b"]]}" * 3)) == frozenset(
        {frozenset({frozenset({1})})}
    )
    with pytest.raises(NestingTooDeepError):
        SERDE.loads_typed(("json", doc))


class Plain:
    pass


class MyDict(dict[str, int]):
    pass


@pytest.mark.parametrize(
    ("value", "named"),
    [
        (object(), "builtins.object"),
        (Plain(), "Plain"),
        (MyDict(a=1), "subclasses dict"),
        (lambda: 1, "function"),
        (collections.defaultdict(lambda: 0), "default_factory"),
        ({"nested": [Plain()]}, "Plain"),
        (u.Plan, "type"),
    ],
)
def test_unsupported_values_fail_on_dumps_naming_the_type(value: Any, named: str) -> None:
    with pytest.raises(UnsupportedTypeError, match=named):
        SERDE.dumps_typed(value)


def test_a_failing_attribute_is_reported_not_swallowed() -> None:
    class Broken(u.Slotted):  # type: ignore[misc]
        pass

    value = Broken(1)
    del value.b  # reading the field now raises AttributeError
    with pytest.raises(SerializationError, match="AttributeError"):
        SERDE.dumps_typed(value)
    # the per-thread packer is clean afterwards
    assert roundtrip(SERDE, [1, (2,)]) == [1, (2,)]


def test_threads_share_nothing_half_written() -> None:
    values = [{"thread": i, "data": [(i, j) for j in range(200)]} for i in range(8)]
    errors: list[BaseException] = []

    def work(value: Any) -> None:
        try:
            for _ in range(100):
                assert roundtrip(SERDE, value) == value
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(v,)) for v in values]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []


NO_NUMPY = """
import sys
sys.modules["numpy"] = None  # as if numpy were not installed: importing it fails
import msgpack
from checkpoint_base.serde import MalformedDataError, MsgpackSerializer
from checkpoint_base.serde import _codes as C

serde = MsgpackSerializer()
assert serde.loads_typed(serde.dumps_typed({"a": (1, 2)})) == {"a": (1, 2)}
array = msgpack.packb(["<f8", [1], "C", bytes(8), msgpack.ExtType(C.NDARRAY, b"")])
try:
    serde.loads_typed((C.TYPE_TAG, array))
except MalformedDataError as exc:
    assert "pip install numpy" in str(exc), exc
else:
    raise AssertionError("a numpy payload loaded without numpy")
print("ok")
"""


def test_numpy_stays_optional() -> None:
    assert_script_prints_ok(NO_NUMPY)

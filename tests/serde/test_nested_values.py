"""Property tests: arbitrary nestings of supported values round-trip with every type intact."""

from __future__ import annotations

import collections
import datetime as dt
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from checkpoint_base.serde import MsgpackSerializer

from . import user_types as u
from .helpers import assert_same, roundtrip

SERDE = MsgpackSerializer(allowed=u.ALL_USER_TYPES)

# Every code point, lone surrogates and NUL included.
any_text = st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
aware_datetimes = st.datetimes(
    timezones=st.one_of(st.none(), st.timezones()), allow_imaginary=False
)


def _leaves(nan: bool) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),  # unbounded: big ints included
        st.floats(allow_nan=nan),
        any_text,
        st.binary(max_size=20),
        st.uuids(),
        st.decimals(allow_nan=nan),
        st.dates(),
        st.times(timezones=st.one_of(st.none(), st.timezones())),
        st.timedeltas(),
        aware_datetimes,
        st.complex_numbers(allow_nan=nan),
        st.sampled_from(list(u.Color) + list(u.Priority) + list(u.Mood)),
    )


leaves = _leaves(nan=True)
# NaN is not equal to itself, and a signalling NaN Decimal cannot even be hashed.
set_members = _leaves(nan=False)


def _models(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(
        st.builds(u.Point, st.integers(), st.integers()),
        st.builds(u.Slotted, st.integers(), children),
        st.builds(u.Plan, st.lists(any_text, max_size=3), st.booleans()),
        st.builds(u.Frozen, any_text, aware_datetimes),
        st.builds(u.Address, city=any_text, zip_code=st.none() | any_text),
        st.builds(
            u.Profile,
            name=any_text,
            mood=st.sampled_from(u.Mood),
            tags=st.sets(any_text, max_size=3),
        ),
        st.builds(u.Open, a=st.integers(), more=children),
        st.builds(u.LegacyModel, a=st.integers(), b=any_text),
    )


def _containers(children: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    keys = st.one_of(any_text, st.integers(), st.tuples(st.integers(), any_text))
    return st.one_of(
        st.lists(children, max_size=4),
        st.lists(children, max_size=4).map(tuple),
        st.dictionaries(keys, children, max_size=4),
        st.frozensets(set_members, max_size=4),
        st.sets(set_members, max_size=4),
        st.lists(children, max_size=4).map(collections.deque),
        st.dictionaries(any_text, children, max_size=3).map(collections.OrderedDict),
        _models(children),
    )


values = st.recursive(leaves, _containers, max_leaves=25)


@settings(max_examples=300, deadline=None)
@given(values)
def test_any_nested_value_round_trips(value: Any) -> None:
    assert_same(value, roundtrip(SERDE, value))


@settings(max_examples=100, deadline=None)
@given(st.lists(values, min_size=1, max_size=5))
def test_checkpoint_shaped_values_round_trip(channel_values: list[Any]) -> None:
    checkpoint = {
        "v": 4,
        "id": "1ef",
        "ts": dt.datetime.now(dt.timezone.utc).isoformat(),
        "channel_values": {f"ch{i}": v for i, v in enumerate(channel_values)},
        "channel_versions": {f"ch{i}": f"{i:032}.{0:016}" for i in range(len(channel_values))},
        "versions_seen": {"node": {"ch0": "1"}},
    }
    assert_same(checkpoint, roundtrip(SERDE, checkpoint))

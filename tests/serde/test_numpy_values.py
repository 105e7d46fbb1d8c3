"""numpy arrays and scalars round-trip when numpy is installed (it stays optional)."""

from __future__ import annotations

from typing import Any

import pytest

np = pytest.importorskip("numpy")
hnp = pytest.importorskip("hypothesis.extra.numpy")

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from checkpoint_base.serde import (  # noqa: E402
    MalformedDataError,
    MsgpackSerializer,
    UnsupportedTypeError,
)

from .helpers import assert_same, roundtrip  # noqa: E402

SERDE = MsgpackSerializer()
_grid = np.arange(12, dtype=np.float64).reshape(3, 4)

ARRAYS: dict[str, Any] = {
    "float64 2-d": _grid,
    "fortran order": np.asfortranarray(_grid),
    "strided view": _grid[:, ::2],
    "transposed": _grid.T,
    "big-endian int": np.arange(5, dtype=">i4"),
    "bool": np.array([True, False]),
    "complex": np.array([1 + 2j], dtype=np.complex64),
    "datetime64": np.array(["2020-01-01", "NaT"], dtype="datetime64[D]"),
    "timedelta64": np.array([1, 2], dtype="timedelta64[ms]"),
    "unicode": np.array(["a", "héllo"]),
    "structured": np.array([(1, 2.5)], dtype=[("id", "<i4"), ("score", "<f8")]),
    "zero-d": np.array(7.5),
    "empty": np.empty((0, 3)),
}
SCALARS: dict[str, Any] = {
    "float32": np.float32(1.25),
    "float64": np.float64(-0.0),
    "int8": np.int8(-7),
    "uint64": np.uint64(2**64 - 1),
    "bool_": np.bool_(True),
    "datetime64": np.datetime64("2024-01-01T10:00"),
    "str_": np.str_("text"),
}


@pytest.mark.parametrize("value", ARRAYS.values(), ids=ARRAYS.keys())
def test_arrays(value: Any) -> None:
    assert_same(value, roundtrip(SERDE, value))
    assert_same({"state": [value]}, roundtrip(SERDE, {"state": [value]}))


@pytest.mark.parametrize("value", SCALARS.values(), ids=SCALARS.keys())
def test_scalars(value: Any) -> None:
    assert_same(value, roundtrip(SERDE, value))


def test_object_arrays_are_refused_both_ways() -> None:
    with pytest.raises(UnsupportedTypeError, match="dtype object"):
        SERDE.dumps_typed(np.array([object()]))
    # A crafted payload asking for an object dtype must not turn bytes into pointers.
    tag, data = SERDE.dumps_typed(np.arange(2, dtype=np.int64))
    crafted = data.replace(b"<i8", b"|O8")
    with pytest.raises(MalformedDataError, match="Python objects"):
        SERDE.loads_typed((tag, crafted))


@settings(max_examples=60, deadline=None)
@given(
    hnp.arrays(
        dtype=st.one_of(hnp.integer_dtypes(), hnp.floating_dtypes(), hnp.complex_number_dtypes()),
        shape=hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
    )
)
def test_any_numeric_array(value: Any) -> None:
    assert_same(value, roundtrip(SERDE, value))

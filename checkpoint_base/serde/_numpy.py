"""numpy arrays and scalars. numpy stays optional: nothing here imports it unless a stored
array is being loaded (a fixed module, never one named by the data)."""

from __future__ import annotations

import sys
from typing import Any

from msgpack import ExtType

from . import _codes as C
from ._errors import MalformedDataError, UnsupportedTypeError

__all__ = ["build_ndarray", "build_scalar", "numpy_encoder"]

_NDARRAY = ExtType(C.NDARRAY, b"")
_NPSCALAR = ExtType(C.NPSCALAR, b"")


def numpy_encoder(cls: type) -> Any:
    """The writer for a numpy type, or None if `cls` is not one (or numpy is not loaded)."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    if cls is np.ndarray:
        return _encode_ndarray
    if issubclass(cls, np.generic):
        return _encode_scalar
    return None


def _dtype_state(dtype: Any) -> Any:
    if dtype.hasobject:
        raise UnsupportedTypeError(
            "numpy values of dtype object hold Python objects and cannot be stored"
        )
    # A plain dtype is its `str` ("<f8"); a structured one needs its field description.
    return dtype.str if dtype.fields is None else dtype.descr


def _encode_ndarray(o: Any) -> list[Any]:
    state = _dtype_state(o.dtype)
    if o.flags.c_contiguous:
        flat, order = o, "C"
    elif o.flags.f_contiguous:
        flat, order = o.T, "F"  # the transpose of an F-ordered array is C-contiguous
    else:
        flat, order = o.copy(order="C"), "C"
    try:
        # No copy here: msgpack copies the buffer once, into its output.
        raw: Any = memoryview(flat)
    except ValueError:  # datetime64 / timedelta64 do not export a buffer
        raw = flat.tobytes()
    return [state, list(o.shape), order, raw, _NDARRAY]


def _encode_scalar(o: Any) -> list[Any]:
    return [_dtype_state(o.dtype), o.tobytes(), _NPSCALAR]


def _numpy() -> Any:
    try:
        import numpy
    except ImportError:
        raise MalformedDataError(
            "the data holds a numpy value but numpy is not installed: pip install numpy"
        ) from None
    return numpy


def _dtype(np: Any, state: Any) -> Any:
    dtype = np.dtype(state)
    if dtype.hasobject:  # raw bytes must never become object pointers
        raise MalformedDataError("refusing a numpy dtype that holds Python objects")
    return dtype


def build_ndarray(a: list[Any]) -> Any:
    """Rebuild an array; the result owns writable memory, like the array that was stored."""
    state, shape, order, raw = a
    if type(raw) is not bytes or order not in ("C", "F") or type(shape) is not list:
        raise MalformedDataError("malformed numpy array")
    np = _numpy()
    flat = np.frombuffer(raw, dtype=_dtype(np, state))
    return flat.reshape(tuple(shape), order=order).copy(order="K")


def build_scalar(a: list[Any]) -> Any:
    """Rebuild a numpy scalar (np.float32, np.int64, np.datetime64, ...) of its exact type."""
    state, raw = a
    if type(raw) is not bytes:
        raise MalformedDataError("malformed numpy scalar")
    np = _numpy()
    return np.frombuffer(raw, dtype=_dtype(np, state))[0]

"""`assert_same`: equality that also checks every type, float bit and container order."""

from __future__ import annotations

import collections
import dataclasses
import datetime as dt
import decimal
import os
import re
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pydantic
import pydantic.v1

from checkpoint_base.serde import MsgpackSerializer


def assert_script_prints_ok(code: str, **env: str) -> None:
    """Run `code` in a fresh interpreter that imports this checkout; it must print just "ok"."""
    root = str(Path(__file__).resolve().parents[2])
    result = subprocess.run(
        [sys.executable, "-c", code],
        env={**os.environ, **env, "PYTHONPATH": root},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip() == "ok"


def roundtrip(serde: MsgpackSerializer, value: Any) -> Any:
    tag, data = serde.dumps_typed(value)
    assert isinstance(data, bytes)
    return serde.loads_typed((tag, data))


def _tz_state(tz: dt.tzinfo | None) -> Any:
    if isinstance(tz, dt.timezone):
        return ("timezone", tz.__getinitargs__())  # type: ignore[attr-defined]
    return tz


def assert_same(expected: Any, actual: Any, path: str = "value") -> None:
    te, ta = type(expected), type(actual)
    assert te is ta, f"{path}: {te.__qualname__} came back as {ta.__qualname__}"
    np = sys.modules.get("numpy")
    if te is float:
        assert struct.pack("<d", expected) == struct.pack("<d", actual), f"{path}: {actual!r}"
    elif te is complex:
        assert_same(expected.real, actual.real, f"{path}.real")
        assert_same(expected.imag, actual.imag, f"{path}.imag")
    elif te is decimal.Decimal:
        assert expected.as_tuple() == actual.as_tuple(), f"{path}: {actual!r}"
    elif te in (dt.datetime, dt.time):
        assert expected.replace(tzinfo=None) == actual.replace(tzinfo=None), path
        assert expected.fold == actual.fold, f"{path}.fold"
        assert _tz_state(expected.tzinfo) == _tz_state(actual.tzinfo), f"{path}.tzinfo"
    elif te is dt.timezone:
        assert _tz_state(expected) == _tz_state(actual), path
    elif isinstance(expected, (list, tuple, collections.deque)):
        assert len(expected) == len(actual), f"{path}: length"
        if te is collections.deque:
            assert expected.maxlen == actual.maxlen, f"{path}.maxlen"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            assert_same(e, a, f"{path}[{i}]")
    elif isinstance(expected, dict):
        assert list(expected) == list(actual), f"{path}: keys {list(actual)!r}"
        if te is collections.defaultdict:
            assert expected.default_factory is actual.default_factory, f"{path}.default_factory"
        for (ke, ve), (ka, va) in zip(expected.items(), actual.items(), strict=True):
            assert_same(ke, ka, f"{path} key {ke!r}")
            assert_same(ve, va, f"{path}[{ke!r}]")
    elif isinstance(expected, (set, frozenset)):
        assert expected == actual, path
        by_value = {x: x for x in actual}
        for e in expected:
            assert_same(e, by_value[e], f"{path} member {e!r}")
    elif isinstance(expected, pydantic.BaseModel):
        assert_same(expected.__dict__, actual.__dict__, f"{path}.__dict__")
        assert expected.model_fields_set == actual.model_fields_set, f"{path} fields_set"
        assert_same(expected.model_extra, actual.model_extra, f"{path} extra")
    elif isinstance(expected, pydantic.v1.BaseModel):
        assert_same(expected.__dict__, actual.__dict__, f"{path}.__dict__")
        assert expected.__fields_set__ == actual.__fields_set__, f"{path} fields_set"
    elif dataclasses.is_dataclass(expected):
        for f in dataclasses.fields(expected):
            assert_same(getattr(expected, f.name), getattr(actual, f.name), f"{path}.{f.name}")
        names = {f.name for f in dataclasses.fields(expected)}

        def others(obj: Any) -> dict[str, Any]:  # attributes that are not fields
            return {k: v for k, v in getattr(obj, "__dict__", {}).items() if k not in names}

        assert_same(others(expected), others(actual), f"{path} attributes")
    elif isinstance(expected, re.Pattern):
        assert (expected.pattern, expected.flags) == (actual.pattern, actual.flags), path
    elif isinstance(expected, BaseException):
        assert repr(expected) == repr(actual), path
    elif np is not None and te is np.ndarray:
        assert expected.dtype == actual.dtype and expected.shape == actual.shape, path
        assert expected.tobytes() == actual.tobytes(), f"{path}: contents"
        assert actual.flags.writeable, f"{path}: read-only"
        assert expected.flags.f_contiguous == actual.flags.f_contiguous, f"{path}: order"
    elif np is not None and isinstance(expected, np.generic):
        assert expected.dtype == actual.dtype and expected.tobytes() == actual.tobytes(), path
    elif te.__module__.startswith("langgraph."):  # Send, Item: plain slotted classes
        for name in te.__slots__:
            assert_same(getattr(expected, name), getattr(actual, name), f"{path}.{name}")
    else:
        assert expected == actual, f"{path}: {actual!r} != {expected!r}"

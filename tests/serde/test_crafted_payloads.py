"""Crafted data naming os.system, subprocess or any class that is not allowed runs nothing.

Every payload is fed three ways: to our reader with the dangerous functions replaced by
recorders (nothing may be recorded), to our reader with the real functions (the sentinel file
the command would create must not appear), and, as a control, to LangGraph's
`JsonPlusSerializer` in its permissive mode, which does run them: the payloads are live.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_base.serde import (
    DisallowedTypeError,
    MalformedDataError,
    MsgpackSerializer,
    SerializationError,
    TypeNotFoundError,
)
from checkpoint_base.serde import _codes as C

from . import user_types as u

Ext = msgpack.ExtType
Payload = tuple[str, bytes]


def _pack(value: Any) -> bytes:
    return msgpack.packb(value, use_bin_type=True)


def _jp_ext(code: int, *state: Any) -> msgpack.ExtType:
    """An extension object as JsonPlusSerializer writes it: nested msgpack."""
    return Ext(code, _pack(list(state)))


def ours(cmd: str) -> dict[str, Payload]:
    """Our own format, with markers naming dangerous callables under every class kind."""
    out: dict[str, Payload] = {}
    for kind in sorted(C.CLASS_KINDS):
        out[f"cp1 os.system as kind {kind}"] = (
            C.TYPE_TAG,
            _pack([{"command": cmd}, None, None, Ext(kind, b"os:system")]),
        )
    out["cp1 subprocess.Popen"] = (
        C.TYPE_TAG,
        _pack([{"args": cmd, "shell": True}, None, None, Ext(C.PYDANTIC_V2, b"subprocess:Popen")]),
    )
    out["cp1 subprocess.run nested"] = (
        C.TYPE_TAG,
        _pack({"ok": [1, [[cmd], Ext(C.NAMEDTUPLE, b"subprocess:run")]]}),
    )
    out["cp1 builtin exception marker naming eval"] = (
        C.TYPE_TAG,
        _pack(["eval", [f"__import__('os').system({cmd!r})"], Ext(C.EXCEPTION, b"")]),
    )
    out["cp2 subprocess.Popen row"] = (
        C.TYPE_TAG,
        _pack([cmd, True, None, Ext(C.PYDANTIC_V2_ROW, b"subprocess:Popen\0args,shell")]),
    )
    out["cp2 os.system row, names smuggling a dunder"] = (
        C.TYPE_TAG,
        _pack([cmd, None, Ext(C.PYDANTIC_V2_ROW, b"os:system\0__class__")]),
    )
    out["cp1 class not allowed"] = (
        C.TYPE_TAG,
        _pack([{"steps": [cmd]}, Ext(C.DATACLASS, b"tests.serde.user_types:Plan")]),
    )
    return out


def jsonplus_msgpack(cmd: str) -> dict[str, Payload]:
    """LangGraph's msgpack format: each extension code, naming dangerous callables."""
    shell = ["sh", "-c", cmd]
    exts = {
        "single arg os.system": _jp_ext(0, "os", "system", cmd),
        "pos args subprocess.check_output": _jp_ext(1, "subprocess", "check_output", [shell]),
        "kw args subprocess.Popen": _jp_ext(2, "subprocess", "Popen", {"args": cmd, "shell": True}),
        "method os.system": _jp_ext(3, "os", "system", cmd, "__call__"),
        "pydantic v1 subprocess.Popen": _jp_ext(4, "subprocess", "Popen", {"args": shell}),
        "pydantic v2 subprocess.run": _jp_ext(5, "subprocess", "run", {"args": shell}, "x"),
        "inside a set": _jp_ext(0, "builtins", "set", [_jp_ext(0, "os", "system", cmd)]),
        "class not allowed": _jp_ext(0, "tests.serde.user_types", "Color", "red"),
    }
    return {f"jsonplus msgpack {k}": ("msgpack", _pack(v)) for k, v in exts.items()}


def jsonplus_json(cmd: str) -> dict[str, Payload]:
    """LangGraph's older json format (LangChain lc envelopes)."""

    def lc2(ident: list[str], **extra: Any) -> dict[str, Any]:
        return {"lc": 2, "type": "constructor", "id": ident, **extra}

    docs = {
        "lc2 os.system": lc2(["os", "system"], args=[cmd]),
        "lc2 subprocess.Popen": lc2(["subprocess", "Popen"], kwargs={"args": cmd, "shell": True}),
        "lc2 eval": lc2(["builtins", "eval"], args=[f"__import__('os').system({cmd!r})"]),
        "lc2 method call": lc2(["os", "system"], method="__call__", args=[cmd]),
        "lc1 os.system": {"lc": 1, "type": "constructor", "id": ["os", "system"], "kwargs": {}},
        "lc2 class not allowed": lc2(
            ["tests", "serde", "user_types", "Plan"], kwargs={"steps": []}
        ),
    }
    return {f"jsonplus json {k}": ("json", json.dumps(v).encode()) for k, v in docs.items()}


def all_payloads(cmd: str) -> dict[str, Payload]:
    return {**ours(cmd), **jsonplus_msgpack(cmd), **jsonplus_json(cmd)}


NAMES = list(all_payloads("x"))


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the dangerous functions with recorders."""
    recorded: list[str] = []

    def recorder(name: str) -> Callable[..., Any]:
        def record(*args: Any, **kwargs: Any) -> int:
            recorded.append(name)
            return 0

        return record

    monkeypatch.setattr(os, "system", recorder("os.system"))
    for name in ("Popen", "run", "check_output"):
        monkeypatch.setattr(subprocess, name, recorder(f"subprocess.{name}"))
    return recorded


@pytest.mark.parametrize("name", NAMES)
def test_refused_with_a_clear_error_and_nothing_runs(name: str, calls: list[str]) -> None:
    tag, data = all_payloads("echo pwned")[name]
    with pytest.raises(SerializationError) as info:
        MsgpackSerializer().loads_typed((tag, data))
    assert calls == []
    message = str(info.value)
    if isinstance(info.value, DisallowedTypeError):
        assert f"{info.value.module}.{info.value.qualname}" in message
        assert "with_allowlist([(" in message  # the one-line fix
    else:
        assert isinstance(info.value, MalformedDataError), message


@pytest.mark.parametrize("name", NAMES)
def test_real_commands_do_not_run(name: str, tmp_path: Path) -> None:
    sentinel = tmp_path / "pwned"
    tag, data = all_payloads(f"touch {shlex.quote(str(sentinel))}")[name]
    with pytest.raises(SerializationError):
        MsgpackSerializer().loads_typed((tag, data))
    assert not sentinel.exists()


def test_control_the_payloads_are_live_against_a_permissive_reader(calls: list[str]) -> None:
    permissive = JsonPlusSerializer(allowed_msgpack_modules=True, allowed_json_modules=True)
    for tag, data in [*jsonplus_msgpack("x").values(), *jsonplus_json("x").values()]:
        with contextlib.suppress(Exception):  # some fail after running: fine here
            permissive.loads_typed((tag, data))
    assert "os.system" in calls and "subprocess.Popen" in calls


def test_disallowed_class_names_itself_and_the_fix() -> None:
    tag, data = MsgpackSerializer(allowed=[u.Plan]).dumps_typed(u.Plan(steps=["a"]))
    with pytest.raises(DisallowedTypeError) as info:
        MsgpackSerializer().loads_typed((tag, data))
    assert (info.value.module, info.value.qualname) == ("tests.serde.user_types", "Plan")
    assert "serde.with_allowlist([('tests.serde.user_types', 'Plan')])" in str(info.value)
    # ... and the fix works
    fixed = MsgpackSerializer().with_allowlist([("tests.serde.user_types", "Plan")])
    assert fixed.loads_typed((tag, data)) == u.Plan(steps=["a"])


def test_allowlisting_a_function_still_calls_nothing(calls: list[str]) -> None:
    serde = MsgpackSerializer(allowed=[("os", "system")])
    tag, data = ours("x")[f"cp1 os.system as kind {C.DATACLASS}"]
    with pytest.raises(TypeNotFoundError, match=r"os\.system"):
        serde.loads_typed((tag, data))
    with pytest.raises(SerializationError):
        serde.loads_typed(jsonplus_msgpack("x")["jsonplus msgpack single arg os.system"])
    assert calls == []


def test_a_module_named_by_the_data_is_never_imported() -> None:
    assert "this" not in sys.modules  # importing it prints the Zen of Python
    serde = MsgpackSerializer(allowed=[("this", "Zen")])
    for data in (
        (C.TYPE_TAG, _pack([{}, Ext(C.DATACLASS, b"this:Zen")])),
        ("msgpack", _pack(_jp_ext(2, "this", "Zen", {}))),
        ("json", json.dumps({"lc": 2, "type": "constructor", "id": ["this", "Zen"]}).encode()),
    ):
        with pytest.raises(TypeNotFoundError, match="not imported"):
            serde.loads_typed(data)
    assert "this" not in sys.modules


def test_an_alias_cannot_smuggle_another_class() -> None:
    # `user_types.Alias` would be Plan under another name: the name must match the class.
    u.Alias = u.Plan  # type: ignore[attr-defined]
    try:
        serde = MsgpackSerializer(allowed=[("tests.serde.user_types", "Alias")])
        data = _pack([{"steps": []}, Ext(C.DATACLASS, b"tests.serde.user_types:Alias")])
        with pytest.raises(TypeNotFoundError):
            serde.loads_typed((C.TYPE_TAG, data))
    finally:
        del u.Alias  # type: ignore[attr-defined]


def test_the_kind_comes_from_the_class_not_the_data() -> None:
    serde = MsgpackSerializer(allowed=[u.Color])
    data = _pack(
        [{"value": "red"}, None, None, Ext(C.PYDANTIC_V2, b"tests.serde.user_types:Color")]
    )
    with pytest.raises(MalformedDataError, match="is a pydantic model, but the class is a"):
        serde.loads_typed((C.TYPE_TAG, data))


def test_secrets_are_never_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    doc = {"lc": 1, "type": "secret", "id": ["OPENAI_API_KEY"]}
    with pytest.raises(MalformedDataError, match="secret") as info:
        MsgpackSerializer().loads_typed(("json", json.dumps({"key": doc}).encode()))
    assert "sk-secret" not in str(info.value)


@pytest.mark.parametrize(
    "state",
    [
        pytest.param(["../../etc/passwd", Ext(C.ZONEINFO, b"")], id="zoneinfo path traversal"),
        pytest.param([10**9, Ext(C.BIGINT, b"")], id="bigint not bytes"),
        pytest.param([99, {}, Ext(C.DEFAULTDICT, b"")], id="defaultdict factory"),
        pytest.param(["x", Ext(C.DATETIME, b"")], id="datetime arity"),
        pytest.param([{}, None, ["a", 1], Ext(C.PYDANTIC_V2, b"")], id="class without name"),
        pytest.param([1, Ext(120, b"")], id="unknown extension"),
        pytest.param(Ext(C.TUPLE, b""), id="bare marker"),
        pytest.param([{"steps": 1}, Ext(C.DATACLASS, b"no-colon")], id="malformed name"),
        pytest.param(["x", None, Ext(C.PYDANTIC_V2_ROW, b"os:system")], id="row without names"),
    ],
)
def test_malformed_state_is_a_clear_error(state: Any) -> None:
    with pytest.raises(MalformedDataError):
        MsgpackSerializer().loads_typed((C.TYPE_TAG, _pack(state)))


@pytest.mark.parametrize(
    "data",
    [
        pytest.param((C.TYPE_TAG, b"\x92\x01"), id="truncated"),
        pytest.param((C.TYPE_TAG, b"\xc1"), id="reserved byte"),
        pytest.param((C.TYPE_TAG, b"\xa2\xff\xfe"), id="invalid utf-8"),
        pytest.param(("msgpack", b"\xc7\x03\x00abc"), id="jsonplus garbage ext"),
        pytest.param(("json", b"{not json"), id="bad json"),
        pytest.param(("pickle", b"\x80\x04K\x01."), id="pickle refused"),
        pytest.param(("mystery", b""), id="unknown tag"),
    ],
)
def test_corrupt_bytes_are_a_clear_error(data: Payload) -> None:
    with pytest.raises(MalformedDataError):
        MsgpackSerializer().loads_typed(data)

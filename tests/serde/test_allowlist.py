"""What `allowed=` and `with_allowlist` add, how classes are found, and schema evolution."""

from __future__ import annotations

import dataclasses
import logging
import sys
from typing import Annotated, Any, TypedDict

import pydantic
import pytest
from langchain_core.messages import AnyMessage
from langgraph._internal._serde import build_serde_allowlist

from checkpoint_base import MemorySaver, _schema_types
from checkpoint_base.serde import (
    DisallowedTypeError,
    MalformedDataError,
    MsgpackSerializer,
    _errors,
)

from . import user_types as u
from .helpers import assert_same, roundtrip


def _written(value: Any) -> tuple[str, bytes]:
    return MsgpackSerializer(allowed=u.ALL_USER_TYPES).dumps_typed(value)


def test_user_types_need_allowing() -> None:
    data = _written(u.Profile(name="a"))
    with pytest.raises(DisallowedTypeError):
        MsgpackSerializer().loads_typed(data)


@pytest.mark.parametrize(
    ("version", "hint"),
    [
        ("1.0.9", "; LangGraph 1.0.9, installed here, does not: 1.0.10 and later do"),
        ("1.0", "; LangGraph 1.0, installed here, does not: 1.0.10 and later do"),
        ("0.6.11", "; LangGraph 0.6.11, installed here, does not: 1.0.10 and later do"),
        ("1.0.10", ""),
        ("1.1.0rc1", ""),
        ("1.2.24", ""),
        ("2", ""),
        (None, ""),  # LangGraph not installed: no graph, nothing to say of one
        ("unknown", ""),
    ],
)
def test_the_error_says_when_langgraph_does_not_register_the_schema(
    version: str | None, hint: str
) -> None:
    assert _errors.schema_hand_off(version) == hint


def test_the_error_names_the_installed_langgraph_that_does_not_register_the_schema(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # LangGraph before 1.0.10 never calls the saver's with_allowlist when it compiles a graph,
    # so "use it in the graph's state schema" does not help there: the error says so.
    data = _written(u.Profile(name="a"))
    monkeypatch.setattr(_errors, "langgraph_version", lambda: "1.0.6")
    with pytest.raises(DisallowedTypeError) as old:
        MsgpackSerializer().loads_typed(data)
    assert str(old.value).endswith(
        "through with_allowlist; LangGraph 1.0.6, installed here, does not: 1.0.10 and later do)."
    )
    monkeypatch.setattr(_errors, "langgraph_version", lambda: "1.2.24")
    with pytest.raises(DisallowedTypeError) as new:
        MsgpackSerializer().loads_typed(data)
    assert str(new.value).endswith("through with_allowlist).")


def test_the_installed_langgraph_registers_the_schema() -> None:
    # The suite's own LangGraph is one the package supports: the error adds nothing.
    version = _errors.langgraph_version()
    assert version is not None
    assert _errors.schema_hand_off(version) == ""


@pytest.mark.parametrize(
    "entry", [u.Profile, ("tests.serde.user_types", "Profile")], ids=["class", "tuple"]
)
def test_allowed_as_class_or_tuple(entry: Any) -> None:
    data = _written(u.Profile(name="a", address=u.Address(city="c")))
    with pytest.raises(DisallowedTypeError, match="Address"):  # nested types need allowing too
        MsgpackSerializer(allowed=[entry, u.Mood]).loads_typed(data)
    serde = MsgpackSerializer(allowed=[entry, u.Address, u.Mood])
    assert serde.loads_typed(data) == u.Profile(name="a", address=u.Address(city="c"))


def test_with_allowlist_returns_new_serializers_and_caches_them() -> None:
    base = MsgpackSerializer()
    extra = [("tests.serde.user_types", "Color")]
    child = base.with_allowlist(extra)
    assert child is not base and base.allowed == frozenset()
    assert child.allowed == frozenset(extra)
    assert base.with_allowlist(extra) is child  # LangGraph asks again on every invocation
    assert child.with_allowlist(extra) is child  # nothing new: the same serializer
    assert child.with_allowlist([]) is child
    grandchild = child.with_allowlist([u.Point])
    assert grandchild.allowed == {*extra, ("tests.serde.user_types", "Point")}
    assert grandchild.loads_typed(_written(u.Color.RED)) is u.Color.RED


def test_with_allowlist_answers_by_the_entries_whatever_holds_them() -> None:
    base = MsgpackSerializer()
    pair = ("tests.serde.user_types", "Color")
    child = base.with_allowlist([pair, u.Point])
    assert base.with_allowlist({u.Point, pair}) is child
    assert base.with_allowlist(e for e in (pair, u.Point)) is child  # an iterator, read once
    assert base.with_allowlist(iter([pair])).allowed == {pair}
    known = MsgpackSerializer(allowed=[pair])
    assert known.with_allowlist({pair}) is known and known.with_allowlist({pair}) is known
    for _ in range(2):  # a refused entry is refused again, not remembered
        with pytest.raises(TypeError, match="not"):
            base.with_allowlist([pair, ["m", "n"]])  # type: ignore[list-item]
    answers = [base.with_allowlist([("m", f"C{i}")]) for i in range(200)]
    assert len({id(a) for a in answers}) == 200 and all(a is not base for a in answers)
    assert len(base._answers) <= 64 and len(base._children) <= 64  # bounded


def test_invalid_allowlist_entries_are_rejected() -> None:
    for entry in ["tests.serde.user_types.Color", ("m",), ("m", "n", "method"), ("m", 1)]:
        with pytest.raises(TypeError):
            MsgpackSerializer().with_allowlist([entry])  # type: ignore[list-item]


def test_langgraph_name_form_allows_nested_classes() -> None:
    # LangGraph registers (module, __name__); Outer.Inner's qualname is longer.
    serde = MsgpackSerializer(allowed=[("tests.serde.user_types", "Inner")])
    assert serde.loads_typed(_written(u.Outer.Inner(3))) == u.Outer.Inner(3)


def test_class_defined_in_a_function() -> None:
    @dataclasses.dataclass
    class Local:
        x: int

    writer = MsgpackSerializer()
    data = writer.dumps_typed(Local(1))
    # Given as a class object, it is found in any serializer.
    assert MsgpackSerializer(allowed=[Local]).loads_typed(data) == Local(1)
    # Given by LangGraph as (module, name), it is found because this process wrote it.
    by_name = MsgpackSerializer(allowed=[(__name__, "Local")])
    assert by_name.loads_typed(data) == Local(1)
    with pytest.raises(DisallowedTypeError):
        writer.loads_typed(data)  # writing a class never allows reading it


def test_a_reloaded_module_rebuilds_its_new_class(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After `importlib.reload` (a notebook's edit-and-rerun), a value is rebuilt as the
    module's class now, not the one this process wrote before the reload."""
    import importlib
    import sys
    import uuid

    name = f"reloaded_{uuid.uuid4().hex[:8]}"
    source = "from dataclasses import dataclass\n@dataclass\nclass Ticket:\n    id: int\n"
    (tmp_path / f"{name}.py").write_text(source)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module(name)
    try:
        old = module.Ticket
        data = MsgpackSerializer().dumps_typed(old(1))  # this process has written the old one
        module = importlib.reload(module)
        assert module.Ticket is not old
        got = MsgpackSerializer(allowed=[(name, "Ticket")]).loads_typed(data)
        assert type(got) is module.Ticket and got == module.Ticket(1)
    finally:
        sys.modules.pop(name, None)


def test_allowlist_from_a_langgraph_state_schema() -> None:
    class State(TypedDict):
        messages: Annotated[list[AnyMessage], "reducer"]
        profile: u.Profile
        plan: u.Plan | None
        color: u.Color

    serde = MsgpackSerializer().with_allowlist(build_serde_allowlist(schemas=[State]))
    value = {
        "profile": u.Profile(name="x", address=u.Address(city="y"), history=[u.Plan(["s"])]),
        "plan": u.Plan(steps=["a"]),
        "color": u.Color.GREEN,
    }
    assert_same(value, serde.loads_typed(_written(value)))


def _evolving(**fields: Any) -> type[pydantic.BaseModel]:
    model = pydantic.create_model("Evolving", __module__=__name__, **fields)
    return model


def test_pydantic_schema_evolution() -> None:
    v1 = _evolving(a=(int, ...), gone=(str, "x"))
    data = MsgpackSerializer().dumps_typed(v1(a=1))
    v2 = _evolving(a=(int, ...), added=(list[int], pydantic.Field(default_factory=list)))
    loaded = MsgpackSerializer(allowed=[v2]).loads_typed(data)
    assert type(loaded) is v2 and loaded.a == 1 and loaded.added == []
    assert not hasattr(loaded, "gone")
    v3 = _evolving(a=(int, ...), required=(str, ...))
    with pytest.raises(MalformedDataError, match="required field 'required'"):
        MsgpackSerializer(allowed=[v3]).loads_typed(data)


def test_dataclass_schema_evolution() -> None:
    v1 = dataclasses.make_dataclass("Evolving", [("a", int)], namespace={"__module__": __name__})
    data = MsgpackSerializer().dumps_typed(v1(1))
    v2 = dataclasses.make_dataclass(
        "Evolving",
        [("a", int), ("b", list, dataclasses.field(default_factory=list))],
        namespace={"__module__": __name__},
    )
    loaded = MsgpackSerializer(allowed=[v2]).loads_typed(data)
    assert loaded == v2(1, [])
    v3 = dataclasses.make_dataclass(
        "Evolving", [("a", int), ("c", int)], namespace={"__module__": __name__}
    )
    with pytest.raises(MalformedDataError, match="field 'c'"):
        MsgpackSerializer(allowed=[v3]).loads_typed(data)


def test_repr_shows_the_additions() -> None:
    serde = MsgpackSerializer(allowed=[u.Color])
    assert repr(serde) == "MsgpackSerializer(allowed=[('tests.serde.user_types', 'Color')])"
    assert roundtrip(serde, u.Color.RED) is u.Color.RED


def test_a_saver_on_a_langgraph_without_the_hand_off_warns_once(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # LangGraph 1.0.6: `langgraph._internal` has no `_serde`; creating a saver says what will
    # fail (reading back the graph's own types) before a checkpoint is written, and only once.
    import langgraph._internal

    monkeypatch.setattr(_schema_types, "_on", None)
    monkeypatch.setattr(_schema_types, "langgraph_version", lambda: "1.0.6")
    monkeypatch.delattr(langgraph._internal, "_serde")
    monkeypatch.setitem(sys.modules, "langgraph._internal._serde", None)  # import fails
    with caplog.at_level(logging.WARNING, logger=_schema_types.__name__):
        MemorySaver()
        assert _schema_types.enable_schema_allowlists() is False
    said = [r.getMessage() for r in caplog.records if r.name == _schema_types.__name__]
    assert said == [
        "LangGraph 1.0.6 does not hand a compiled graph's state types to its checkpointer "
        "(LangGraph 1.0.10 and later do), so checkpoints holding your own pydantic models, "
        "dataclasses or enums will not load: upgrade LangGraph, or allow the types with "
        "MsgpackSerializer(allowed=[...]) or saver.with_allowlist([...])"
    ]


def test_without_langgraph_a_saver_says_nothing(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # langgraph-checkpoint alone (no graph can be compiled): nothing to hand off, no warning.
    monkeypatch.setattr(_schema_types, "_on", None)
    monkeypatch.setattr(_schema_types, "langgraph_version", lambda: None)
    with caplog.at_level(logging.WARNING, logger=_schema_types.__name__):
        assert _schema_types.enable_schema_allowlists() is False
    assert not [r for r in caplog.records if r.name == _schema_types.__name__]

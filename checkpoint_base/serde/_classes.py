"""Instances of classes: pydantic models (v2 and v1), dataclasses, enums, NamedTuples and the
slotted LangGraph classes `Send` and `Item`.

An instance is written as its state plus a marker holding `module:qualname`. On load the class
comes from the allowlist (see `_allowlist`), and its *kind* is read from the class itself, never
from the data. Models and dataclasses are rebuilt the way pydantic's `model_construct` and
pickle do it: a bare instance whose fields are set directly. This is faithful (no validator
runs twice, `init=False` fields and `fields_set` survive) and about six times faster than
calling the constructor, measured on AIMessages (benchmarks/results/serde.md, "Choices inside
the serializer"). A dataclass with `__post_init__` is the exception: its constructor runs, so
attributes it derives are rebuilt. A pydantic v2 model is written as a row when it can be,
and lists of them as `ROWS` lists: those are written and rebuilt in `_rows`.
"""

from __future__ import annotations

import dataclasses
import enum
import sys
import weakref
from collections.abc import Callable
from typing import Any

from msgpack import ExtType

from . import _codes as C
from ._builtins import Builder, Encoder
from ._errors import MalformedDataError

__all__ = [
    "SEEN",
    "TRUSTED_SLOTS",
    "class_builder",
    "class_encoder",
    "class_kind",
    "key_of",
]

# Classes this process has written, by "module:qualname". Only used to *find* a class that the
# allowlist already allows but that is not reachable as a module attribute (a class defined in
# a function); it never widens what may be loaded.
SEEN: weakref.WeakValueDictionary[str, type] = weakref.WeakValueDictionary()

# Plain slotted classes we know how to rebuild attribute by attribute.
TRUSTED_SLOTS = frozenset({("langgraph.types", "Send"), ("langgraph.store.base", "Item")})

_set = object.__setattr__


def key_of(cls: type) -> str:
    """The name a class is stored under: `module:qualname`."""
    return f"{cls.__module__}:{cls.__qualname__}"


def class_kind(cls: type) -> int | None:
    """Which rebuild strategy fits `cls`, decided by the class alone; None if none does."""
    pyd = sys.modules.get("pydantic")
    if pyd is not None and issubclass(cls, pyd.BaseModel):
        return C.PYDANTIC_V2
    pyd_v1 = sys.modules.get("pydantic.v1")
    if pyd_v1 is not None and issubclass(cls, pyd_v1.BaseModel):
        return C.PYDANTIC_V1
    if issubclass(cls, enum.Enum):
        return C.ENUM
    if issubclass(cls, tuple) and isinstance(getattr(cls, "_fields", None), tuple):
        return C.NAMEDTUPLE
    if dataclasses.is_dataclass(cls):
        return C.DATACLASS
    if (cls.__module__, cls.__qualname__) in TRUSTED_SLOTS:
        return C.SLOTS
    return None


def _slot_names(cls: type) -> tuple[str, ...]:
    names: list[str] = []
    for klass in reversed(cls.__mro__):
        slots = klass.__dict__.get("__slots__", ())
        for name in (slots,) if isinstance(slots, str) else slots:
            if name not in ("__dict__", "__weakref__") and name not in names:
                names.append(name)
    return tuple(names)


def class_encoder(cls: type, kind: int) -> Encoder:
    """The writer for instances of `cls` (of the given kind); a pydantic v2 model's is
    `_rows.pydantic_v2_encoder`."""
    key = key_of(cls)
    SEEN[key] = cls
    marker = ExtType(kind, key.encode())
    if kind == C.PYDANTIC_V1:

        def pydantic_v1(o: Any) -> list[Any]:
            d = o.__dict__
            fields_set = o.__fields_set__
            return [d, None if fields_set == d.keys() else sorted(fields_set), marker]

        return pydantic_v1
    if kind == C.DATACLASS:
        field_names = tuple(f.name for f in dataclasses.fields(cls))
        name_set = frozenset(field_names)

        def dataclass(o: Any) -> list[Any]:
            d = getattr(o, "__dict__", None)
            if d is None or d.keys() != name_set:  # slotted, or other attributes besides
                d = {n: getattr(o, n) for n in field_names}
            return [d, marker]

        return dataclass
    if kind == C.ENUM:
        return lambda o: [o._value_, marker]
    if kind == C.NAMEDTUPLE:
        return lambda o: [*o, marker]
    slots = _slot_names(cls)
    return lambda o: [{n: getattr(o, n) for n in slots}, marker]


def _mapping(value: Any) -> dict[Any, Any]:
    if type(value) is not dict:
        raise MalformedDataError(f"expected a map of fields, got {type(value).__name__}")
    return value


def _list(value: Any) -> list[Any]:
    if type(value) is not list:
        raise MalformedDataError("expected a list of field names")
    return value


def class_builder(cls: type, kind: int) -> Builder:
    """The rebuilder for instances of `cls`; `kind` must be `class_kind(cls)`."""
    if kind == C.PYDANTIC_V2:
        return _pydantic_v2_builder(cls)
    if kind == C.PYDANTIC_V1:
        return _pydantic_v1_builder(cls)
    if kind == C.DATACLASS:
        return _dataclass_builder(cls)
    if kind == C.ENUM:
        enum_cls: Any = cls
        return lambda a: enum_cls(*a) if len(a) == 1 else _arity(cls)
    if kind == C.NAMEDTUPLE:
        return lambda a: cls(*a)
    return _slots_builder(cls)


def _arity(cls: type) -> Any:
    raise MalformedDataError(f"unexpected state for {cls.__qualname__}")


def _setter(cls: type, name: str) -> Callable[[Any, Any], None]:
    """What `object.__setattr__(inst, name, value)` calls for instances of `cls`, looked up once.

    Calling the slot's descriptor directly skips the per-call attribute lookup along the MRO:
    a bare LangChain message with its four attributes set takes 0.60 us instead of 0.89 us
    (timeit; the whole-builder effect is cited in `_pydantic_v2_builder`).
    """
    for klass in cls.__mro__:
        attr = klass.__dict__.get(name)
        if attr is not None:
            if hasattr(type(attr), "__set__"):  # a data descriptor: a slot, or __dict__
                setter: Callable[[Any, Any], None] = attr.__set__
                return setter
            break
    return lambda inst, value: _set(inst, name, value)


def _pydantic_fit(cls: Any) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """Fits a stored field map to the class's fields now (mirrors `model_construct`)."""
    fields = cls.model_fields

    def fit(d: dict[str, Any]) -> dict[str, Any]:
        # Fields added or removed since the data was written.
        out: dict[str, Any] = {}
        for name, field in fields.items():
            if name in d:
                out[name] = d[name]
            elif field.is_required():
                raise MalformedDataError(
                    f"stored {cls.__qualname__} has no value for required field {name!r}"
                )
            else:
                try:
                    out[name] = field.get_default(call_default_factory=True, validated_data=out)
                except TypeError:  # pydantic < 2.10 has no validated_data
                    out[name] = field.get_default(call_default_factory=True)
        return out

    return fit


_Setter = Callable[[Any, Any], None]


def _pydantic_v2_parts(
    cls: Any,
) -> tuple[bool, bool, bool, Callable[[Any], Any], _Setter, _Setter, _Setter, _Setter]:
    """What rebuilding a pydantic v2 class needs, looked up once: extra="allow", root model,
    post-init hook, `__new__`, and the setters of `__dict__`, fields set, extra and private."""
    return (
        cls.model_config.get("extra") == "allow",
        bool(getattr(cls, "__pydantic_root_model__", False)),
        bool(getattr(cls, "__pydantic_post_init__", None)),
        cls.__new__,
        _setter(cls, "__dict__"),
        _setter(cls, "__pydantic_fields_set__"),
        _setter(cls, "__pydantic_extra__"),
        _setter(cls, "__pydantic_private__"),
    )


def _pydantic_v2_builder(cls: Any) -> Builder:
    names = frozenset(cls.model_fields)
    allow_extra, root, post_init, new, set_dict, set_fields_set, set_extra, set_private = (
        _pydantic_v2_parts(cls)
    )
    fit = _pydantic_fit(cls)

    def build(a: list[Any]) -> Any:
        d, extra, fields_set = a
        if type(d) is not dict:
            raise MalformedDataError(f"expected a map of fields, got {type(d).__name__}")
        if d.keys() != names:
            d = fit(d)
        if not allow_extra:
            extra = None
        elif extra is None:
            extra = {}
        elif type(extra) is not dict:
            raise MalformedDataError(f"expected a map of fields, got {type(extra).__name__}")
        if fields_set is None:
            fields_set = set(d)
        else:
            # Names that are not fields (any more) are dropped: stored data cannot put arbitrary
            # objects in fields_set. Checking the subset first, and building the union with the
            # extra names only when it fails, took rebuilding 100 LangChain messages
            # (extra="allow") from 158 to 132 us; with the bound setters below, 106 us.
            # benchmarks/results/serde.md, "67 AIMessages rebuilt by setting their state":
            # 0.168 ms before both, 0.123 ms after.
            fields_set = set(_list(fields_set))
            if not fields_set <= names:
                fields_set &= names | extra.keys() if extra else names
        inst = new(cls)
        set_dict(inst, d)
        set_fields_set(inst, fields_set)
        if not root:
            set_extra(inst, extra)
            set_private(inst, None)
        if post_init:  # private attributes get their defaults, as in model_construct
            inst.model_post_init(None)
        return inst

    return build


def _pydantic_v1_builder(cls: Any) -> Builder:
    fields = cls.__fields__
    new = cls.__new__

    def build(a: list[Any]) -> Any:
        d, fields_set = a
        d = _mapping(d)
        for name in fields.keys() - d.keys():
            if fields[name].required:
                raise MalformedDataError(
                    f"stored {cls.__qualname__} has no value for required field {name!r}"
                )
            d[name] = fields[name].get_default()
        inst = new(cls)
        _set(inst, "__dict__", d)
        _set(inst, "__fields_set__", set(d) if fields_set is None else set(_list(fields_set)))
        inst._init_private_attributes()
        return inst

    return build


def _dataclass_builder(cls: Any) -> Builder:
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    init_names = tuple(f.name for f in fields if f.init)
    late_names = tuple(f.name for f in fields if not f.init)
    post_init = hasattr(cls, "__post_init__")
    whole_dict = cls.__dictoffset__ != 0 and not names & set(_slot_names(cls))
    new = cls.__new__

    def fit(d: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields:
            if f.name in d:
                out[f.name] = d[f.name]
            elif f.default is not dataclasses.MISSING:
                out[f.name] = f.default
            elif f.default_factory is not dataclasses.MISSING:
                out[f.name] = f.default_factory()
            else:
                raise MalformedDataError(
                    f"stored {cls.__qualname__} has no value for field {f.name!r}"
                )
        return out

    def build(a: list[Any]) -> Any:
        (d,) = a
        d = _mapping(d)
        if d.keys() != names:
            d = fit(d)
        if post_init:
            inst = cls(**{n: d[n] for n in init_names})
            for n in late_names:
                _set(inst, n, d[n])
            return inst
        inst = new(cls)
        if whole_dict:
            _set(inst, "__dict__", d)
        else:
            for n, v in d.items():
                _set(inst, n, v)
        return inst

    return build


def _slots_builder(cls: Any) -> Builder:
    slots = _slot_names(cls)
    new = cls.__new__

    def build(a: list[Any]) -> Any:
        (d,) = a
        d = _mapping(d)
        inst = new(cls)
        for n in slots:
            _set(inst, n, d[n])
        return inst

    return build

"""Reading what LangGraph's `JsonPlusSerializer` wrote: type tags `msgpack` and `json`.

Both formats name a callable by `(module, name)` and give it arguments. We never import or call
what they name. Standard-library types map to a fixed table of constructors; any other name
must be on the allowlist, and the class's own kind (model, dataclass, enum, NamedTuple) decides
how it is rebuilt, whatever method the data asks for.
"""

from __future__ import annotations

import collections
import datetime as dt
import decimal
import ipaddress
import json
import logging
import pathlib
import re
import uuid
from collections.abc import Callable
from typing import Any

import ormsgpack

from . import _codes as C
from ._allowlist import Resolver, default_classes
from ._builtins import BUILDERS
from ._classes import class_builder, class_kind
from ._errors import (
    DisallowedTypeError,
    MalformedDataError,
    NestingTooDeepError,
    SerializationError,
    TypeNotFoundError,
)
from ._numpy import build_ndarray

__all__ = ["loads_jsonplus_json", "loads_jsonplus_msgpack"]

# JsonPlusSerializer's msgpack extension codes.
_SINGLE_ARG, _POS_ARGS, _KW_ARGS, _METHOD, _PYDANTIC_V1, _PYDANTIC_V2, _NUMPY, _DELTA = range(8)
# Each level of nesting is a nested msgpack buffer, read by a nested `unpackb` call that takes
# about 40 KB of C stack: measured, an 8 MB stack overflows (a segfault, not an exception) near
# 200 levels. Real data nests a few levels (a message in a DeltaSnapshot, a dataclass in a
# dataclass); stop crafted data long before the stack runs out.
_MAX_EXT_DEPTH = 64
_NON_STR_KEYS = ormsgpack.OPT_NON_STR_KEYS

logger = logging.getLogger(__name__)
_warned: set[tuple[str, str]] = set()  # warn once per type, for a bounded number of types

Ctor = Callable[[list[Any], dict[str, Any], Any], Any]


def _one(args: list[Any]) -> Any:
    if len(args) != 1:
        raise MalformedDataError(f"expected one argument, got {len(args)}")
    return args[0]


def _from_method(method: str, build: Callable[[Any], Any]) -> Ctor:
    def ctor(args: list[Any], kwargs: dict[str, Any], m: Any) -> Any:
        if m != method:
            raise MalformedDataError(f"unsupported method {m!r}")
        return build(_one(args))

    return ctor


def _plain(build: Callable[..., Any]) -> Ctor:
    return lambda args, kwargs, method: build(*args, **kwargs)


def _single(build: Callable[[Any], Any]) -> Ctor:
    return lambda args, kwargs, method: build(_one(args))


def _send(args: list[Any], kwargs: dict[str, Any], method: Any) -> Any:
    cls = default_classes().get(("langgraph.types", "Send"))
    if cls is None:
        raise MalformedDataError("the data holds a langgraph Send but langgraph is not installed")
    send: Any = cls
    if kwargs:
        return send(kwargs["node"], kwargs["arg"])
    if len(args) == 3:
        return send(args[0], args[1], timeout=args[2])
    return send(*args)


def _zoneinfo(key: Any) -> Any:
    return BUILDERS[C.ZONEINFO]([key])


def _secret(name: str) -> Ctor:
    def ctor(args: list[Any], kwargs: dict[str, Any], method: Any) -> Any:
        import pydantic  # fixed and trusted

        return getattr(pydantic, name)(_one(args))

    return ctor


_PATHS = ("Path", "PosixPath", "WindowsPath", "PurePath", "PurePosixPath", "PureWindowsPath")

_STDLIB: dict[tuple[str, str], Ctor] = {
    ("datetime", "datetime"): _from_method("fromisoformat", dt.datetime.fromisoformat),
    ("datetime", "date"): _plain(dt.date),
    ("datetime", "time"): _plain(dt.time),
    ("datetime", "timedelta"): _plain(dt.timedelta),
    ("datetime", "timezone"): _plain(dt.timezone),
    ("uuid", "UUID"): _single(uuid.UUID),
    ("decimal", "Decimal"): _single(decimal.Decimal),
    ("builtins", "set"): _single(set),
    ("builtins", "frozenset"): _single(frozenset),
    ("collections", "deque"): _single(collections.deque),
    ("builtins", "bytes"): _from_method("fromhex", bytes.fromhex),
    ("builtins", "bytearray"): _from_method("fromhex", bytearray.fromhex),
    ("re", "compile"): _plain(re.compile),
    ("zoneinfo", "ZoneInfo"): _single(_zoneinfo),
    ("pydantic.types", "SecretStr"): _secret("SecretStr"),
    ("pydantic.types", "SecretBytes"): _secret("SecretBytes"),
    ("langgraph.types", "Send"): _send,
    ("langgraph.constants", "Send"): _send,  # where Send lived in older LangGraph
}
for _name in ("IPv4Address", "IPv4Interface", "IPv4Network", "IPv6Address", "IPv6Interface"):
    _STDLIB[("ipaddress", _name)] = _single(getattr(ipaddress, _name))
_STDLIB[("ipaddress", "IPv6Network")] = _single(ipaddress.IPv6Network)
for _module in ("pathlib", "pathlib._local"):  # pathlib._local: Python 3.13+
    for _name in _PATHS:
        _STDLIB[(_module, _name)] = _plain(getattr(pathlib, _name))


def build(
    resolver: Resolver,
    module: Any,
    name: Any,
    args: Any = None,
    kwargs: Any = None,
    method: Any = None,
    *,
    fallback: Any = None,
) -> Any:
    """Rebuild `module.name(*args, **kwargs)` the safe way, or refuse.

    A name that is not allowed is an error. An allowed type whose arguments no longer fit
    (the class changed since the data was written) gives `fallback`, with a warning: that is
    what JsonPlusSerializer returns then, so a record reads the same under both.
    """
    if not isinstance(module, str) or not isinstance(name, str):
        raise MalformedDataError(f"malformed type name {module!r}, {name!r}")
    args = [] if args is None else list(args)
    kwargs = {} if kwargs is None else kwargs
    if type(kwargs) is not dict:
        raise MalformedDataError("constructor keyword arguments must be a map")
    ctor = _STDLIB.get((module, name))
    cls: Any = None if ctor is not None else resolver.lookup(module, name)
    try:
        if ctor is not None:
            return ctor(args, kwargs, method)
        return _rebuild(cls, args, kwargs)
    except (DisallowedTypeError, TypeNotFoundError, NestingTooDeepError):
        raise
    except Exception as exc:
        key = (module, name)
        if key not in _warned and len(_warned) < 1000:
            _warned.add(key)
            logger.warning(
                "Could not rebuild %s.%s from JsonPlusSerializer data (%r); returning the "
                "stored arguments instead, as JsonPlusSerializer does.",
                module,
                name,
                exc,
            )
        return fallback


def _rebuild(cls: Any, args: list[Any], kwargs: dict[str, Any]) -> Any:
    kind = class_kind(cls)
    if kind == C.ENUM:
        return cls(_one(args))
    if kind in (C.PYDANTIC_V2, C.PYDANTIC_V1):
        if args:  # a RootModel: model_dump() is its root value
            return cls(_one(args))
        # The data is a model_dump(): validate to rebuild nested models, as JsonPlus does,
        # falling back to construct() for data the current model no longer validates.
        try:
            return cls(**kwargs)
        except Exception:
            if kind == C.PYDANTIC_V2:
                return cls.model_construct(**kwargs)
            return cls.construct(**kwargs)
    if kind in (C.NAMEDTUPLE, C.SLOTS):  # SLOTS: Item, whose constructor parses its dates
        return cls(*args, **kwargs)
    if kind == C.DATACLASS and not args:  # set fields directly: init=False ones included
        return class_builder(cls, kind)([kwargs])
    raise MalformedDataError(f"cannot rebuild {cls!r} from these arguments")


def _ext(resolver: Resolver, code: int, value: Any) -> Any:
    if code == _NUMPY:
        dtype, shape, order, buf = value
        return build_ndarray([dtype, list(shape), order, buf])
    if code == _DELTA:
        return build(resolver, "langgraph.checkpoint.serde.types", "_DeltaSnapshot", [value])
    if type(value) is not list or len(value) < 3:
        raise MalformedDataError(f"malformed JsonPlusSerializer extension {code}")
    module, name, arg = value[0], value[1], value[2]
    if code == _SINGLE_ARG:
        return build(resolver, module, name, [arg], fallback=arg)
    if code == _POS_ARGS:
        return build(resolver, module, name, arg, fallback=arg)
    if code == _KW_ARGS or (code in (_PYDANTIC_V1, _PYDANTIC_V2) and type(arg) is dict):
        return build(resolver, module, name, kwargs=arg, fallback=arg)
    if code in (_PYDANTIC_V1, _PYDANTIC_V2):  # a root model's model_dump() is not a map
        return build(resolver, module, name, [arg], fallback=arg)
    if code == _METHOD and len(value) == 4:
        return build(resolver, module, name, [arg], method=value[3], fallback=arg)
    raise MalformedDataError(f"unknown JsonPlusSerializer extension code {code}")


def loads_jsonplus_msgpack(data: Any, resolver: Resolver) -> Any:
    """Read JsonPlusSerializer's `msgpack` format (extension objects hold nested msgpack).

    Decoded with ormsgpack, the library that wrote it (a dependency of langgraph-checkpoint),
    so that everything decodes exactly as JsonPlusSerializer decodes it: tuple map keys, for
    one, which msgpack-python cannot rebuild without turning every array into a tuple.
    """
    depth = 0
    first_error: BaseException | None = None

    def ext_hook(code: int, payload: bytes) -> Any:
        nonlocal depth, first_error
        try:
            if depth >= _MAX_EXT_DEPTH:
                raise NestingTooDeepError("JsonPlusSerializer data nests too deeply")
            depth += 1
            try:
                value = ormsgpack.unpackb(payload, ext_hook=ext_hook, option=_NON_STR_KEYS)
            finally:
                depth -= 1
            return _ext(resolver, code, value)
        except BaseException as exc:
            # ormsgpack replaces whatever the hook raised with ValueError("ext_hook failed"),
            # without chaining it: keep the innermost error to report it.
            if first_error is None:
                first_error = exc
            raise

    def load() -> Any:
        try:
            return ormsgpack.unpackb(data, ext_hook=ext_hook, option=_NON_STR_KEYS)
        except Exception:
            if first_error is not None:
                raise first_error from None
            raise

    return _guard("msgpack", load)


def _lc1_target(ident: list[str]) -> tuple[str, str]:
    from langchain_core.load import mapping  # a data table of LangChain's renamed paths

    key = tuple(ident)
    target = mapping.SERIALIZABLE_MAPPING.get(key) or mapping.OLD_CORE_NAMESPACES_MAPPING.get(key)
    path = target or key
    return ".".join(path[:-1]), path[-1]


def loads_jsonplus_json(data: Any, resolver: Resolver) -> Any:
    """Read JsonPlusSerializer's older `json` format (LangChain `lc` 1 and 2 envelopes)."""

    def object_hook(value: dict[str, Any]) -> Any:
        lc = value.get("lc")
        if lc not in (1, 2) or "id" not in value or "type" not in value:
            return value
        ident = value["id"]
        if type(ident) is not list or not ident or not all(type(p) is str for p in ident):
            raise MalformedDataError(f"malformed lc id {ident!r}")
        kind = value["type"]
        if kind == "secret":  # LangChain would read an environment variable here: never
            raise MalformedDataError(f"refusing to load secret {ident!r} from stored data")
        if kind != "constructor":
            raise MalformedDataError(f"stored value was not serializable: {value.get('repr')!r}")
        if lc == 1:
            module, name = _lc1_target(ident)
            cls: Any = resolver.lookup(module, name)
            if class_kind(cls) != C.PYDANTIC_V2:
                raise MalformedDataError(f"{module}.{name} is not a LangChain serializable")
            return cls(**value.get("kwargs", {}))
        method = value.get("method")
        if type(method) is list:  # [None, "model_construct"]: the class kind decides
            method = None
        module = ".".join(ident[:-1])
        return build(resolver, module, ident[-1], value.get("args"), value.get("kwargs"), method)

    if isinstance(data, memoryview):
        data = data.tobytes()
    return _guard("json", lambda: json.loads(data, object_hook=object_hook))


def _guard(tag: str, load: Callable[[], Any]) -> Any:
    try:
        return load()
    except SerializationError:
        raise
    except RecursionError as exc:
        raise NestingTooDeepError(f"{tag!r} data nests too deeply") from exc
    except Exception as exc:
        if "recursion limit" in str(exc).lower():  # ormsgpack's own depth limit
            raise NestingTooDeepError(f"{tag!r} data nests too deeply") from exc
        raise MalformedDataError(f"invalid {tag!r} data: {exc!r}") from exc

"""Standard-library value types: how each is written, and how each is rebuilt.

Every writer returns the type's state followed by its marker (see `_codes`); every builder gets
that state back as a list, already decoded. Builders only call the standard-library constructor
of their own type, so stored data cannot reach any other callable through them.
"""

from __future__ import annotations

import builtins
import collections
import datetime as dt
import decimal
import ipaddress
import pathlib
import re
import sys
import uuid
import zoneinfo
from collections.abc import Callable
from typing import Any

from msgpack import ExtType

from . import _codes as C
from ._errors import MalformedDataError, UnsupportedTypeError

__all__ = [
    "BUILDERS",
    "ENCODERS",
    "Builder",
    "Encoder",
    "encode_exception",
    "encode_secret",
    "is_secret",
]

Encoder = Callable[[Any], Any]
Builder = Callable[[list[Any]], Any]


def _marker(code: int) -> ExtType:
    return ExtType(code, b"")


_TUPLE = _marker(C.TUPLE)
_SET = _marker(C.SET)
_FROZENSET = _marker(C.FROZENSET)
_BIGINT = _marker(C.BIGINT)
_COMPLEX = _marker(C.COMPLEX)
_DATETIME = _marker(C.DATETIME)
_DATE = _marker(C.DATE)
_TIME = _marker(C.TIME)
_TIMEDELTA = _marker(C.TIMEDELTA)
_TIMEZONE = _marker(C.TIMEZONE)
_ZONEINFO = _marker(C.ZONEINFO)
_UUID = _marker(C.UUID)
_DECIMAL = _marker(C.DECIMAL)
_PATH = _marker(C.PATH)
_PATTERN = _marker(C.PATTERN)
_DEQUE = _marker(C.DEQUE)
_ORDEREDDICT = _marker(C.ORDEREDDICT)
_DEFAULTDICT = _marker(C.DEFAULTDICT)
_COUNTER = _marker(C.COUNTER)
_IPADDRESS = _marker(C.IPADDRESS)
_EXCEPTION = _marker(C.EXCEPTION)
_SECRET = _marker(C.SECRET)

# Position in these tuples is the number written to the stream: append only.
_PATH_KINDS: tuple[type[pathlib.PurePath], ...] = (
    pathlib.PurePosixPath,
    pathlib.PureWindowsPath,
    pathlib.PosixPath,
    pathlib.WindowsPath,
)
_PURE_FLAVOUR: dict[type, type[pathlib.PurePath]] = {
    pathlib.PosixPath: pathlib.PurePosixPath,
    pathlib.WindowsPath: pathlib.PureWindowsPath,
}
_IP_KINDS: tuple[type[Any], ...] = (
    ipaddress.IPv4Address,
    ipaddress.IPv4Interface,
    ipaddress.IPv4Network,
    ipaddress.IPv6Address,
    ipaddress.IPv6Interface,
    ipaddress.IPv6Network,
)
# A defaultdict's factory is code; only these well-known ones can be stored.
_FACTORIES: tuple[Any, ...] = (
    None,
    list,
    dict,
    set,
    int,
    float,
    str,
    tuple,
    frozenset,
    bytes,
    bool,
)
_SIMPLE_ARGS = (str, int, float, bool, type(None))


def _enc_timezone(o: dt.timezone) -> list[Any]:
    args = o.__getinitargs__()  # type: ignore[attr-defined]  # (offset,) or (offset, name)
    return [args[0], args[1] if len(args) > 1 else None, _TIMEZONE]


def _enc_zoneinfo(o: zoneinfo.ZoneInfo) -> list[Any]:
    if o.key is None:
        raise UnsupportedTypeError("a ZoneInfo built from a file (no key) cannot be stored")
    return [o.key, _ZONEINFO]


def _enc_defaultdict(o: collections.defaultdict[Any, Any]) -> list[Any]:
    try:
        index = _FACTORIES.index(o.default_factory)
    except ValueError:
        raise UnsupportedTypeError(
            f"cannot store a defaultdict whose default_factory is {o.default_factory!r}; "
            "only builtin factories (list, dict, set, int, ...) are supported"
        ) from None
    return [index, dict(o), _DEFAULTDICT]


def _enc_path(o: pathlib.PurePath) -> list[Any]:
    return [_PATH_KINDS.index(type(o)), str(o), _PATH]


def _enc_ip(o: Any) -> list[Any]:
    return [_IP_KINDS.index(type(o)), str(o), _IPADDRESS]


ENCODERS: dict[type, Encoder] = {
    tuple: lambda o: [*o, _TUPLE],
    set: lambda o: [*o, _SET],
    frozenset: lambda o: [*o, _FROZENSET],
    # msgpack calls `default` for ints outside the 64-bit range.
    int: lambda o: [o.to_bytes((o.bit_length() + 8) // 8, "little", signed=True), _BIGINT],
    complex: lambda o: [o.real, o.imag, _COMPLEX],
    dt.datetime: lambda o: [
        o.year,
        o.month,
        o.day,
        o.hour,
        o.minute,
        o.second,
        o.microsecond,
        o.tzinfo,
        o.fold,
        _DATETIME,
    ],
    dt.date: lambda o: [o.year, o.month, o.day, _DATE],
    dt.time: lambda o: [o.hour, o.minute, o.second, o.microsecond, o.tzinfo, o.fold, _TIME],
    dt.timedelta: lambda o: [o.days, o.seconds, o.microseconds, _TIMEDELTA],
    dt.timezone: _enc_timezone,
    zoneinfo.ZoneInfo: _enc_zoneinfo,
    uuid.UUID: lambda o: [o.bytes, _UUID],
    decimal.Decimal: lambda o: [str(o), _DECIMAL],
    re.Pattern: lambda o: [o.pattern, o.flags, _PATTERN],
    collections.deque: lambda o: [*o, o.maxlen, _DEQUE],
    collections.OrderedDict: lambda o: [dict(o), _ORDEREDDICT],
    collections.defaultdict: _enc_defaultdict,
    collections.Counter: lambda o: [dict(o), _COUNTER],
}
ENCODERS.update(dict.fromkeys(_PATH_KINDS, _enc_path))
ENCODERS.update(dict.fromkeys(_IP_KINDS, _enc_ip))


def encode_exception(o: BaseException) -> Any:
    """A builtin exception with simple arguments keeps its type; others become `repr` text.

    Rebuilding an arbitrary exception class would mean calling code named by stored data.
    LangGraph itself turns a stored error string back into an exception, and its own
    serializer stores `repr(exc)` for every exception.
    """
    cls = type(o)
    if getattr(builtins, cls.__name__, None) is cls and all(
        type(a) in _SIMPLE_ARGS for a in o.args
    ):
        try:
            cls(*o.args)
        except Exception:  # e.g. UnicodeDecodeError insists on bytes arguments
            return repr(o)
        return [cls.__name__, list(o.args), _EXCEPTION]
    return repr(o)


def encode_secret(o: Any) -> list[Any]:
    """pydantic's SecretStr / SecretBytes: stored in clear, as LangGraph's serializer does."""
    return [type(o).__name__ == "SecretBytes", o.get_secret_value(), _SECRET]


def _b_timezone(a: list[Any]) -> dt.timezone:
    offset, name = a
    return dt.timezone(offset) if name is None else dt.timezone(offset, name)


def _b_path(a: list[Any]) -> pathlib.PurePath:
    kind, text = a
    cls = _PATH_KINDS[kind]
    try:
        path: pathlib.PurePath = cls(text)
    except NotImplementedError:  # e.g. a WindowsPath read on Linux: keep its flavour
        path = _PURE_FLAVOUR[cls](text)
    return path


def _b_deque(a: list[Any]) -> collections.deque[Any]:
    maxlen = a.pop()
    return collections.deque(a, maxlen)


def _b_defaultdict(a: list[Any]) -> collections.defaultdict[Any, Any]:
    index, items = a
    return collections.defaultdict(_FACTORIES[index], _dict(items))


def _b_exception(a: list[Any]) -> BaseException:
    name, args = a
    cls = getattr(builtins, name, None) if isinstance(name, str) else None
    if not (isinstance(cls, type) and issubclass(cls, BaseException)):
        raise MalformedDataError(f"{name!r} is not a builtin exception")
    return cls(*args)


def _b_secret(a: list[Any]) -> Any:
    is_bytes, value = a
    import pydantic  # a fixed, trusted module: never one named by the data

    return pydantic.SecretBytes(value) if is_bytes else pydantic.SecretStr(value)


def _dict(value: Any) -> dict[Any, Any]:
    if type(value) is not dict:
        raise MalformedDataError(f"expected a map, got {type(value).__name__}")
    return value


def _b_zoneinfo(a: list[Any]) -> zoneinfo.ZoneInfo:
    (key,) = a
    # ZoneInfo rejects absolute and relative-upward keys itself; be explicit anyway.
    if not isinstance(key, str) or key.startswith(("/", "\\")) or ".." in key:
        raise MalformedDataError(f"invalid time zone key {key!r}")
    return zoneinfo.ZoneInfo(key)


def _b_ip(a: list[Any]) -> Any:
    kind, text = a
    return _IP_KINDS[kind](text)


def _b_bigint(a: list[Any]) -> int:
    (raw,) = a
    if type(raw) is not bytes:
        raise MalformedDataError("a big integer must be stored as bytes")
    return int.from_bytes(raw, "little", signed=True)


BUILDERS: dict[int, Builder] = {
    C.TUPLE: tuple,
    C.SET: set,
    C.FROZENSET: frozenset,
    C.BIGINT: _b_bigint,
    C.COMPLEX: lambda a: complex(*a),
    C.DATETIME: lambda a: dt.datetime(*a[:8], fold=a[8]) if len(a) == 9 else _bad(a),
    C.DATE: lambda a: dt.date(*a) if len(a) == 3 else _bad(a),
    C.TIME: lambda a: dt.time(*a[:5], fold=a[5]) if len(a) == 6 else _bad(a),
    C.TIMEDELTA: lambda a: dt.timedelta(*a) if len(a) == 3 else _bad(a),
    C.TIMEZONE: _b_timezone,
    C.ZONEINFO: _b_zoneinfo,
    C.UUID: lambda a: uuid.UUID(bytes=a[0]) if len(a) == 1 else _bad(a),
    C.DECIMAL: lambda a: decimal.Decimal(a[0]) if len(a) == 1 and type(a[0]) is str else _bad(a),
    C.PATH: _b_path,
    C.PATTERN: lambda a: re.compile(*a) if len(a) == 2 else _bad(a),
    C.DEQUE: _b_deque,
    C.ORDEREDDICT: lambda a: collections.OrderedDict(_dict(*a)),
    C.DEFAULTDICT: _b_defaultdict,
    C.COUNTER: lambda a: collections.Counter(_dict(*a)),
    C.IPADDRESS: _b_ip,
    C.EXCEPTION: _b_exception,
    C.SECRET: _b_secret,
}


def _bad(a: list[Any]) -> Any:
    raise MalformedDataError(f"unexpected state of {len(a)} elements")


def is_secret(cls: type) -> bool:
    """True for pydantic's SecretStr / SecretBytes (without importing pydantic)."""
    pyd = sys.modules.get("pydantic")
    return pyd is not None and cls in (
        getattr(pyd, "SecretStr", None),
        getattr(pyd, "SecretBytes", None),
    )

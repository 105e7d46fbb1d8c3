"""Reading our own format (`msgpack.cp5`, and cp4, cp3, cp2, cp1): one msgpack pass, two hooks.

`ext_hook` turns each extension object into a `Marker` (for a class: only after the allowlist
check, so a disallowed name fails before anything of it is built). `list_hook` sees every array
once msgpack has decoded it; an array ending in a marker is handed to the marker's builder.
msgpack decodes innermost values first, so builders receive fully rebuilt state and nothing
recurses in Python.

Why msgpack-python and not ormsgpack, although ormsgpack packs and unpacks plain data faster:
ormsgpack has no list hook, so the markers must be applied by a Python walk over the decoded
value, which costs more than it saves (the same format on ormsgpack was 5 to 50% slower on
dumps+loads of checkpoints with 50 to 200 messages across our runs, about even at 10), and it
cannot write lone surrogates at all (benchmarks/results/serde.md).
"""

from __future__ import annotations

from typing import Any

import msgpack

from . import _codes as C
from ._allowlist import Resolver
from ._builtins import BUILDERS, Builder
from ._classes import class_builder, class_kind
from ._errors import (
    MalformedDataError,
    NestingTooDeepError,
    SerializationError,
)
from ._numpy import build_ndarray, build_scalar
from ._rows import pydantic_row_builder, pydantic_row_lists_builder, pydantic_rows_builder

__all__ = ["BytesLike", "Decoder", "Marker"]

BytesLike = bytes | bytearray | memoryview

_MAX_ROW_LISTS = 256  # distinct class-name lists of ROWS values kept compiled per decoder


class Marker:
    """What an extension object decodes to: the builder of the array it ends."""

    __slots__ = ("build", "code", "name")

    def __init__(self, name: str, build: Builder, code: int = 0) -> None:
        self.name = name
        self.build = build
        self.code = code

    def __repr__(self) -> str:
        return f"<marker {self.name}>"


_BUILTIN_MARKERS: dict[int, Marker] = {
    code: Marker(name.lower(), BUILDERS[code])
    for name, code in vars(C).items()
    if isinstance(code, int) and code in BUILDERS and name.isupper()
}
_BUILTIN_MARKERS[C.NDARRAY] = Marker("numpy.ndarray", build_ndarray)
_BUILTIN_MARKERS[C.NPSCALAR] = Marker("numpy scalar", build_scalar)


def _list_hook(lst: list[Any]) -> Any:
    if lst and type(lst[-1]) is Marker:
        marker = lst.pop()
        try:
            return marker.build(lst)
        except SerializationError:
            raise
        except Exception as exc:  # crafted or corrupt state: never a bare TypeError/KeyError
            raise MalformedDataError(f"cannot rebuild {marker.name}: {exc!r}") from exc
    return lst


class Decoder:
    """Decodes `msgpack.cp4` (cp3, cp2, cp1) payloads under one allowlist; caches classes."""

    __slots__ = ("_cache", "_resolver", "_row_lists_marker", "_rows", "_rows_marker")

    def __init__(self, resolver: Resolver) -> None:
        self._resolver = resolver
        self._cache: dict[bytes, Marker] = {}
        # By the layout's code and the names of a ROWS (ROW_LISTS) list.
        self._rows: dict[tuple[int, tuple[str, ...]], Builder] = {}
        self._rows_marker = Marker("list of pydantic rows", self._build_rows, C.ROWS)
        self._row_lists_marker = Marker("list of pydantic rows", self._build_row_lists, C.ROW_LISTS)

    def _ext_hook(self, code: int, data: bytes) -> Marker:
        if not data:
            marker = _BUILTIN_MARKERS.get(code)
            if marker is not None:
                return marker
            if code == C.ROWS:
                return self._rows_marker
            if code == C.ROW_LISTS:
                return self._row_lists_marker
        # Keyed by the name alone (no (code, data) tuple to build per instance); the code is
        # checked against the cached marker's.
        marker = self._cache.get(data)
        if marker is None or marker.code != code:
            marker = self._class_marker(code, data)
            self._cache[data] = marker  # bounded: only allowed classes get here
        return marker

    def _class_marker(self, code: int, data: bytes) -> Marker:
        if code not in C.CLASS_KINDS:
            raise MalformedDataError(f"unknown extension type {code} in msgpack.cp2 data")
        name, cls, written = self._resolve(code, data.decode("utf-8", "replace"))
        if code == C.PYDANTIC_V2_ROW:
            return Marker(name, pydantic_row_builder(cls, written), code)
        return Marker(name, class_builder(cls, code), code)

    def _resolve(self, code: int, text: str) -> tuple[str, Any, tuple[str, ...]]:
        """The class a marker's text names, checked against the allowlist and its kind.

        Returns `("module.qualname", class, written field names)`; the names only for
        `PYDANTIC_V2_ROW` (text `"module:qualname\0name,name,..."`).
        """
        written: tuple[str, ...] = ()
        if code == C.PYDANTIC_V2_ROW:
            text, sep, names = text.partition("\0")
            if not sep:
                raise MalformedDataError(f"malformed row marker {text[:200]!r}")
            written = tuple(names.split(",")) if names else ()
        module, sep, qualname = text.partition(":")
        if not sep or not module or not qualname:
            raise MalformedDataError(f"malformed class name {text[:200]!r}")
        cls = self._resolver.lookup(module, qualname)
        kind = class_kind(cls)
        expected = C.PYDANTIC_V2 if code == C.PYDANTIC_V2_ROW else code
        if kind != expected:
            raise MalformedDataError(
                f"stored data says {module}.{qualname} is a {C.KIND_NAMES[code]}, but the "
                f"class is {'not supported' if kind is None else 'a ' + C.KIND_NAMES[kind]}"
            )
        return f"{module}.{qualname}", cls, written

    def _build_rows(self, a: list[Any]) -> list[Any]:
        """Rebuild a `ROWS` list: `[[name, ...], index, fields_set, value, ...]`."""
        rows: list[Any] = self._rows_builder(C.ROWS, a)(a)
        return rows

    def _build_row_lists(self, a: list[Any]) -> list[Any]:
        """Rebuild a `ROW_LISTS` list (cp3): `[[name, ...], [value, ..., fields_set, i], ...]`."""
        rows: list[Any] = self._rows_builder(C.ROW_LISTS, a)(a)
        return rows

    def _rows_builder(self, code: int, a: list[Any]) -> Builder:
        """The compiled builder of a list of rows of the layout `code`, by its class names."""
        if not a or type(a[0]) is not list:
            raise MalformedDataError("a list of rows must start with the names of its classes")
        key = (code, tuple(a[0]))
        build = self._rows.get(key)
        if build is None:
            kinds = []
            for name in a[0]:
                if type(name) is not str:
                    raise MalformedDataError(f"expected a class name, got {type(name).__name__}")
                _, cls, written = self._resolve(C.PYDANTIC_V2_ROW, name)
                kinds.append((cls, written))
            if code == C.ROWS:
                build = pydantic_rows_builder(kinds)
            else:
                build = pydantic_row_lists_builder(kinds)
            if len(self._rows) >= _MAX_ROW_LISTS:  # bounded, whatever the data holds
                self._rows.clear()
            self._rows[key] = build
        return build

    def decode(self, data: BytesLike) -> Any:
        """Rebuild the value written by `Encoder.encode`.

        Raises:
            DisallowedTypeError: The data names a class that is not allowed.
            TypeNotFoundError: An allowed class is not present in this process.
            NestingTooDeepError: The data nests deeper than msgpack allows.
            MalformedDataError: The bytes are not valid `msgpack.cp2` data.
        """
        try:
            value = msgpack.unpackb(
                data,
                ext_hook=self._ext_hook,
                list_hook=_list_hook,
                strict_map_key=False,  # int and tuple keys are legitimate state
                unicode_errors="surrogatepass",  # lone surrogates were written that way
                use_list=True,
                raw=False,
            )
        except SerializationError:
            raise
        except msgpack.StackError as exc:
            raise NestingTooDeepError("msgpack.cp2 data nests too deeply") from exc
        except Exception as exc:
            raise MalformedDataError(f"invalid msgpack.cp2 data: {exc!r}") from exc
        if type(value) is Marker:
            raise MalformedDataError("msgpack.cp2 data holds a bare type marker")
        return value

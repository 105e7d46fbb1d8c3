"""Writing our own format (`msgpack.cp2`, and `msgpack.cp5` for message lists) in one msgpack pass.

msgpack runs with `strict_types=True`, so it packs only exact `dict`, `list`, `str`, `bytes`,
`int`, `float`, `bool` and `None` itself; everything else (tuples, subclasses such as IntEnum
or NamedTuple, classes) reaches `_default`, which returns the value's state followed by a
marker, and msgpack packs that in the same pass. Writers are found by exact type in a dict
that learns each new class once. A list of pydantic models at the top of a value (a message
list) is written as one `ROWS` list instead (`encode_typed`, tag `msgpack.cp5`).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

import msgpack

from . import _codes as C
from ._builtins import ENCODERS, Encoder, encode_exception, encode_secret, is_secret
from ._classes import class_encoder, class_kind
from ._errors import NestingTooDeepError, SerializationError, UnsupportedTypeError
from ._numpy import numpy_encoder
from ._rows import RowSpec, pydantic_row_spec, pydantic_v2_encoder

__all__ = [
    "array_header",
    "array_header_size",
    "encode",
    "encode_rows",
    "encode_typed",
]

# Grows by one entry per class written; classes are few, so this is not bounded further.
_WRITERS: dict[type, Encoder] = dict(ENCODERS)


def _writer_for(cls: type) -> Encoder:
    writer: Encoder | None
    if issubclass(cls, BaseException):
        writer = encode_exception
    elif (kind := class_kind(cls)) is not None:
        writer = pydantic_v2_encoder(cls) if kind == C.PYDANTIC_V2 else class_encoder(cls, kind)
    elif (writer := numpy_encoder(cls)) is not None:
        pass
    elif is_secret(cls):
        writer = encode_secret
    else:
        raise UnsupportedTypeError(_unsupported(cls))
    _WRITERS[cls] = writer
    return writer


def _unsupported(cls: type) -> str:
    name = f"{cls.__module__}.{cls.__qualname__}"
    base = next((b for b in (dict, list, str, int, float, bytes) if issubclass(cls, b)), None)
    if base is not None:
        return (
            f"cannot serialize {name}: it subclasses {base.__name__}, and storing it as a "
            f"plain {base.__name__} would lose its type; convert it, or make it a dataclass"
        )
    return (
        f"cannot serialize {name}: msgpack.cp2 stores standard-library values, pydantic "
        "models, dataclasses, enums, NamedTuples, LangChain messages and numpy arrays; make "
        "it one of those, or convert it before putting it in graph state"
    )


def _default(obj: Any) -> Any:
    writer = _WRITERS.get(type(obj))
    if writer is None:
        writer = _writer_for(type(obj))
    return writer(obj)


# How a ROWS list writes each class met at the top of a list, or None when it is not a
# pydantic v2 model (the only kind a ROWS list holds). Bounded like _WRITERS: one entry per
# class.
_ROW_SPECS: dict[type, RowSpec | None] = {}
_ROWS_MARKER = msgpack.ExtType(C.ROWS, b"")


def _row_spec(cls: type) -> RowSpec | None:
    try:
        return _ROW_SPECS[cls]
    except KeyError:  # a class not met yet
        spec = _ROW_SPECS[cls] = (
            pydantic_row_spec(cls) if class_kind(cls) == C.PYDANTIC_V2 else None
        )
        return spec


def _rows(items: list[Any]) -> list[Any] | None:
    """`items` as a `ROWS` list (see `_codes.ROWS`), or None when any item is not a row.

    A row is a pydantic v2 model written as its class's writer would write it with a row
    marker (`pydantic_row_spec`). Anything else (another type, extra fields, an error) gives
    None, and the list is written item by item, which reports any error the usual way.
    """
    names: list[str] = []
    out: list[Any] = [names]
    if not _fill(out, names, {}, items):
        return None
    out.append(_ROWS_MARKER)
    return out


def _fill(out: list[Any], names: list[str], specs: dict[type, Any], items: list[Any]) -> bool:
    """Append the rows of `items` to `out` (class names to `names`); False when an item is
    not a row.

    The loop is the serializer's hottest: every put writes the whole message list again,
    so it reads each item's state inline rather than through a call per item (the 80
    messages of the benchmarks' 100-step agent thread: 38 -> 30 us, timed interleaved).
    `specs`, by class: (index in names, field count, row reader, all field names,
    mask_of).
    """
    append = out.append
    extend = out.extend
    try:
        for item in items:
            spec = specs.get(type(item))
            if spec is None:
                known = _row_spec(type(item))
                if known is None:
                    return False
                spec = specs[type(item)] = (len(names), *known[1:4], known.mask_of)
                names.append(known.text)
            index, count, row, all_names, mask_of = spec
            d = item.__dict__
            if len(d) != count or item.__pydantic_extra__:
                return False
            fields_set = item.__pydantic_fields_set__
            append(index)
            append(None if fields_set == all_names else mask_of(fields_set))
            extend(row(d))  # KeyError: a field never set (model_construct)
    except Exception:  # the item-by-item pass raises it properly
        return False
    return True


def encode_rows(items: list[Any], cuts: Sequence[int]) -> tuple[list[Any], list[int]] | None:
    """`items` as the elements of a `ROWS` list, for storing runs of rows apart (`_lists`):
    `(out, offsets)` where `out` is `[names, element, ..., marker]` and the elements of the
    items before cut `cuts[i]` end at `out[offsets[i]]` (`cuts`: ascending item indexes,
    the last `len(items)`); None when an item is not a row."""
    names: list[str] = []
    out: list[Any] = [names]
    specs: dict[type, Any] = {}
    offsets: list[int] = []
    start = 0
    for cut in cuts:
        if not _fill(out, names, specs, items[start:cut] if start or cut < len(items) else items):
            return None
        offsets.append(len(out))
        start = cut
    out.append(_ROWS_MARKER)
    return out, offsets


def array_header_size(count: int) -> int:
    """Bytes of a msgpack array header for `count` elements."""
    return 1 if count < 16 else 3 if count < 0x10000 else 5


def array_header(count: int) -> bytes:
    """A msgpack array header for `count` elements."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 0x10000:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def encode_typed(obj: Any) -> tuple[str, bytes]:
    """`(type tag, bytes)` of `obj`: a list of two or more pydantic models without extra
    fields (a message list) as a `ROWS` list under `ROWS_TAG`, anything else by `encode`
    under `TYPE_TAG`.

    Raises:
        As `encode`.
    """
    if type(obj) is list and len(obj) > 1:
        rows = _rows(obj)
        if rows is not None:
            return C.ROWS_TAG, encode(rows)
    return C.TYPE_TAG, encode(obj)


def _new_packer(unicode_errors: str | None = None) -> msgpack.Packer:
    return msgpack.Packer(
        default=_default, strict_types=True, use_bin_type=True, unicode_errors=unicode_errors
    )


_local = threading.local()


def _pack(packer: msgpack.Packer, obj: Any) -> bytes:
    try:
        data: bytes = packer.pack(obj)
    except (SerializationError, UnicodeEncodeError):
        raise
    except ValueError as exc:
        if "recursion limit" in str(exc):
            raise NestingTooDeepError(
                "value nests containers deeper than msgpack allows (about 1,000 levels)"
            ) from exc
        raise SerializationError(f"cannot serialize value: {exc}") from exc
    except Exception as exc:  # e.g. a property of a dataclass raising while being read
        raise SerializationError(f"cannot serialize value: {exc!r}") from exc
    return data


def encode(obj: Any) -> bytes:
    """Pack `obj` into `msgpack.cp2` bytes.

    Raises:
        UnsupportedTypeError: `obj` holds a value of a type that cannot be stored faithfully.
        NestingTooDeepError: `obj` nests deeper than msgpack allows.
        SerializationError: Reading `obj` failed.
    """
    # One packer per thread, reused: a new packer per call adds about 0.3 us, over a third of
    # what a small value costs (benchmarks/results/serde.md). A stack, not a single packer, so
    # that a re-entrant call cannot share a half-written buffer.
    pool: list[msgpack.Packer] | None = getattr(_local, "pool", None)
    if pool is None:
        pool = _local.pool = []
    packer = pool.pop() if pool else _new_packer()
    try:
        return _pack(packer, obj)
    except UnicodeEncodeError:
        # Lone surrogates: rare, and the strict encoder is about 1.2x faster on a 200-message
        # checkpoint (benchmarks/results/serde.md), so the lenient one is only a retry.
        return _pack(_new_packer("surrogatepass"), obj)
    finally:
        pool.append(packer)

"""Pydantic v2 models as rows: a model without extra fields written as its field values in the
order its `PYDANTIC_V2_ROW` marker names them, and a list of such models (a message list) written
as one `ROWS` list, its class names once and its rows flat after them (tag msgpack.cp5; the
fields_set name lists of cp4 and the `ROW_LISTS` of cp3 are still read). The layout, and why,
is at `_codes.ROWS`. The writers and rebuilders of other classes, and the pydantic v2 parts
both use, are in `_classes`.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Sequence
from itertools import islice
from typing import Any, NamedTuple, TypeVar

from msgpack import ExtType

from . import _codes as C
from ._builtins import Builder, Encoder
from ._classes import SEEN, _arity, _list, _pydantic_fit, _pydantic_v2_parts, key_of
from ._errors import MalformedDataError

__all__ = [
    "RowSpec",
    "pydantic_row_builder",
    "pydantic_row_lists_builder",
    "pydantic_row_spec",
    "pydantic_row_state",
    "pydantic_rows_builder",
    "pydantic_v2_encoder",
]


def _row_reader(names: tuple[str, ...]) -> Callable[[dict[str, Any]], tuple[Any, ...]]:
    """`d -> tuple(d[n] for n in names)`, in C: `itemgetter` of one name returns a bare value."""
    if len(names) == 1:
        (name,) = names
        return lambda d: (d[name],)
    if not names:
        return lambda d: ()
    getter: Callable[[dict[str, Any]], tuple[Any, ...]] = operator.itemgetter(*names)
    return getter


_RECENT_SETS = 4
"""fields_sets a class's row writer remembers with their sorted names and with their masks."""

RowState = Callable[[Any], tuple[list[str] | None, tuple[Any, ...]] | None]


class RowSpec(NamedTuple):
    """How instances of one pydantic v2 class are written as rows (`pydantic_row_spec`)."""

    text: str
    """The text of the class's `PYDANTIC_V2_ROW` marker: `module:qualname`, a NUL, the field
    names joined by commas."""
    size: int
    """Number of fields: a row's `__dict__` holds exactly these."""
    row: Callable[[dict[str, Any]], tuple[Any, ...]]
    """`__dict__ -> field values` in the marker's order (KeyError: a field never set)."""
    all_names: frozenset[str]
    """Every field name: a fields_set equal to it is written as None."""
    sorted_names: Callable[[set[str]], list[str]]
    """A fields_set's names, sorted (equal values, equal bytes whatever the hash seed)."""
    mask_of: Callable[[set[str]], int]
    """A fields_set as a bit mask: bit i for the i-th field of the marker's order."""


def pydantic_row_spec(cls: type) -> RowSpec:
    """How instances of the pydantic v2 class `cls` are written as rows: an instance is a
    row when its `__dict__` holds exactly the class's fields and it has no extra fields;
    it is written as `(None or the sorted fields_set, the field values in the marker's
    order)`. Both the class's own writer and a `ROWS` list write rows by it."""
    key = key_of(cls)
    SEEN[key] = cls
    names = tuple(cls.model_fields)  # type: ignore[attr-defined]
    bits = {name: 1 << i for i, name in enumerate(names)}
    return RowSpec(
        f"{key}\0{','.join(names)}",
        len(names),
        _row_reader(names),
        frozenset(names),
        _by_recent_sets(sorted),
        _by_recent_sets(lambda seen: sum(bits[name] for name in seen if name in bits)),
    )


T = TypeVar("T")


def _by_recent_sets(compute: Callable[[frozenset[str]], T]) -> Callable[[set[str]], T]:
    """`compute` of a fields_set, remembered for the last `_RECENT_SETS` sets met.

    Instances of a class share a few fields_sets (a HumanMessage sets content and id, an
    AIMessage that calls a tool tool_calls too), and comparing small sets costs less than
    sorting one or summing its bits: a set of another size is told apart at once. The
    memory is replaced whole, as threads share it.
    """
    recent: list[tuple[tuple[frozenset[str], T], ...]] = [()]

    def of(fields_set: set[str]) -> T:
        known = recent[0]
        for seen, result in known:
            if fields_set == seen:
                return result
        seen = frozenset(fields_set)
        result = compute(seen)
        recent[0] = ((seen, result), *known[: _RECENT_SETS - 1])
        return result

    return of


def pydantic_row_state(cls: type) -> tuple[str, RowState]:
    """The text of the class's `PYDANTIC_V2_ROW` marker and `state(o)`: `(None or the sorted
    fields_set, the field values)`, or None when o is not a row (`pydantic_row_spec`)."""
    text, count, row, all_names, sorted_names, _ = pydantic_row_spec(cls)

    def row_state(o: Any) -> tuple[list[str] | None, tuple[Any, ...]] | None:
        d = o.__dict__
        if len(d) != count or getattr(o, "__pydantic_extra__", None):
            return None
        try:
            values = row(d)
        except KeyError:  # a field never set (model_construct), and something else
            return None
        fields_set = o.__pydantic_fields_set__
        if fields_set == all_names:
            return None, values
        return sorted_names(fields_set), values

    return text, row_state


def pydantic_v2_encoder(cls: type) -> Encoder:
    """The writer for instances of the pydantic v2 class `cls`: a row when the instance is one
    (`pydantic_row_state`), else its field map, extra fields and fields_set."""
    key = key_of(cls)
    SEEN[key] = cls
    marker = ExtType(C.PYDANTIC_V2, key.encode())
    names = tuple(cls.model_fields)  # type: ignore[attr-defined]
    count = len(names)
    row_text, row_state = pydantic_row_state(cls)
    row_marker = ExtType(C.PYDANTIC_V2_ROW, row_text.encode())

    def pydantic_v2(o: Any) -> list[Any]:
        state = row_state(o)
        if state is not None:
            return [*state[1], state[0], row_marker]
        d = o.__dict__
        extra = getattr(o, "__pydantic_extra__", None)
        fields_set = o.__pydantic_fields_set__
        if len(d) != count:  # e.g. a cached_property stored in __dict__: not state
            d = {k: d[k] for k in names if k in d}
        unset = not extra and fields_set == d.keys()
        return [d, extra or None, None if unset else sorted(fields_set), marker]

    return pydantic_v2


_END = object()  # what next() gives past a ROWS list's end


def pydantic_row_builder(cls: Any, written: tuple[str, ...]) -> Builder:
    """The rebuilder of `PYDANTIC_V2_ROW` instances of `cls` whose rows hold `written` fields.

    The field map is built from `written`, which the decoder parsed once per class, so no key
    string is decoded per instance; the rest mirrors `_pydantic_v2_builder`.
    """
    count = len(written)
    names = frozenset(cls.model_fields)
    if len(set(written)) != count:
        raise MalformedDataError(f"stored {cls.__qualname__} names a field twice")
    fit = _pydantic_fit(cls) if frozenset(written) != names else None
    written_set = set(written) & names
    extra_dict, root, post_init, new, set_dict, set_fields_set, set_extra, set_private = (
        _pydantic_v2_parts(cls)
    )

    def build(a: list[Any]) -> Any:
        fields_set = a.pop() if a else _arity(cls)
        if len(a) != count:
            raise MalformedDataError(
                f"stored {cls.__qualname__} has {len(a)} values for {count} fields"
            )
        # Lengths are checked above. No `strict=` argument: passing the keyword at all took
        # zip 0.85 instead of 0.62 us per message (timeit), a tenth of rebuilding one.
        d = dict(zip(written, a))  # noqa: B905
        if fit is not None:
            d = fit(d)
        if fields_set is None:
            fields_set = written_set.copy()  # copying a set skips hashing its names again
        else:
            fields_set = set(_list(fields_set))
            if not fields_set <= names:  # names that are not fields (any more) are dropped
                fields_set &= names
        inst = new(cls)
        set_dict(inst, d)
        set_fields_set(inst, fields_set)
        if not root:
            set_extra(inst, {} if extra_dict else None)
            set_private(inst, None)
        if post_init:  # private attributes get their defaults, as in model_construct
            inst.model_post_init(None)
        return inst

    return build


def pydantic_rows_builder(kinds: Sequence[tuple[Any, tuple[str, ...]]]) -> Builder:
    """The rebuilder of a `ROWS` list whose rows name the classes `kinds` by position.

    `kinds[i]` is `(cls, written)` for the i-th name of the list; a row of it is `i`, then
    None, its fields_set as a bit mask over `written` (cp5) or a list of names (cp4), then
    `len(written)` values (see `_codes.ROWS`). The common
    row (written with the class's fields as they are now, of a class with no root model or
    post-init hook) is rebuilt here without a call per instance, as `pydantic_row_builder`
    would rebuild it; any other row goes through that builder.
    """
    general = [pydantic_row_builder(cls, written) for cls, written in kinds]
    widths = [len(written) for _, written in kinds]
    fast: list[tuple[Any, ...] | None] = []
    for cls, written in kinds:
        extra_dict, root, post_init, *setters = _pydantic_v2_parts(cls)
        if root or post_init or frozenset(written) != frozenset(cls.model_fields):
            fast.append(None)
        else:
            fast.append((cls, written, len(written), set(written), extra_dict, *setters))
    count = len(kinds)
    # fields_set by (class index, mask): the frozenset a mask names, built once per list.
    masks: dict[tuple[int, int], frozenset[str]] = {}

    def of_mask(index: int, mask: int) -> frozenset[str]:
        written = kinds[index][1]
        if mask < 0 or mask >> len(written):
            raise MalformedDataError(f"fields_set mask {mask} names fields past {written!r}")
        names = masks[index, mask] = frozenset(n for i, n in enumerate(written) if mask >> i & 1)
        return names

    def build(a: list[Any]) -> list[Any]:
        out: list[Any] = []
        append = out.append
        values = iter(a)
        next(values)  # a[0] holds the class names
        for index in values:
            if type(index) is not int or not 0 <= index < count:
                raise MalformedDataError(f"row names class {index!r} of {count}")
            fields_set = next(values, _END)
            parts = fast[index]
            if parts is None:
                row = list(islice(values, widths[index]))
                if fields_set is _END or len(row) != widths[index]:
                    raise MalformedDataError("the list of rows ends inside a row")
                if type(fields_set) is int:  # that builder reads names
                    named = masks.get((index, fields_set))
                    fields_set = list(named if named is not None else of_mask(index, fields_set))
                row.append(fields_set)
                append(general[index](row))
                continue
            (cls, written, width, written_set, extra_dict, new, set_dict, set_fields_set,
             set_extra, set_private) = parts  # fmt: skip
            # zip takes a name before each value, so it stops at the row's end.
            d = dict(zip(written, values))  # noqa: B905
            if len(d) != width:
                raise MalformedDataError("the list of rows ends inside a row")
            if fields_set is None:
                fields_set = written_set.copy()
            elif type(fields_set) is int:
                named = masks.get((index, fields_set))
                fields_set = set(named if named is not None else of_mask(index, fields_set))
            elif type(fields_set) is list:
                fields_set = set(fields_set)
                if not fields_set <= written_set:  # names that are not fields are dropped
                    fields_set &= written_set
            else:
                raise MalformedDataError("expected a list of field names")
            inst = new(cls)
            set_dict(inst, d)
            set_fields_set(inst, fields_set)
            set_extra(inst, {} if extra_dict else None)
            set_private(inst, None)
            append(inst)
        return out

    return build


def pydantic_row_lists_builder(kinds: Sequence[tuple[Any, tuple[str, ...]]]) -> Builder:
    """The rebuilder of a `ROW_LISTS` list (tag msgpack.cp3, read only): each row an array
    `[value, ..., fields_set or None, i]`, laid out as a `ROWS` list and rebuilt as one."""
    widths = [len(written) for _, written in kinds]
    build_rows = pydantic_rows_builder(kinds)

    def build(a: list[Any]) -> list[Any]:
        flat: list[Any] = [a[0]]
        for row in islice(a, 1, None):
            if type(row) is not list or len(row) < 2:
                raise MalformedDataError("expected a row of field values")
            index = row[-1]
            if type(index) is int and 0 <= index < len(widths) and len(row) - 2 != widths[index]:
                raise MalformedDataError(
                    f"stored {kinds[index][0].__qualname__} has {len(row) - 2} values for "
                    f"{widths[index]} fields"
                )
            flat += (index, row[-2])
            flat += islice(row, len(row) - 2)
        rows: list[Any] = build_rows(flat)
        return rows

    return build

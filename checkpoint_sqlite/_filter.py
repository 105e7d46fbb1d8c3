"""Metadata filters as SQL: `json_type` / `json_extract` conditions on bound JSON paths.

The conditions narrow a page in storage and never drop a row that the base's Python
semantics (`checkpoint_base._metadata.matches_filter`) would keep; the saver re-checks every
row, so whatever cannot be expressed exactly is widened (a type check, a float range) or
left out. Keys and values are always bound parameters: a hostile key is data in a bound
JSON path, never SQL.

How SQLite reads a quoted path key depends on its version, so this module asks the linked
library once (`json_support`) instead of trusting a version number:

- SQLite >= 3.45 decodes escapes in `$."..."` and in object labels before comparing, so any
  key without NUL can be written as its JSON-escaped form (a NUL still ends the comparison).
- Older versions compare the path key with the label's raw text and end a quoted key at
  the first `"`; there only keys whose JSON form needs no escape at all (printable ASCII
  without `"` or `\\`) are pushed down, and strings with NUL are not compared (older
  `json_extract` stops at `\\u0000`).
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["JsonSupport", "filter_sql", "json_support"]

_MAX_CONDITIONS = 24  # nested values beyond this are only type-checked; the saver re-checks
_MAX_KEYS = 64
"""Top-level keys pushed down; the rest are left to the saver. Each condition deepens the
ANDed expression SQLite parses, which it refuses past a depth of 1000 ("Expression tree is
too large"), and binds up to four parameters (999 per statement on old builds)."""
_EXACT_INT = 2**53  # integers SQLite and Python both hold exactly as REAL and INTEGER
_FLOAT_SLACK = 1e-9  # relative window for non-integral floats: SQLite parses them itself


@dataclass(frozen=True, slots=True)
class JsonSupport:
    """What the linked SQLite's JSON functions do with escapes (probed once per process)."""

    escaped_keys: bool
    """`$."a\\"b"` finds the key `a"b`: path keys are unescaped before comparison."""
    nul_strings: bool
    """`json_extract` returns a string holding `\\u0000` whole."""


@functools.cache
def json_support() -> JsonSupport:
    """Probe the SQLite library this process links (sqlite3 and aiosqlite share it)."""
    doc = json.dumps({'a"b': 1, "n": "x\x00y"})
    conn = sqlite3.connect(":memory:")
    try:
        row = conn.execute(
            "SELECT json_extract(?, ?), json_extract(?, '$.n') = ?",
            (doc, '$."a\\"b"', doc, "x\x00y"),
        ).fetchone()
    except sqlite3.Error:
        row = (None, 0)
    finally:
        conn.close()
    return JsonSupport(escaped_keys=row[0] == 1, nul_strings=row[1] == 1)


def path_key(key: str, support: JsonSupport) -> str | None:
    """`key` as one quoted JSON path step, or None when it cannot be expressed safely."""
    if "\x00" in key:  # 3.51 still ends a label at NUL when comparing: "\x00" finds "\x00x"
        return None
    escaped = json.dumps(key, ensure_ascii=True)[1:-1]
    if support.escaped_keys:
        return f'."{escaped}"'
    if escaped == key and key.isprintable():  # no escape in any encoder's output
        return f'."{key}"'
    return None


def filter_sql(
    filter: Mapping[str, Any], support: JsonSupport | None = None
) -> tuple[list[str], list[object]]:
    """SQL conditions on the `metadata` column that every matching row satisfies.

    Returns:
        (conditions, params): conditions to AND together, and their bound parameters
        in order. Keys that cannot be pushed down yield no condition.
    """
    support = support or json_support()
    builder = _Builder(support)
    for key, value in filter.items():
        if len(builder.conditions) >= _MAX_KEYS:
            break
        step = path_key(key, support)
        if step is not None:
            builder.value("$" + step, value)
    return builder.conditions, builder.params


class _Builder:
    """Accumulates conditions for one filter, within `_MAX_CONDITIONS`."""

    __slots__ = ("conditions", "params", "support")

    def __init__(self, support: JsonSupport) -> None:
        self.support = support
        self.conditions: list[str] = []
        self.params: list[object] = []

    def add(self, sql: str, *params: object) -> None:
        self.conditions.append(sql)
        self.params.extend(params)

    def value(self, path: str, value: Any) -> None:
        if isinstance(value, bool):
            self.add("json_type(metadata, ?) = ?", path, "true" if value else "false")
        elif value is None:
            self.add("json_type(metadata, ?) = 'null'", path)
        elif isinstance(value, (int, float)):
            self.number(path, value)
        elif isinstance(value, str):
            if "\x00" in value and not self.support.nul_strings:
                self.add("json_type(metadata, ?) = 'text'", path)
            else:
                self.add(
                    "json_extract(metadata, ?) = ? AND json_type(metadata, ?) = 'text'",
                    path,
                    value,
                    path,
                )
        elif isinstance(value, list):
            self.add(
                "json_type(metadata, ?) = 'array' AND json_array_length(metadata, ?) = ?",
                path,
                path,
                len(value),
            )
            for i, item in enumerate(value):
                if len(self.conditions) >= _MAX_CONDITIONS:
                    break
                self.value(f"{path}[{i}]", item)
        elif isinstance(value, Mapping):
            self.add("json_type(metadata, ?) = 'object'", path)
            for key, item in value.items():
                if len(self.conditions) >= _MAX_CONDITIONS:
                    break
                step = path_key(str(key), self.support)
                if step is not None:
                    self.value(path + step, item)

    def number(self, path: str, value: float) -> None:
        # The value test comes first: most rows fail it, and are then not typed at all.
        typed = "json_type(metadata, ?) IN ('integer', 'real')"
        if isinstance(value, int) or value.is_integer():
            if abs(value) <= _EXACT_INT:  # exact in both; SQLite compares 1 = 1.0 as Python does
                self.add("json_extract(metadata, ?) = ? AND " + typed, path, value, path)
            else:
                self.add(typed, path)
        elif math.isfinite(value):
            slack = abs(value) * _FLOAT_SLACK
            self.add(
                "json_extract(metadata, ?) BETWEEN ? AND ? AND " + typed,
                path,
                value - slack,
                value + slack,
                path,
            )
        else:  # pragma: no cover - metadata JSON never holds NaN or infinity
            self.add(typed, path)

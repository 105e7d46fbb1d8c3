"""Turn a `ListQuery` into a lexicographic range over one of a thread's sorted sets.

Pure functions: the bounds are computed here, in Python, where strings compare by code point;
the Lua side only walks `ZREVRANGEBYLEX` between them (Lua's own string comparison follows
the server's locale, so it is never used for ordering).
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from checkpoint_base import CheckpointRecord, ListQuery

from ._keys import seg, seg_common

_quote = json.encoder.encode_basestring_ascii  # what json.dumps does for a str, in C

__all__ = ["INDEXED_KEYS", "Scan", "canonical", "index_prefixes", "plan_scan", "run_prefix"]

INDEXED_KEYS = ("run_id", "step", "source")
"""Metadata keys indexed in storage, most selective first (LangGraph writes all three)."""

_Bound = tuple[bytes, bool]  # (member prefix, inclusive)


def _normalize(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)  # 2.0 == 2 in filter semantics, so both index the same
    if isinstance(value, Mapping):
        return {str(k): _normalize(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_normalize(v) for v in value]
    return value


def canonical(value: Any) -> str:
    """One JSON text per equivalence class of `checkpoint_base._metadata.json_equal`."""
    kind = type(value)
    if kind is str:
        return _quote(value)
    if kind is int:
        return str(value)
    return json.dumps(_normalize(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def run_prefix(run_id: str) -> bytes:
    """Prefix of the `m` members that index a record's run id (for delete_runs)."""
    return seg("") + seg(run_id)


def index_prefixes(record: CheckpointRecord, metadata: Mapping[str, Any]) -> list[bytes]:
    """The `m` member prefixes of a record: its indexed metadata values and its run id."""
    found = [seg_common(k) + seg(canonical(metadata[k])) for k in INDEXED_KEYS if k in metadata]
    if record.run_id is not None:
        found.append(run_prefix(record.run_id))
    return found


@dataclass(frozen=True, slots=True)
class Scan:
    """A walk over one sorted set of each thread, newest first.

    Attributes:
        index: The thread key letter: `i` (one namespace), `o` (all), `m` (metadata index).
        skip: Segments in a member before K (i: 0, o: 1, m: 3).
        hi: `ZREVRANGEBYLEX` upper bound for a thread ordered before, equal to, or after
            the cursor's thread (all three equal without a cursor).
        lo: The lower bound.
        ns: seg(namespace) that every row's K must start with, or b"" (no post-filter).
        checks: `m` prefixes every row must also carry (further indexed filter keys).
        pushed: The filter keys this scan applies exactly.
    """

    index: bytes
    skip: int
    hi: tuple[bytes, bytes, bytes]
    lo: bytes
    ns: bytes
    checks: tuple[bytes, ...]
    pushed: frozenset[str]


def _tightest(bounds: list[_Bound]) -> _Bound | None:
    best: _Bound | None = None
    for bound in bounds:
        if best is None or bound[0] < best[0] or (bound[0] == best[0] and not bound[1]):
            best = bound
    return best


def _o_uppers(q: ListQuery, rel: int) -> list[_Bound]:
    """Upper bounds on o-form members (seg(cid) + seg(ns) + seg(cid))."""
    ups: list[_Bound] = []
    if q.checkpoint_id is not None:
        ups.append((seg(q.checkpoint_id) + b"\xff", False))
    if q.before is not None:
        ups.append((seg(q.before), False))
    if q.cursor is not None:
        ccid, _ctid, cns = q.cursor
        if rel < 0:  # this thread sorts before the cursor's: cid <= ccid
            ups.append((seg(ccid) + b"\xff", False))
        elif rel > 0:  # after it: cid < ccid
            ups.append((seg(ccid), False))
        else:  # same thread: (cid, ns) < (ccid, cns)
            ups.append((seg(ccid) + seg(cns) + seg(ccid), False))
    return ups


def _i_uppers(q: ListQuery, ns: str, rel: int) -> list[_Bound]:
    """Upper bounds on i-form members (seg(ns) + seg(cid)) of one namespace."""
    nst = seg(ns)
    ups: list[_Bound] = [(nst + b"\xff", False)]
    if q.checkpoint_id is not None:
        ups.append((nst + seg(q.checkpoint_id), True))
    if q.before is not None:
        ups.append((nst + seg(q.before), False))
    if q.cursor is not None:
        ccid, _ctid, cns = q.cursor
        inclusive = rel < 0 or (rel == 0 and ns < cns)
        ups.append((nst + seg(ccid), inclusive))
    return ups


def _render_hi(bound: _Bound | None, prefix: bytes) -> bytes:
    if bound is None:
        return b"(" + prefix + b"\xff" if prefix else b"+"
    return (b"[" if bound[1] else b"(") + prefix + bound[0]


def _pushdown(flt: Mapping[str, Any] | None) -> list[bytes]:
    if not flt:
        return []
    return [seg(k) + seg(canonical(flt[k])) for k in INDEXED_KEYS if k in flt]


def plan_scan(q: ListQuery) -> Scan:
    """The range walk that yields exactly the rows of `q` (or a superset, for the filter)."""
    prefixes = _pushdown(q.filter)
    pushed = frozenset(k for k in INDEXED_KEYS if q.filter and k in q.filter)
    rels = (-1, 0, 1)
    if not prefixes and q.checkpoint_ns is not None:
        ns = q.checkpoint_ns
        lo = b"[" + seg(ns) + (seg(q.checkpoint_id) if q.checkpoint_id is not None else b"")
        his = tuple(_render_hi(_tightest(_i_uppers(q, ns, r)), b"") for r in rels)
        return Scan(b"i", 0, (his[0], his[1], his[2]), lo, b"", (), pushed)
    prefix = prefixes[0] if prefixes else b""
    if q.checkpoint_id is not None:
        lo = b"[" + prefix + seg(q.checkpoint_id)
    else:
        lo = b"[" + prefix if prefix else b"-"
    his = tuple(_render_hi(_tightest(_o_uppers(q, r)), prefix) for r in rels)
    ns_filter = seg(q.checkpoint_ns) if q.checkpoint_ns is not None else b""
    return Scan(
        b"m" if prefix else b"o",
        3 if prefix else 1,
        (his[0], his[1], his[2]),
        lo,
        ns_filter,
        tuple(prefixes[1:]),
        pushed,
    )

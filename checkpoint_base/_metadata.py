"""Checkpoint metadata as this package stores it: JSON text that storage can index and
filter on, written only when it reads back as given (else refused with a `ConfigError`), and
the filter semantics every backend shares."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import EXCLUDED_METADATA_KEYS, CheckpointMetadata

from ._errors import ConfigError

__all__ = [
    "decode_metadata",
    "encode_metadata",
    "json_equal",
    "jsonb_refuses",
    "matches_filter",
    "normalize_filter",
]


def _reject(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON")


# One encoder for every put: json.dumps with these options builds a new JSONEncoder per call.
_metadata_json = json.JSONEncoder(
    ensure_ascii=True, separators=(",", ":"), allow_nan=False, default=_reject
).encode


MAX_METADATA_DEPTH = 200
"""How deeply metadata may nest containers (the metadata dict itself is level 1).

Python's json reads and writes each level with a recursive C call, counted against the
recursion limit (1000) together with the caller's own frames: metadata stored deeper than
about 1000 minus the reader's stack depth could be written and then not read back, or read
by one caller and not by a deeper one. LangGraph's metadata nests a few levels."""


def encode_metadata(metadata: Mapping[str, Any]) -> bytes:
    """Metadata as ASCII JSON: storage can index it and filter on it."""
    try:
        text = _metadata_json(metadata)
    except RecursionError as exc:
        raise ConfigError(_too_deep(())) from exc
    except (TypeError, ValueError) as exc:
        bad = (
            ", ".join(repr(k) for k, v in metadata.items() if not _is_json(v)) or "(a nested value)"
        )
        raise ConfigError(
            f"checkpoint metadata must be JSON (str, int, float, bool, None, list, dict); "
            f"key {bad}: {exc}. Convert the value to a JSON type before passing it."
        ) from exc
    # json writes a key that is not a str as one (two keys can become one) and a surrogate
    # pair as the one character it encodes: each would come back as something else.
    problem = _unfaithful(metadata, "\\ud" in text)
    if problem is not None:
        raise ConfigError(
            f"checkpoint metadata cannot be stored faithfully: {problem}. Convert it to plain "
            "JSON values (str keys; str, int, float, bool, None, list, dict) before passing it."
        )
    return text.encode("ascii")


_SCALARS = frozenset({str, int, float, bool, type(None)})
_SURROGATE_PAIR = re.compile("[\ud800-\udbff][\udc00-\udfff]")


def _unfaithful(metadata: Mapping[str, Any], surrogates: bool) -> str | None:
    """What of `metadata` JSON would give back changed, beyond its documented coercions
    (tuples come back as lists, subclasses of str, int and float such as enums as the plain
    value): a key that is not a str (JSON makes it one, and it may then replace another),
    or, when `surrogates` (the JSON text escapes one), a surrogate pair in a string, which
    JSON reads back as the one character it encodes. None when there is nothing. Raises the
    `ConfigError` itself for containers nested deeper than `MAX_METADATA_DEPTH`.

    Runs on every put (about 2 us for LangGraph's usual ten keys): scalars are skipped by type,
    only containers are walked, and a path is spelled out only for the error.
    """
    pending: list[tuple[Any, tuple[Any, ...]]] = [(metadata, ())]
    while pending:
        node, at = pending.pop()
        keyed = isinstance(node, Mapping)
        if keyed:
            pairs: Any = node.items()
        elif isinstance(node, (list, tuple)):
            pairs = enumerate(node)
        else:  # a str pushed because `surrogates`, or a subclass of a scalar (stored plain)
            if isinstance(node, str) and surrogates and _SURROGATE_PAIR.search(node):
                return f"{_spelled(at)} holds a surrogate pair, which JSON reads back as one char"
            continue
        if len(at) >= MAX_METADATA_DEPTH:
            raise ConfigError(_too_deep(at))
        for key, value in pairs:
            if keyed:
                if not isinstance(key, str):
                    return (
                        f"{_spelled(at)} has the key {key!r} of type {type(key).__name__}; JSON "
                        "object keys are strings, so it would come back as a str (or replace one)"
                    )
                if surrogates and _SURROGATE_PAIR.search(key):
                    return f"{_spelled(at)} has a key holding a surrogate pair (one char when read)"
            if type(value) in _SCALARS and not (surrogates and type(value) is str):
                continue
            pending.append((value, (*at, key)))
    return None


def _too_deep(at: tuple[Any, ...]) -> str:
    where = f" (at {_spelled(at[:4])}{'...' if len(at) > 4 else ''})" if at else ""
    return (
        f"checkpoint metadata nests containers deeper than {MAX_METADATA_DEPTH} levels{where}, "
        "more than can be read back reliably; keep deeply nested data in the graph's state"
    )


def _spelled(at: tuple[Any, ...]) -> str:
    return "metadata" + "".join(f"[{key!r}]" for key in at)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False, default=_reject)
    except (TypeError, ValueError):
        return False
    return True


def decode_metadata(data: bytes) -> CheckpointMetadata:
    """The inverse of `encode_metadata`."""
    # A JSON object in UTF-8 (encode_metadata writes ASCII) is decoded here as json.loads
    # would decode it, without first probing the bytes for a BOM or UTF-16/32 (1 us a row).
    try:
        if type(data) is bytes and data[:1] == b"{":
            value = json.loads(data.decode("utf-8", "surrogatepass"))
        else:
            value = json.loads(data)
    except RecursionError as exc:  # crafted or foreign: never written by encode_metadata
        raise ValueError(
            f"stored metadata nests deeper than JSON can be read ({len(data)} bytes)"
        ) from exc
    if not isinstance(value, dict):
        raise ValueError("stored metadata is not a JSON object")
    return value  # type: ignore[return-value]


_JSON_SCALARS = frozenset({str, int, float, bool, type(None)})


def normalize_filter(filter: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A metadata filter as JSON values (tuples become lists), or None for no filter."""
    if not filter:
        return None
    if not isinstance(filter, Mapping):
        raise ConfigError(f"filter must be a dict of metadata values, got {type(filter).__name__}")
    for key in filter:
        if not isinstance(key, str):
            raise ConfigError(f"filter keys must be str, got {key!r}")
    # Keys of type str and scalars of exactly these types come back from JSON unchanged:
    # skip the round trip (5 us of a filtered list of a short thread).
    if all(
        type(k) is str and type(v) in _JSON_SCALARS and (type(v) is not float or math.isfinite(v))
        for k, v in filter.items()
    ):
        return dict(filter)
    normalized = json.loads(encode_metadata(filter))
    assert isinstance(normalized, dict)
    return normalized


def jsonb_refuses(ch: str) -> bool:
    """Whether PostgreSQL's JSONB refuses the character in a string or key: NUL, or a
    surrogate (JSON text can only bring one in unpaired)."""
    return ch == "\x00" or "\ud800" <= ch <= "\udfff"


def json_equal(a: Any, b: Any) -> bool:
    """Equality of two decoded JSON values: booleans are not numbers, 1 equals 1.0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return a == b and not (isinstance(a, float) and math.isnan(a))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(json_equal(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


def matches_filter(metadata: Mapping[str, Any], filter: Mapping[str, Any] | None) -> bool:
    """True when every filter key is in the metadata with an equal value.

    Keys are top-level metadata keys, taken literally ("a.b" is one key, not a path);
    values compare whole (a nested dict must be equal, not merely contained).
    """
    if not filter:
        return True
    return all(k in metadata and json_equal(metadata[k], v) for k, v in filter.items())


def stored_metadata_for(config: RunnableConfig, metadata: CheckpointMetadata) -> dict[str, Any]:
    """The metadata to store: the given metadata plus scalar config entries, as LangGraph does.

    Unlike `langgraph.checkpoint.base.get_checkpoint_metadata`, strings keep their NUL
    characters: every backend stores them faithfully, so nothing is silently changed.
    """
    stored: dict[str, Any] = dict(metadata)
    stored.pop("writes", None)
    for source in (config.get("metadata"), config.get("configurable")):
        if not source:
            continue
        for key, value in source.items():
            if key in stored or key in EXCLUDED_METADATA_KEYS or key.startswith("__"):
                continue
            if isinstance(value, (str, int, bool, float)):
                stored[key] = value
    return stored

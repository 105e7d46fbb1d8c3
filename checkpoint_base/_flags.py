"""True or false as a URL's query writes it (`?read_only=yes`, `?pgbouncer=true`).

Each option keeps the words it has always taken: a caller gives its own table, and decides
itself what a word the table lacks means (an error, or false).
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

__all__ = ["ON_OFF", "flag_words", "url_flag"]


def flag_words(true: str, false: str) -> Mapping[str, bool]:
    """A table for `url_flag`: each space-separated word of `true` and `false` (lower case)."""
    table = dict.fromkeys(true.split(), True)
    table.update(dict.fromkeys(false.split(), False))
    return MappingProxyType(table)


ON_OFF = flag_words("1 true yes on", "0 false no off")
"""1/0, true/false, yes/no, on/off: the SQLite and Redis URL options, and `ssl=` of a TLS
scheme (which takes only the true ones)."""


def url_flag(value: str, *, accept: Mapping[str, bool] = ON_OFF) -> bool | None:
    """`value`, in any case, as `accept` reads it; None for a word `accept` does not have."""
    return accept.get(value.lower())

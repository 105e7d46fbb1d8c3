"""What a PostgreSQL plan yields: a statement with its parameters, or "begin a transaction"."""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["BEGIN", "Begin", "Fetch", "Query"]


class Fetch(enum.Enum):
    """What the executor sends back into the plan for a statement."""

    NONE = "none"  # None
    ONE = "one"  # the first row, or None
    ALL = "all"  # a list of rows


@dataclass(frozen=True, slots=True)
class Query:
    """One statement, run in binary result format.

    Attributes:
        sql: The rendered statement (`%(name)s` or `%s` placeholders; `b` for bytea).
        params: Its bound values, by name or by position.
        fetch: What to return to the plan.
        idempotent: Running it twice leaves the same state as running it once, so after a
            lost connection it may run again even if the first attempt might have committed.
        unsynced: The same statement, setting its own transaction's `synchronous_commit`
            off: run instead when the statement is a transaction of its own (no caller's
            transaction, none the plan began), so that no other write loses durability.
        untransacted: The statement refuses to run in a transaction (`VACUUM`): on a
            connection passed in without autocommit, it runs with autocommit switched on
            for it, instead of in a transaction of its own.
    """

    sql: bytes
    params: Mapping[str, Any] | Sequence[Any] = field(default_factory=dict)
    fetch: Fetch = Fetch.NONE
    idempotent: bool = True
    unsynced: bytes | None = None
    untransacted: bool = False


@dataclass(frozen=True, slots=True)
class Begin:
    """The rest of the plan runs in one transaction, committed when the plan returns."""


BEGIN = Begin()

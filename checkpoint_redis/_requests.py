"""What Redis plans yield: a script call, a plain command, or a batch of them.

Every request is idempotent (a put replaces, blobs and `idx >= 0` writes are insert-if-absent,
deletes delete), so an executor may send one again after a lost connection or a failover.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._lua_prelude import Script

__all__ = ["Arg", "Batch", "Command", "Eval"]

Arg = bytes | str | int | float


@dataclass(frozen=True, slots=True)
class Eval:
    """EVALSHA of a constant script (EVAL once if the server does not have it yet)."""

    script: Script
    keys: tuple[bytes, ...]
    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Command:
    """One Redis command, arguments bound as they are."""

    args: tuple[Arg, ...]


@dataclass(frozen=True, slots=True)
class Batch:
    """Independent requests sent together in one pipeline (not a transaction).

    On a cluster they may go to several nodes; the result is the list of their results.
    """

    requests: tuple[Eval | Command, ...]

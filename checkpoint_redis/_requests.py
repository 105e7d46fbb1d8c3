"""What Redis plans yield: a script call, a plain command, or a batch of them.

Every request is idempotent (a put replaces, blobs and `idx >= 0` writes are insert-if-absent,
deletes delete), so an executor may send one again after a lost connection or a failover.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ._lua_prelude import Script

__all__ = ["Arg", "Batch", "Command", "Eval", "Transaction", "commands", "queue"]

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
class Transaction:
    """Requests on the keys of one slot in one MULTI/EXEC: all apply, atomically, or none.

    The result is the list of their results. `inline`, when given, builds one script call
    that does the same (every value passed through the script); an executor whose client
    makes transactions costly runs that instead, and its result is then a list of the
    script's result alone.
    """

    requests: tuple[Eval | Command, ...]
    inline: Callable[[], Eval] | None = None


@dataclass(frozen=True, slots=True)
class Batch:
    """Independent requests sent together in one pipeline (not a transaction).

    On a cluster they may go to several nodes; the result is the list of their results.
    """

    requests: tuple[Eval | Command, ...]


def commands(
    requests: tuple[Eval | Command, ...], *, by_text: bool = False
) -> list[tuple[Arg, ...]]:
    """The requests as commands: scripts by SHA (EVALSHA), or by text (EVAL) when asked."""
    out: list[tuple[Arg, ...]] = []
    for request in requests:
        if isinstance(request, Eval):
            script = ("EVAL", request.script.text) if by_text else ("EVALSHA", request.script.sha)
            out.append((*script, len(request.keys), *request.keys, *request.args))
        else:
            out.append(request.args)
    return out


def queue(pipe: Any, requests: tuple[Eval | Command, ...], *, by_text: bool = False) -> None:
    """Add requests to a redis-py pipeline (as `commands` renders them)."""
    for args in commands(requests, by_text=by_text):
        pipe.execute_command(*args)

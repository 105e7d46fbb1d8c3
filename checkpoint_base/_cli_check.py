"""`checkpointers check`: can every stored checkpoint be read back?

Reads every checkpoint of every thread (or of the `--thread` ones) and rebuilds each part as
`get_tuple` would, with the saver's serializer: the checkpoint, its metadata, each channel
value (each stored version once) and each pending write. What cannot be read is listed by
thread, namespace, checkpoint and part, with the error. The cases it is for: a class of the
application renamed or moved since threads stored it (its values no longer rebuild), an
encryption key changed, data damaged on disk or in transit, and, before a migration or a
deploy, the question "will every thread still load?". Classes of the application are rebuilt
once named with `--allow`, as a graph allows its state schema's types when it is compiled.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._cli_format import Style, table
from ._cli_open import add_allow_argument, allow_types, every_thread, missing_thread, open_side
from ._convert import UNREADABLE, RowPart, row_parts
from ._migrate_side import Side
from ._records import BlobRecord, CheckpointRow, WriteRecord
from .serde import (
    DisallowedTypeError,
    EncryptedDataError,
    SerializationError,
    TypeNotFoundError,
)

__all__ = ["Checked", "Problem", "add_check_command", "check_threads"]

_FMT = argparse.RawDescriptionHelpFormatter
_SHOWN = 50
"""Problems listed one by one; the rest are counted."""
_EVERY = 5.0
"""Seconds between two progress lines on stderr."""
_BRIEF = 80
"""Characters of an error the table shows (`--json` gives it whole)."""


@dataclass(frozen=True, slots=True)
class Problem:
    """A part of a stored checkpoint that cannot be read back."""

    thread_id: str
    checkpoint_ns: str
    checkpoint_id: str
    part: str
    """Which part, as `DamagedDataError` names it."""
    error: str
    kind: str
    """The error's class name (`DisallowedTypeError`, `MalformedDataError`, ...)."""
    names: str | None = None
    """`module:qualname` of a class not allowed or not found, for `--allow`."""
    brief: tuple[str, str] = ("", "")
    """The part and the error in a few words, for the table."""


@dataclass(slots=True)
class Checked:
    """What `check_threads` read, and what it could not."""

    threads: int = 0
    checkpoints: int = 0
    values: int = 0
    writes: int = 0
    problems: list[Problem] = field(default_factory=list)


def check_threads(
    side: Side,
    thread_ids: Iterable[str],
    progress: Callable[[Checked], None] | None = None,
    *,
    named: bool = False,
) -> Checked:
    """Read every checkpoint of these threads back with `side`'s serializer; see the module.
    With `named`, a thread without checkpoints is an error (`missing_thread`); otherwise one
    deleted since it was listed is passed over."""
    checked = Checked()
    for thread_id in thread_ids:
        rows = side.run(side.read_thread(thread_id))
        if not rows:
            if named:
                raise missing_thread(side, thread_id)
            continue
        _check_thread(side, rows, checked)
        checked.threads += 1
        if progress is not None:
            progress(checked)
    return checked


def _check_thread(side: Side, rows: list[CheckpointRow], checked: Checked) -> None:
    serde = side.serde
    seen: set[tuple[str, str, str]] = set()  # a value version read by several checkpoints
    for row in rows:
        checked.checkpoints += 1
        for part in row_parts(serde, row):
            record = part.record
            if isinstance(record, BlobRecord):
                key = (record.checkpoint_ns, record.channel, record.version)
                if key in seen:
                    continue
                seen.add(key)
                checked.values += 1
            elif record is not None:
                checked.writes += 1
            try:
                part.read()
            except (*UNREADABLE, SerializationError) as exc:
                _fail(checked.problems, row, part, exc)


def _brief(part: RowPart) -> str:
    """The part in a few words, for the table."""
    record = part.record
    if isinstance(record, BlobRecord):
        return f"value {record.channel!r}"
    if isinstance(record, WriteRecord):
        return f"write {record.channel!r} ({record.task_id[:8]})"
    return part.kind


def _fail(problems: list[Problem], row: CheckpointRow, part: RowPart, exc: BaseException) -> None:
    rec = row.checkpoint
    names = None
    error = " ".join(f"{type(exc).__name__}: {exc}".split())
    if isinstance(exc, DisallowedTypeError):
        names, brief = f"{exc.module}:{exc.qualname}", f"{exc.module}.{exc.qualname} not allowed"
    elif isinstance(exc, TypeNotFoundError):
        names, brief = f"{exc.module}:{exc.qualname}", f"{exc.module}.{exc.qualname} not found"
    elif isinstance(exc, EncryptedDataError):
        brief = "encrypted, and no key"
    else:
        brief = error if len(error) <= _BRIEF else error[: _BRIEF - 3] + "..."
    problems.append(
        Problem(
            rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id, part.name, error,
            type(exc).__name__, names, (_brief(part), brief),
        )
    )  # fmt: skip


class _Progress:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._started = self._last = time.monotonic()

    def __call__(self, checked: Checked) -> None:
        now = time.monotonic()
        if now - self._last < _EVERY:
            return
        self._last = now
        self._out.write(
            f"checked {checked.threads:,} threads, {checked.checkpoints:,} checkpoints, "
            f"{len(checked.problems):,} problems ({now - self._started:.0f} s)\n"
        )
        self._out.flush()


def _check(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    with open_side(args.url) as side:
        allow_types(side, args.allow)
        if args.thread:
            threads: Iterable[str] = list(dict.fromkeys(args.thread))
        else:
            threads = (t.thread_id for t in every_thread(side) if t.checkpoint_count)
        checked = check_threads(side, threads, _Progress(sys.stderr), named=bool(args.thread))
    if args.json:
        doc = {
            "threads": checked.threads,
            "checkpoints": checked.checkpoints,
            "values": checked.values,
            "writes": checked.writes,
            "problems": [
                {
                    "thread_id": p.thread_id,
                    "checkpoint_ns": p.checkpoint_ns,
                    "checkpoint_id": p.checkpoint_id,
                    "part": p.part,
                    "error": p.error,
                    "class": p.names,
                }
                for p in checked.problems
            ],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return 1 if checked.problems else 0
    _report(out, style, checked)
    return 1 if checked.problems else 0


def _report(out: TextIO, style: Style, checked: Checked) -> None:
    problems = checked.problems
    what = ", ".join(
        _count(n, noun)
        for n, noun in (
            (checked.threads, "thread"),
            (checked.checkpoints, "checkpoint"),
            (checked.values, "value"),
            (checked.writes, "pending write"),
        )
    )
    if not problems:
        out.write(style(f"all readable: {what}", "green") + "\n")
        return
    rows = [
        [p.thread_id, repr(p.checkpoint_ns), p.checkpoint_id, *p.brief] for p in problems[:_SHOWN]
    ]
    headers = ["THREAD", "NAMESPACE", "CHECKPOINT", "PART", "PROBLEM"]
    out.write(table(headers, rows, style) + "\n")
    if len(problems) > _SHOWN:
        out.write(f"... and {len(problems) - _SHOWN:,} more\n")
    threads = len({p.thread_id for p in problems})
    checkpoints = len({(p.thread_id, p.checkpoint_ns, p.checkpoint_id) for p in problems})
    kinds = ", ".join(f"{n:,} {kind}" for kind, n in Counter(p.kind for p in problems).items())
    out.write(
        style(f"unreadable: {_count(len(problems), 'part')}", "red")
        + f" of {_count(checkpoints, 'checkpoint')} in {_count(threads, 'thread')} ({kinds}); "
        f"read {what}; --json gives each error whole\n"
    )
    names = Counter(p.names for p in problems if p.names)
    if names:
        listed = ", ".join(f"{name} ({n:,})" for name, n in names.most_common())
        allow = " ".join(f"--allow {name}" for name in names)
        out.write(
            f"classes not allowed or not found: {listed}. If they are the application's, run "
            f"again with {allow}; a class renamed or moved since the threads stored it no "
            "longer rebuilds under its old name\n"
        )
    if any(p.kind == "EncryptedDataError" for p in problems):
        out.write("encrypted values and no key: set LANGGRAPH_AES_KEY to the key that wrote them\n")


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}" if n == 1 else f"{n:,} {noun}s"


def add_check_command(commands: Any, url_help: str) -> None:
    """Add `check` to the sub-command parsers."""
    p = commands.add_parser(
        "check",
        help="read every stored checkpoint back, and list what cannot be",
        description="Read every checkpoint of every thread (or of the --thread ones) back as "
        "get_tuple does, with the saver's serializer: the checkpoint, its metadata, each "
        "channel value and pending write. Lists what cannot be read (a class renamed or moved "
        "since threads stored it, a changed encryption key, damaged data) by thread, "
        "checkpoint and part. Exit status 1 when anything is unreadable.",
        epilog="examples:\n  checkpointers check sqlite:///checkpoints.db --allow my_app.state\n"
        "  checkpointers check postgresql://me@db/app --thread t1 --json\n"
        "  checkpointers check langgraph-sqlite:///old.db\n\n" + url_help,
        formatter_class=_FMT,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("--thread", action="append", metavar="ID", help="only this thread (repeat)")
    add_allow_argument(p)
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_check)

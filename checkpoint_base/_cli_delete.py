"""`checkpointers delete`: delete whole threads, named or idle for longer than a duration.

`prune` keeps the newest checkpoint of every thread, so a store that `prune` alone keeps
still grows with every conversation ever started; `delete --idle 30d` is the time to live
of SQLite and PostgreSQL threads (Redis has `ttl=` as well), meant for a scheduled job. It
runs what a saver's `delete_idle_threads` runs (`sweep_idle`).

A thread is idle when its newest checkpoint (of any namespace) was written before the
cutoff. The listing can be old by the time a thread's turn comes, so each thread is looked
at again just before it is deleted, and kept if it was written since; what remains is the
moment between that look and the delete itself.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

from ._cli_admin import compact_hint
from ._cli_format import Style, format_age, format_time, parse_duration, table
from ._cli_open import listed_thread, open_side, saver_side
from ._errors import ConfigError
from ._migrate_side import SaverSide
from ._operations import newest_or_damaged, settle_idle, sweep_idle
from ._plan import run
from ._records import ThreadInfo

__all__ = ["add_delete_command", "delete_idle", "delete_named"]

_FMT = argparse.RawDescriptionHelpFormatter
_SHOWN = 50
"""Threads listed by name in the output; the rest are counted."""
_EVERY = 5.0
"""Seconds between two progress lines on stderr."""


@dataclass(frozen=True, slots=True)
class Doomed:
    """A thread to delete: its id, checkpoints (None: not counted) and newest write time."""

    thread_id: str
    checkpoints: int | None
    updated_at: float | None

    @classmethod
    def of(cls, info: ThreadInfo) -> Doomed:
        return cls(info.thread_id, info.checkpoint_count, info.updated_at)


@dataclass(slots=True)
class Deleted:
    """What a delete did: the threads deleted, those kept after all, those looked at."""

    deleted: list[Doomed] = field(default_factory=list)
    written_since: list[str] = field(default_factory=list)
    looked_at: int = 0
    listed: int | None = None
    """Threads listed so far (`--idle`); None for named threads."""


class _Progress:
    """A line on stderr every few seconds of a long delete."""

    def __init__(self, out: TextIO | None, dry_run: bool) -> None:
        self._out, self._dry_run = out, dry_run
        self._started = self._last = time.monotonic()

    def __call__(self, result: Deleted) -> None:
        now = time.monotonic()
        if self._out is None or now - self._last < _EVERY:
            return
        self._last = now
        verb = "would delete" if self._dry_run else "deleted"
        gone = len(result.deleted)
        noun = "thread" if gone == 1 else "threads"
        if result.listed is None:
            seen = f"{result.looked_at:,} named looked at"
        else:
            seen = f"{result.looked_at:,} idle of {result.listed:,} listed"
        self._out.write(f"{verb} {gone:,} {noun}, {seen} ({now - self._started:.0f} s)\n")
        self._out.flush()


def delete_idle(
    side: SaverSide, cutoff: float, *, dry_run: bool = False, progress: TextIO | None = None
) -> Deleted:
    """Delete every thread idle since `cutoff` (seconds since the epoch), as the saver's
    `delete_idle_threads` does, saying which went and which were written to since listed.

    Args:
        side: The saver.
        cutoff: Threads whose newest checkpoint is older than this go.
        dry_run: Delete nothing; say what would go.
        progress: Where to write a progress line every few seconds (stderr).
    """
    result, tick = Deleted(listed=0), _Progress(progress, dry_run)

    def listed(count: int) -> None:
        result.listed = (result.listed or 0) + count
        tick(result)

    def report(info: ThreadInfo, deleted: bool) -> None:
        result.looked_at += 1
        if deleted:
            result.deleted.append(Doomed.of(info))
        else:
            result.written_since.append(info.thread_id)
        tick(result)

    backend = side.saver.backend
    run(sweep_idle(backend, cutoff, dry_run=dry_run, report=report, listed=listed), side.run)
    return result


def delete_named(
    side: SaverSide,
    threads: Sequence[Doomed],
    cutoff: float | None,
    *,
    dry_run: bool = False,
    progress: TextIO | None = None,
) -> Deleted:
    """Delete the named `threads`; with `cutoff`, only those still idle when their turn comes
    (`settle_idle`)."""
    result, tick = Deleted(), _Progress(progress, dry_run)
    for info in threads:
        if cutoff is None or _idle(info, cutoff):
            plan = settle_idle(
                side.saver.backend, info.thread_id, cutoff, info.checkpoints, info.updated_at,
                dry_run=dry_run,
            )  # fmt: skip
            if run(plan, side.run):
                result.deleted.append(info)
            elif cutoff is not None:
                result.written_since.append(info.thread_id)
        result.looked_at += 1
        tick(result)
    return result


def _delete(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    if not args.thread and args.idle is None:
        raise ConfigError("say which threads: --thread ID (repeat) or --idle DURATION")
    now = time.time()
    cutoff = None
    if args.idle is not None:  # a ValueError says which forms a duration takes
        cutoff = now - parse_duration(args.idle)
    with open_side(args.url, write=not args.dry_run, create=False) as opened:
        side = saver_side(opened, "delete", "call their delete_thread()")
        if args.thread:
            named = [_named(side, t) for t in dict.fromkeys(args.thread)]
            total: int | None = len(named)
            result = delete_named(side, named, cutoff, dry_run=args.dry_run, progress=sys.stderr)
        else:
            assert cutoff is not None
            total = None
            result = delete_idle(side, cutoff, dry_run=args.dry_run, progress=sys.stderr)
        hint = compact_hint(side, args.url) if result.deleted and not args.dry_run else None
    _report(out, style, result, total, args, now)
    if hint:
        out.write(hint + "\n")
    return 0


def _named(side: SaverSide, thread_id: str) -> Doomed:
    """A thread named by --thread; an error when it is not there (neither checkpoints nor
    writes)."""
    newest, damaged = run(newest_or_damaged(side.saver.backend, thread_id), side.run)
    if damaged:  # deleted all the same, as the error advises
        return Doomed(thread_id, None, None)
    if newest is None:  # maybe writes and no checkpoint, as `threads` lists them
        listed = listed_thread(side, thread_id)
        if listed is None:
            raise ConfigError(f"no thread {thread_id!r} in {side.label}")
        return Doomed.of(listed)
    return Doomed(thread_id, None, newest)


def _idle(thread: Doomed, cutoff: float) -> bool:
    return thread.updated_at is not None and thread.updated_at < cutoff


def _report(
    out: TextIO, style: Style, result: Deleted, total: int | None, args: Any, now: float
) -> None:
    gone = result.deleted
    if gone:
        rows = [
            [t.thread_id, "-" if t.checkpoints is None else f"{t.checkpoints:,}",
             f"{format_time(t.updated_at)} "
             f"({format_age(t.updated_at, now)})"]
            for t in gone[:_SHOWN]
        ]  # fmt: skip
        out.write(table(["THREAD", "CHECKPOINTS", "LAST UPDATE"], rows, style, right=(1,)) + "\n")
        if len(gone) > _SHOWN:
            out.write(f"... and {len(gone) - _SHOWN:,} more\n")
    for thread_id in result.written_since:
        out.write(f"left {thread_id}: written to (or deleted elsewhere) since it was listed\n")
    verb = "would delete" if args.dry_run else "deleted"
    counts = [t.checkpoints for t in gone]
    idle = f" idle for more than {args.idle}" if args.idle is not None else ""
    of = f" of {total:,} named" if total is not None else ""
    tally = f" ({sum(c or 0 for c in counts):,} checkpoints)" if None not in counts else ""
    noun = "thread" if len(gone) == 1 else "threads"
    out.write(f"{verb} {len(gone):,} {noun}{of}{idle}{tally}\n")


def add_delete_command(commands: Any, url_help: str) -> None:
    """Add `delete` to the sub-command parsers."""
    p = commands.add_parser(
        "delete",
        help="delete whole threads: named ones, or those idle for longer than a duration",
        description="Delete every checkpoint, blob and write of threads: those named by "
        "--thread, or those whose newest checkpoint is older than --idle (both: the named "
        "ones that are idle). A time to live for threads, for a scheduled job: `prune` keeps "
        "each thread's newest checkpoint, this removes threads no one came back to. Each "
        "thread is looked at again just before it goes, and kept if written to since. Only "
        "for savers of this package.",
        epilog="examples:\n  checkpointers delete sqlite:///checkpoints.db --idle 30d --dry-run\n"
        "  checkpointers delete postgresql://me@db/app --idle 2w\n"
        "  checkpointers delete redis://localhost:6379/0 --thread t1 --thread t2\n\n" + url_help,
        formatter_class=_FMT,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("--thread", action="append", metavar="ID", help="this thread (repeat)")
    p.add_argument(
        "--idle",
        metavar="DURATION",
        help="threads whose newest checkpoint is older than this: 12h, 30d, 2w",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    p.set_defaults(run=_delete)

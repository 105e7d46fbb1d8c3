"""`checkpointers migrate SOURCE TARGET`: copy threads, with a progress bar and `--verify`."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any, TextIO

from ._cli_format import Style, format_bytes, format_seconds, parse_when
from ._cli_open import add_allow_argument, allow_types, open_side
from ._errors import ConfigError
from ._migrate import DEFAULT_BATCH, MigrationProgress, MigrationReport, migrate, verify

__all__ = ["add_migrate_command"]

_BAR = 24


class Stopped(Exception):
    """The user asked to stop (Ctrl-C): raised between batches from the progress callback."""


class ProgressBar:
    """Draws migration progress on stderr: a redrawn bar on a TTY, a line every 5 s otherwise."""

    def __init__(self, stream: TextIO, verb: str = "copied") -> None:
        self.stream = stream
        self.style = Style(stream)
        self.verb = verb
        self.stop_requested = False
        self.last: MigrationProgress | None = None
        self._shown: MigrationProgress | None = None
        self._every = 0.1 if self.style.color else 5.0
        # Off a terminal (a log), the first line comes after `_every` seconds: a short
        # migration prints its final line only.
        self._drawn = 0.0 if self.style.color else time.monotonic()

    def __call__(self, progress: MigrationProgress) -> None:
        self.last = progress
        now = time.monotonic()
        if now - self._drawn >= self._every:
            self._drawn = now
            self.draw(progress)
        if self.stop_requested:
            raise Stopped

    def line(self, p: MigrationProgress) -> str:
        if p.checkpoints_total:
            fraction = (p.checkpoints_copied + p.checkpoints_skipped) / p.checkpoints_total
        else:
            fraction = p.threads_done / p.threads_total if p.threads_total else 0.0
        filled = int(_BAR * min(fraction, 1.0))
        bar = "#" * filled + "." * (_BAR - filled)
        head = f"[{bar}] {p.threads_done:,}/{p.threads_total:,} threads  "
        if self.verb == "verified":  # verify counts what it compared
            done = p.checkpoints_copied + p.checkpoints_skipped
            return f"{head}{done:,} checkpoints verified  ETA {format_seconds(p.eta)}"
        skipped = f" (+{p.checkpoints_skipped:,} present)" if p.checkpoints_skipped else ""
        return (
            f"{head}{p.checkpoints_copied:,} checkpoints {self.verb}{skipped}  "
            f"{format_bytes(p.bytes_copied)}  {p.rate:,.0f}/s  "
            f"{format_bytes(int(p.bytes_rate))}/s  ETA {format_seconds(p.eta)}"
        )

    def draw(self, progress: MigrationProgress) -> None:
        self._shown = progress
        text = self.line(progress)
        if self.style.color:
            width = self.style.width or 100
            self.stream.write("\r" + text[: width - 1].ljust(width - 1))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def finish(self) -> None:
        if self.last is not None and self.last is not self._shown:
            self.draw(self.last)
        if self.last is not None and self.style.color:
            self.stream.write("\n")
            self.stream.flush()


@contextlib.contextmanager
def _stop_on_ctrl_c(bar: ProgressBar) -> Iterator[None]:
    """First Ctrl-C: stop after the current batch. Second: stop at once."""

    def handler(signum: int, frame: FrameType | None) -> None:
        if bar.stop_requested:
            raise KeyboardInterrupt
        bar.stop_requested = True
        bar.stream.write("\nstopping after the current batch (Ctrl-C again to stop at once)\n")

    try:
        previous: Any = signal.signal(signal.SIGINT, handler)
    except ValueError:  # not the main thread: Ctrl-C keeps its default meaning
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


def _n(count: int, noun: str) -> str:
    return f"{count:,} {noun}" + ("" if count == 1 else "s")


def _summary(report: MigrationReport, style: Style) -> str:
    verb = "would copy" if report.dry_run else "copied"
    present = report.checkpoints_skipped
    if not report.checkpoints_copied:
        text = f"nothing to copy: {_n(present, 'checkpoint')} already in the target"
        return style(text, "green")
    lines = [
        f"{verb} {_n(report.checkpoints_copied, 'checkpoint')} of "
        f"{_n(report.threads_copied, 'thread')} ({_n(report.writes_copied, 'write')}, "
        f"{_n(report.blobs_copied, 'value')}, {format_bytes(report.bytes_copied)}) "
        f"in {report.seconds:.2f} s: {report.rate:,.0f} checkpoints/s, "
        f"{report.megabytes_per_second:.1f} MB/s",
    ]
    if present:
        lines.append(f"{_n(present, 'checkpoint')} already in the target, skipped")
    return "\n".join(style(line, "green") if i == 0 else line for i, line in enumerate(lines))


def _migrate(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    style = Style(out)
    since = None
    if args.since is not None:
        try:
            since = parse_when(args.since)
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
    if args.source == args.target:
        raise ConfigError("source and target are the same URL: nothing to migrate")
    with (
        open_side(args.source) as source,
        open_side(args.target, write=not args.dry_run, missing_ok=args.dry_run) as target,
    ):
        allow_types(source, args.allow)
        allow_types(target, args.allow)
        bar = ProgressBar(err, "checked" if args.dry_run else "copied")
        try:
            with _stop_on_ctrl_c(bar):
                report = migrate(
                    source,
                    target,
                    args.thread,
                    since=since,
                    batch=args.batch,
                    dry_run=args.dry_run,
                    progress=bar,
                    workers=args.workers,
                )
        except Stopped:
            bar.finish()
            done = bar.last.checkpoints_copied if bar.last else 0
            err.write(
                f"stopped: {done:,} checkpoints copied so far; run the same command again "
                "to resume (what is in the target is skipped)\n"
            )
            return 130
        bar.finish()
        out.write(f"{source.label} -> {target.label}\n{_summary(report, style)}\n")
        status = 0
        if report.missing_threads:
            out.write(
                style(f"not in the source: {', '.join(report.missing_threads)}", "red") + "\n"
            )
            status = 1
        if args.verify:
            status = max(status, _verify(source, target, args, since, style))
    return status


def _verify(
    source: Any, target: Any, args: argparse.Namespace, since: float | None, style: Style
) -> int:
    bar = ProgressBar(sys.stderr, "verified")
    checked = verify(source, target, args.thread, since=since, progress=bar)
    bar.finish()
    out = sys.stdout
    if checked.ok:
        out.write(
            style(
                f"verify: {_n(checked.threads, 'thread')}, "
                f"{_n(checked.checkpoints, 'checkpoint')} identical in the target",
                "green",
            )
            + "\n"
        )
        return 0
    out.write(
        style(f"verify: {len(checked.mismatches)} of {checked.threads} threads differ", "red")
        + "\n"
    )
    for mismatch in checked.mismatches[:20]:
        out.write(f"  {mismatch.describe()}\n")
    if len(checked.mismatches) > 20:
        out.write(f"  ... and {len(checked.mismatches) - 20} more\n")
    return 1


def add_migrate_command(commands: Any, url_help: str) -> None:
    """Add `migrate` to the sub-command parsers."""
    p = commands.add_parser(
        "migrate",
        help="copy threads from one checkpointer to another (resumable)",
        description="Copy every namespace, checkpoint, value and pending write of the source's "
        "threads to the target, oldest first, in atomic batches. Checkpoints already in the "
        "target are skipped, so running it again adds nothing, and a migration stopped with "
        "Ctrl-C (between batches) or killed resumes where it stopped. Savers of this package "
        "and LangGraph's official SQLite/Postgres storage keep values' bytes and type tags; "
        "a py: saver goes through its public API, re-serializing values. Exit status: 0 when "
        "everything was copied (and verified), 1 on any mismatch or missing thread, 130 when "
        "stopped.",
        epilog="examples:\n"
        "  checkpointers migrate langgraph-sqlite:///old.db postgresql://me@db/app --verify\n"
        "  checkpointers migrate sqlite:///a.db redis://localhost:6379/0 --thread t1 --thread t2\n"
        "  checkpointers migrate postgresql://me@db/app sqlite:///copy.db --since 7d --dry-run\n"
        "  checkpointers migrate py:myapp.savers:make_saver sqlite:///copy.db --batch 500\n\n"
        + url_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("source", help="where to read (URL)")
    p.add_argument("target", help="where to write (URL)")
    p.add_argument(
        "--thread", action="append", default=None, metavar="ID", help="only this thread (repeat)"
    )
    p.add_argument(
        "--since",
        default=None,
        metavar="WHEN",
        help="only checkpoints created since WHEN: an ISO date/time or an age like 7d, 12h",
    )
    p.add_argument("--dry-run", action="store_true", help="read and compare, write nothing")
    add_allow_argument(p)
    p.add_argument(
        "--verify", action="store_true", help="compare a per-thread digest of both sides after"
    )
    p.add_argument(
        "--batch",
        type=int,
        default=DEFAULT_BATCH,
        metavar="N",
        help=f"checkpoints per atomic write (default {DEFAULT_BATCH})",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="batches written at once (default 8 into a saver of this package, else 1)",
    )
    p.set_defaults(run=_migrate)

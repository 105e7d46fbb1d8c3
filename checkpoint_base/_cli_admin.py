"""`checkpointers setup | prune | compact | bench | demo`."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from collections.abc import Collection
from typing import Any

from ._backend import Backend
from ._cli_format import Style, format_bytes, parse_duration, parse_seconds, redact, table
from ._cli_open import every_thread, missing_thread, open_side, saver_side
from ._errors import ConfigError
from ._migrate_side import Key, SaverSide
from ._operations import chain_to_snapshots, delta_channels
from ._plan import Plan
from ._records import CheckpointRecord, ListQuery
from ._saver import COMPACT_WAIT

__all__ = ["add_admin_commands", "compact_hint", "prune_keep"]

_FMT = argparse.RawDescriptionHelpFormatter


# -- setup -------------------------------------------------------------------------------------


def _setup(args: argparse.Namespace) -> int:
    with open_side(args.url, write=True) as side:
        side.setup()
        sys.stdout.write(f"ready: {side.label} (tables and migrations are up to date)\n")
    return 0


# -- prune -------------------------------------------------------------------------------------


def prune_keep(
    backend: Backend, thread_id: str, keep_last: int | None, newer_than: float | None
) -> Plan[tuple[int, set[Key]]]:
    """(checkpoints of the thread, the (namespace, id) to keep) for `checkpointers prune`.

    Per namespace: the `keep_last` newest checkpoints, or those created at or after
    `newer_than`, and always the newest one (a prune never empties a thread). For graphs
    with a `DeltaChannel`, every kept checkpoint whose parent goes also keeps its ancestors
    back to each delta channel's stored value, as the saver's `keep_latest` does, so each
    kept state still rebuilds.
    """
    records_read = yield from backend.scan_records(ListQuery(thread_id=thread_id))
    by_ns: dict[str, list[CheckpointRecord]] = {}
    for record in records_read:
        by_ns.setdefault(record.checkpoint_ns, []).append(record)
    keep: set[Key] = set()
    for records in by_ns.values():
        records.sort(key=lambda r: r.checkpoint_id, reverse=True)
        if keep_last is not None:
            kept = records[:keep_last]
        else:
            assert newer_than is not None
            kept = [records[0], *(r for r in records[1:] if r.created_at >= newer_than)]
        keep |= {(r.checkpoint_ns, r.checkpoint_id) for r in kept}
    for records in by_ns.values():
        for record in records:
            key = (record.checkpoint_ns, record.checkpoint_id)
            parent = (record.checkpoint_ns, record.parent_checkpoint_id or "")
            if key not in keep or parent in keep:
                continue
            channels = delta_channels(record)
            if channels:
                keep |= yield from chain_to_snapshots(backend, record, channels)
    return len(records_read), keep


def _prune_thread(backend: Backend, thread_id: str, keep: Collection[Key]) -> Plan[None]:
    yield from backend.prune(thread_id, keep)


def _prune(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    newer_than = None
    if args.older_than is not None:  # a ValueError says which forms a duration takes
        newer_than = time.time() - parse_duration(args.older_than)
    with open_side(args.url, write=not args.dry_run, create=False) as opened:
        side = saver_side(opened, "prune", "call their prune()")
        backend = side.saver.backend
        # A thread with no checkpoint (writes only) has nothing to prune.
        thread_ids = args.thread or [t.thread_id for t in every_thread(side) if t.checkpoint_count]
        results = []
        for thread_id in thread_ids:
            total, keep = side.run(prune_keep(backend, thread_id, args.keep_last, newer_than))
            if total == 0 and args.thread:
                raise missing_thread(side, thread_id)
            doomed = total - len(keep)
            if doomed and not args.dry_run:
                side.run(_prune_thread(backend, thread_id, keep))
            results.append((thread_id, total, len(keep), doomed))
        deleted = sum(r[3] for r in results)
        hint = compact_hint(side, args.url) if deleted and not args.dry_run else None
    changed = [r for r in results if r[3]]
    if changed:
        rows = [[t, str(n), str(k), str(d)] for t, n, k, d in changed]
        headers = ["THREAD", "CHECKPOINTS", "KEPT", "WOULD DELETE" if args.dry_run else "DELETED"]
        out.write(table(headers, rows, style, right=(1, 2, 3), shrink=0) + "\n")
    verb = "would delete" if args.dry_run else "deleted"
    out.write(f"{verb} {deleted:,} checkpoints in {len(changed):,} of {len(results):,} threads\n")
    if hint:
        out.write(hint + "\n")
    return 0


# -- compact -----------------------------------------------------------------------------------


def _compacts(side: SaverSide) -> bool:
    """The backend has space to give back (it overrides `Backend.compact`)."""
    return type(side.saver.backend).compact is not Backend.compact


def compact_hint(side: SaverSide, url: str) -> str | None:
    """After a delete or prune: the space it freed stays in the storage; how to give it
    back, with how much where the backend tells (None when there is nothing to say)."""
    if not _compacts(side):
        return None
    free = side.run(side.saver.backend.space()).free
    command = f"checkpointers compact {redact(url)}"
    if free is None:  # PostgreSQL: its VACUUM makes space reusable, VACUUM FULL gives it back
        return f"new writes reuse the space freed; `{command} --full` gives it back to the disk"
    if free > 0:
        return (
            f"{format_bytes(free)} of the storage is free now (new writes reuse it); "
            f"`{command}` gives it back to the disk"
        )
    return None


def _compact(args: argparse.Namespace) -> int:
    out, err = sys.stdout, sys.stderr
    with open_side(args.url, write=not args.dry_run, create=False) as opened:
        side = saver_side(opened, "compact", "run VACUUM on their database")
        backend = side.saver.backend
        if not _compacts(side):
            out.write(f"nothing to compact: {side.label} frees space as it deletes\n")
            return 0
        if args.dry_run:
            space = side.run(backend.space())
            free = "unknown" if space.free is None else format_bytes(space.free)
            out.write(f"{side.label}: {format_bytes(space.size)}, free inside it: {free}\n")
            held = side.run(backend.older_transactions(0))
            if held:
                out.write(
                    f"transactions open now: {len(held)} (the rows deleted since each began "
                    "stay until it ends; compact waits up to --wait for them)\n"
                )
                out.writelines(f"  {line}\n" for line in held)
            return 0
        waits = ""
        if backend.name == "sqlite":
            waits = " (writers wait until it is done)"
        elif args.full:
            waits = " (reads and writes of its tables wait until it is done)"
        err.write(f"compacting {side.label}{waits} ...\n")
        err.flush()
        done = side.saver.compact(full=args.full, wait=args.wait)
    before, after = done.before.size, done.after.size
    gave = ""
    if before is not None and after is not None:
        gave = f" (gave back {format_bytes(max(0, before - after))})"
    out.write(
        f"compacted {side.label}: {format_bytes(before)} -> {format_bytes(after)}{gave} "
        f"in {done.seconds:.2f} s\n"
    )
    if backend.name == "postgres" and not args.full:
        out.write(
            "PostgreSQL's VACUUM makes the space of deleted rows reusable and gives back only "
            "empty pages at the tables' end; --full gives back all of it, locking the tables "
            "(reads included) while it runs\n"
        )
    if done.held and backend.name == "postgres":
        count = len(done.held)
        err.write(
            f"warning: {count} transaction{'s' if count > 1 else ''} open before the "
            f"compaction still ran after {args.wait:g} s (--wait): the rows deleted while "
            "they were open stay until they end and compact runs again\n"
        )
        err.writelines(f"  {line}\n" for line in done.held)
    else:
        err.writelines(f"warning: {line}\n" for line in done.held)
    return 0


# -- bench and demo ----------------------------------------------------------------------------


def _bench(args: argparse.Namespace) -> int:
    try:  # imported by name: the harness is no dependency of the package
        benchmarks = importlib.import_module("benchmarks")
    except ImportError:
        raise ConfigError(
            "the benchmark harness is not installed: run `checkpointers bench` from a "
            "checkout of the repository (its benchmarks/ package)"
        ) from None
    status: int = benchmarks.main(args.args)
    return status


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args.url, sys.stdout)


def add_admin_commands(commands: Any, url_help: str) -> None:
    """Add `setup`, `prune`, `bench` and `demo` to the sub-command parsers."""
    p = commands.add_parser(
        "setup",
        help="create or migrate the storage schema",
        description="Create the tables (or keys) a checkpointer needs, or run the schema "
        "migrations it has not run yet. Safe to run again, and from two processes at once.",
        epilog="examples:\n  checkpointers setup sqlite:///checkpoints.db\n"
        "  checkpointers setup postgresql://me@localhost:5432/app\n\n" + url_help,
        formatter_class=_FMT,
    )
    p.add_argument("url", help="checkpointer URL")
    p.set_defaults(run=_setup)

    p = commands.add_parser(
        "prune",
        help="delete old checkpoints, keeping the newest per namespace",
        description="Delete old checkpoints of every thread (or of --thread ones). The newest "
        "checkpoint of each namespace is always kept, and with a DeltaChannel so are the "
        "ancestors a kept state needs to rebuild. Only for savers of this package.",
        epilog="examples:\n  checkpointers prune sqlite:///checkpoints.db --keep-last 10\n"
        "  checkpointers prune postgresql://me@db/app --older-than 30d --dry-run\n"
        "  checkpointers prune redis://localhost:6379/0 --keep-last 1 --thread t1\n\n" + url_help,
        formatter_class=_FMT,
    )
    p.add_argument("url", help="checkpointer URL")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--keep-last", type=_at_least_one, metavar="N", help="keep the N newest")
    which.add_argument(
        "--older-than", metavar="DURATION", help="delete those older than this: 90m, 12h, 30d, 2w"
    )
    p.add_argument("--thread", action="append", metavar="ID", help="only this thread (repeat)")
    p.add_argument("--dry-run", action="store_true", help="say what would go, delete nothing")
    p.set_defaults(run=_prune)

    p = commands.add_parser(
        "compact",
        help="give back to the disk the space deleted checkpoints left",
        description="Deleting or pruning checkpoints frees space inside the storage, which "
        "new writes reuse; the storage does not shrink by itself. `compact` gives that space "
        "back. SQLite: rewrites the database file (VACUUM), which needs free disk space for a "
        "copy of the live data and holds the write lock while it runs: other writers wait, "
        "up to their busy timeout. PostgreSQL: VACUUM on the saver's tables (space reusable, "
        "empty pages at their end given back); --full rewrites them and gives back all of "
        "it, locking them, reads included, while it runs. Memory and Redis free space as "
        "they delete: nothing to do.",
        epilog="examples:\n  checkpointers compact sqlite:///checkpoints.db\n"
        "  checkpointers compact sqlite:///checkpoints.db --dry-run\n"
        "  checkpointers compact postgresql://me@db/app --full\n\n" + url_help,
        formatter_class=_FMT,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("--full", action="store_true", help="PostgreSQL: VACUUM FULL (locks the tables)")
    p.add_argument(
        "--wait",
        type=_seconds,
        default=COMPACT_WAIT,
        metavar="TIME",
        help="PostgreSQL: how long to wait first for the transactions open at the start to "
        "end, as they keep the rows deleted before them (seconds, or 90s, 5m; default "
        f"{COMPACT_WAIT:g})",
    )
    p.add_argument(
        "--dry-run", action="store_true", help="say how much space there is, change nothing"
    )
    p.set_defaults(run=_compact)

    p = commands.add_parser(
        "bench",
        help="run the benchmark harness (options are passed to it)",
        description="Run the benchmark harness of the repository (benchmarks/); every "
        "argument after `bench` goes to it. `checkpointers bench --help` shows its own help "
        "when it is installed.",
        epilog="example:\n  checkpointers bench --backend sqlite --backend postgres",
        formatter_class=_FMT,
        add_help=False,
    )
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments of the harness")
    p.set_defaults(run=_bench)

    try:
        from ._demo import DEFAULT_DEMO_URL
    except ImportError:  # LangGraph is missing: `demo` says so when it runs
        DEFAULT_DEMO_URL = "sqlite:///checkpointers-demo.db"

    p = commands.add_parser(
        "demo",
        help="run a small agent graph that is interrupted and resumed from storage",
        description="Run a deterministic agent graph (no LLM) with persistence: it stops for "
        "a human approval, resumes from storage, and prints the thread's history.",
        epilog="example:\n  checkpointers demo --url sqlite:///demo.db",
        formatter_class=_FMT,
    )
    p.add_argument(
        "--url", default=DEFAULT_DEMO_URL, help=f"saver URL (default {DEFAULT_DEMO_URL})"
    )
    p.set_defaults(run=_demo)


def _seconds(text: str) -> float:
    try:
        value = parse_seconds(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if not value >= 0:  # also NaN
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {text!r}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value

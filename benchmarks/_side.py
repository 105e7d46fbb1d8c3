"""What the side benchmarks (`retention_bench`, `sweep_bench`, `lists_bench`) share: their
command line, their targets on the durable benchmark servers, where their table goes, and
PostgreSQL table maintenance."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, Literal

from checkpoint_base.testing.targets import Target, all_targets

from ._env import durable_servers
from ._graph import PutCall, Recording
from ._handles import SaverHandle
from ._runner import timed
from ._subjects import Subject

__all__ = [
    "DEFAULT_TARGETS",
    "bytes_cells",
    "durable_targets",
    "emit",
    "main_of",
    "maintain_postgres",
    "open_ours",
    "parse",
    "replay",
]

DEFAULT_TARGETS = ("sqlite", "postgres-pool", "redis")


def parse(
    prog: str, argv: Sequence[str] | None, *, flavors: bool = False, **numbers: int
) -> argparse.Namespace:
    """`--target NAME...`, `--out PATH`, and an integer option `--name` per keyword (its
    default the value); with `flavors`, `--flavor sync async` too (both by default)."""
    parser = argparse.ArgumentParser(prog=prog)
    parser.add_argument("--target", nargs="+", default=list(DEFAULT_TARGETS))
    if flavors:
        parser.add_argument(
            "--flavor", nargs="+", choices=("sync", "async"), default=["sync", "async"]
        )
    for name, default in numbers.items():
        parser.add_argument(f"--{name}", type=int, default=default)
    parser.add_argument("--out", help="also write the table to this file")
    return parser.parse_args(argv)


@contextlib.contextmanager
def durable_targets(names: Sequence[str]) -> Iterator[list[Target]]:
    """The named targets, opening savers on the durable benchmark servers while inside."""
    registry = {t.name: t for t in all_targets()}
    unknown = [n for n in names if n not in registry]
    if unknown:
        raise SystemExit(f"unknown target(s) {unknown}; known: {sorted(registry)}")
    with durable_servers([registry[n] for n in names]):
        started = {t.name: t for t in all_targets()}  # their openers see the servers
        yield [started[n] for n in names]


def emit(table: str, out: str | None) -> int:
    """Print the table, and write it to `out` too when given; the exit status."""
    sys.stdout.write(table)
    if out:
        with open(out, "w", encoding="utf-8") as f:
            f.write(table)
    return 0


async def open_ours(target: Target, stack: contextlib.AsyncExitStack) -> SaverHandle:
    """A sync saver of this package for `target`, closed with `stack`."""
    handle = await Subject(target, "sync", "ours").open(stack)
    assert isinstance(handle, SaverHandle)
    return handle


async def replay(handle: SaverHandle, thread_id: str, rec: Recording) -> list[float]:
    """Write the recorded thread; the seconds of each put, timed as the harness times one
    (`timed`: a sync saver's put is the body of a coroutine made outside the clock)."""
    seconds = []
    for call in rec.calls:
        if isinstance(call, PutCall):
            elapsed, _ = await timed(handle.put(handle.prepare_put(thread_id, call)))
            seconds.append(elapsed)
        else:
            await handle.put_writes(handle.prepare_writes(thread_id, call))
    return seconds


def bytes_cells(size: int | None, base: int | None) -> str:
    """Two table cells: `size` in MiB ("n/a" when unknown), and its ratio to `base`."""
    mib = "n/a" if size is None else f"{size / 2**20:.2f} MiB"
    ratio = "" if not (size and base) else f"{size / base:.3f}x"
    return f"{mib} | {ratio}"


def main_of(
    prog: str,
    argv: Sequence[str] | None,
    run: Callable[[argparse.Namespace], Awaitable[str]],
    *,
    flavors: bool = False,
    **numbers: int,
) -> int:
    """A side benchmark's `main`: parse its options (`parse`), run it, emit its table."""
    args = parse(prog, argv, flavors=flavors, **numbers)
    return emit(asyncio.run(run(args)), args.out)


_MAINTAIN = {"ANALYZE": "ANALYZE {}", "VACUUM FULL": "VACUUM FULL {}"}


def maintain_postgres(saver: Any, command: Literal["ANALYZE", "VACUUM FULL"]) -> None:
    """Run `command` on each of a PostgreSQL saver's tables, on a connection of its own
    (outside the pool's transactions: VACUUM refuses to run in one)."""
    import psycopg
    from psycopg import sql

    pool = saver.conn
    kwargs = {k: v for k, v in (pool.kwargs or {}).items() if k in ("password", "options")}
    with psycopg.connect(pool.conninfo, autocommit=True, **kwargs) as conn:
        for table in ("checkpoints", "blobs", "writes"):
            name = sql.Identifier(saver.backend.schema, table)
            conn.execute(sql.SQL(_MAINTAIN[command]).format(name))

"""A separate process that writes to a SQLite checkpoint file (for the multi-process tests).

    python -m tests.sqlite._worker puts PATH THREAD COUNT FLAVOR GO_FILE
    python -m tests.sqlite._worker loop PATH THREAD CHANNELS FLAVOR [DIE_AT COUNT STEP]

`puts` waits for GO_FILE, then puts COUNT chained checkpoints (flavor `sync` or `async`).
`loop` puts checkpoints of CHANNELS big channels until killed (FLAVOR `sync`: SqliteSaver,
`async`: AsyncSqliteSaver), printing `begin N` / `end N` around each put. With DIE_AT, it SIGKILLs itself in the put of STEP, at the COUNT-th time
SQLite traces a statement starting with DIE_AT (a statement is traced when it starts and
again as each trigger of each row runs): inside the put, at a point the test chooses.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
import sys
import time
from datetime import datetime, timezone
from typing import Any

import aiosqlite
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import Checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_sqlite import AsyncSqliteSaver, SqliteSaver

CHANNELS = 4
BIG = 64 * 1024


def channel_size(channels: int) -> int:
    """Characters per channel in `loop`: big for a few channels, small for many."""
    return BIG if channels <= CHANNELS else 64


def value(step: int, channel: int, size: int) -> str:
    """The deterministic value of a channel at a step."""
    unit = f"{step}:{channel};"
    return (unit * (size // len(unit) + 1))[:size]


def make(step: int, size: int, channels: int = CHANNELS) -> tuple[Checkpoint, dict[str, Any]]:
    """Checkpoint `step` (every channel changes) and its new versions."""
    versions = {f"c{j}": f"{step + 1:032}.{j:016}" for j in range(channels)}
    checkpoint = Checkpoint(
        v=1,
        id=str(uuid6(clock_seq=step)),
        ts=datetime.now(timezone.utc).isoformat(),
        channel_values={f"c{j}": value(step, j, size) for j in range(channels)},
        channel_versions=dict(versions),
        versions_seen={},
        updated_channels=None,
    )
    return checkpoint, versions


def _config(thread_id: str, parent: str | None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ""}
    if parent is not None:
        configurable["checkpoint_id"] = parent
    return {"configurable": configurable}


def _wait_for(go_file: str) -> None:
    deadline = time.monotonic() + 60
    while not os.path.exists(go_file):
        if time.monotonic() > deadline:
            raise SystemExit("start signal never came")
        time.sleep(0.005)


def puts_sync(path: str, thread_id: str, count: int, go_file: str) -> None:
    with SqliteSaver.from_conn_string(path) as saver:
        _wait_for(go_file)
        parent = None
        for step in range(count):
            checkpoint, versions = make(step, 256)
            stored = saver.put(_config(thread_id, parent), checkpoint, {"step": step}, versions)
            parent = stored["configurable"]["checkpoint_id"]


async def puts_async(path: str, thread_id: str, count: int, go_file: str) -> None:
    async with AsyncSqliteSaver.from_conn_string(path) as saver:
        _wait_for(go_file)
        parent = None
        for step in range(count):
            checkpoint, versions = make(step, 256)
            stored = await saver.aput(
                _config(thread_id, parent), checkpoint, {"step": step}, versions
            )
            parent = stored["configurable"]["checkpoint_id"]


class _Death:
    """SIGKILLs this process at the `count`-th traced statement starting with `prefix`,
    during the put of `step`."""

    def __init__(self, prefix: str | None, count: int, step: int) -> None:
        self.prefix, self.count, self.step = prefix, count, step
        self.current = -1
        self.seen = 0

    def trace(self, statement: str) -> None:
        if self.current == self.step and statement.startswith(self.prefix or "\x00"):
            self.seen += 1
            if self.seen == self.count:
                os.kill(os.getpid(), signal.SIGKILL)

    def passed(self, step: int) -> None:
        if self.prefix is not None and step >= self.step:
            raise SystemExit(f"the put of step {step} never ran {self.prefix!r}")


def _next(latest: Any) -> tuple[int, str | None]:
    if latest is None:
        return 0, None
    return latest.metadata["step"] + 1, latest.config["configurable"]["checkpoint_id"]


def loop(path: str, thread_id: str, channels: int, death: _Death) -> None:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    if death.prefix is not None:  # tracing expands every statement's values into text: costly
        conn.set_trace_callback(death.trace)
    with SqliteSaver(conn) as saver:
        step, parent = _next(saver.get_tuple(_config(thread_id, None)))
        while True:
            checkpoint, versions = make(step, channel_size(channels), channels)
            print(f"begin {step}", flush=True)
            death.current = step
            stored = saver.put(_config(thread_id, parent), checkpoint, {"step": step}, versions)
            print(f"end {step}", flush=True)
            death.passed(step)
            parent = stored["configurable"]["checkpoint_id"]
            step += 1


async def aloop(path: str, thread_id: str, channels: int, death: _Death) -> None:
    async with aiosqlite.connect(path, isolation_level=None) as conn:
        if death.prefix is not None:
            await conn.set_trace_callback(death.trace)
        saver = AsyncSqliteSaver(conn)
        step, parent = _next(await saver.aget_tuple(_config(thread_id, None)))
        while True:
            checkpoint, versions = make(step, channel_size(channels), channels)
            print(f"begin {step}", flush=True)
            death.current = step
            config = _config(thread_id, parent)
            stored = await saver.aput(config, checkpoint, {"step": step}, versions)
            print(f"end {step}", flush=True)
            death.passed(step)
            parent = stored["configurable"]["checkpoint_id"]
            step += 1


def main(argv: list[str]) -> None:
    mode, path, thread_id, *rest = argv
    if mode == "puts":
        count, flavor, go_file = int(rest[0]), rest[1], rest[2]
        if flavor == "sync":
            puts_sync(path, thread_id, count, go_file)
        else:
            asyncio.run(puts_async(path, thread_id, count, go_file))
    elif mode == "loop":
        channels, flavor = int(rest[0]), rest[1]
        death = (
            _Death(rest[2], int(rest[3]), int(rest[4])) if len(rest) > 2 else _Death(None, 0, -1)
        )
        if flavor == "sync":
            loop(path, thread_id, channels, death)
        else:
            asyncio.run(aloop(path, thread_id, channels, death))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

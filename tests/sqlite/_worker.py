"""A separate process that writes to a SQLite checkpoint file (for the multi-process tests).

    python -m tests.sqlite._worker puts PATH THREAD COUNT FLAVOR GO_FILE
    python -m tests.sqlite._worker loop PATH THREAD CHANNELS [DIE_AT COUNT STEP]

`puts` waits for GO_FILE, then puts COUNT chained checkpoints (flavor `sync` or `async`).
`loop` puts checkpoints of CHANNELS big channels until killed, printing `begin N` / `end N`
around each put. With DIE_AT, it SIGKILLs itself in the put of STEP, at the COUNT-th time
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


def loop(
    path: str, thread_id: str, channels: int, die_at: str | None, die_count: int, die_step: int
) -> None:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    current = [-1]
    seen = [0]

    def trace(statement: str) -> None:
        if die_at is not None and current[0] == die_step and statement.startswith(die_at):
            seen[0] += 1
            if seen[0] == die_count:
                os.kill(os.getpid(), signal.SIGKILL)

    if die_at is not None:  # tracing expands every statement's values into text: costly
        conn.set_trace_callback(trace)
    with SqliteSaver(conn) as saver:
        latest = saver.get_tuple(_config(thread_id, None))
        step = latest.metadata["step"] + 1 if latest else 0
        parent = latest.config["configurable"]["checkpoint_id"] if latest else None
        while True:
            checkpoint, versions = make(step, channel_size(channels), channels)
            print(f"begin {step}", flush=True)
            current[0] = step
            stored = saver.put(_config(thread_id, parent), checkpoint, {"step": step}, versions)
            print(f"end {step}", flush=True)
            if die_at is not None and step >= die_step:
                raise SystemExit(f"the put of step {step} never ran {die_at!r}")
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
        channels = int(rest[0])
        if len(rest) > 1:
            loop(path, thread_id, channels, rest[1], int(rest[2]), int(rest[3]))
        else:
            loop(path, thread_id, channels, None, 0, -1)
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main(sys.argv[1:])

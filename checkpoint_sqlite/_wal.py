"""WAL checkpoints on a thread of their own, so that no caller's write waits for one.

SQLite copies the WAL back into the database file (a checkpoint) on the connection whose
commit takes the WAL past `wal_autocheckpoint` pages (1,000 by default), inside that
commit. In WAL mode with `synchronous=NORMAL` a commit does not sync, so the checkpoint pays
for every sync skipped since the last one: on the 2-core test machine the agent graph on a
file database took 15-40 ms for one turn in fifteen instead of ~5.5 ms, and those turns made
a quarter of the run's time (200 turns of 10 threads: mean 7.1 ms per turn, median 5.4).

So the saver's own connections only checkpoint as a safety valve, at a WAL four times that
size (`VALVE_PAGES`), and a daemon thread does the work: writers tell it every
`NOTIFY_EVERY` writes, it looks at the WAL's size and runs a PASSIVE checkpoint (which never
waits for a lock, so it never holds up a writer) when `WAL_BYTES` were added since its last
one, and once more when the writers pause if frames were written meanwhile. Once a
checkpoint has copied every frame, the next writer starts the WAL over from its
start, as after an automatic checkpoint (the WAL header's checkpoint sequence number
changes), and truncates the file (`journal_size_limit=0`), so the file's size then tells
how much was written since.

Under writes with no pause at all the WAL never gets wholly copied between two of them, so
it grows to the valve; the writer that reaches it then checkpoints what the thread has not
copied yet (a fraction) and the WAL starts over. Having the thread force that with a
RESTART checkpoint (which holds writers off meanwhile) measured no better.

Measured with the benchmarks' agent graph (`--backend sqlite --workload e2e --flavor sync`,
2 interleaved runs, turns/s against the official saver's, before -> after): 20-turn threads
1.19x -> 1.35-1.43x (`durability="sync"`), 1.19-1.22x -> 1.34-1.38x (`"async"`), 1.10x ->
1.31x (`"exit"`); 3-turn threads 1.08-1.12x -> 1.20-1.25x (`"sync"`). Only with
`synchronous="normal"`: with `"full"` a commit syncs the WAL, SQLite's own checkpoint is
cheap, and the thread made the graph slower (0.86-0.91x instead of 0.99-1.10x), so the
saver leaves checkpoints to SQLite there.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
from collections.abc import Callable

__all__ = [
    "IDLE_SECONDS",
    "NOTIFY_EVERY",
    "VALVE_PAGES",
    "VALVE_PRAGMAS",
    "WAL_BYTES",
    "WalCheckpointer",
]

logger = logging.getLogger("checkpoint_sqlite")

WAL_BYTES = 4 * 1024 * 1024
"""The WAL size that starts a checkpoint: about SQLite's 1,000 pages of 4 KiB."""

VALVE_PAGES = 4_000
"""`wal_autocheckpoint` of the saver's connections: they checkpoint themselves only when the
thread has not kept the WAL under about 16 MiB (4 KiB pages)."""

VALVE_PRAGMAS = (
    f"PRAGMA wal_autocheckpoint={VALVE_PAGES}",  # a constant of ours, no user input
    "PRAGMA journal_size_limit=0",
)
"""Settings of each connection of the saver that writes (they take no lock)."""

NOTIFY_EVERY = 16
"""Writes between two looks at the WAL's size."""

IDLE_SECONDS = 0.05
"""A pause of the writers this long after a checkpoint that left frames behind (written
while it ran) lets the thread copy them, so that the next writer starts the WAL over."""


class WalCheckpointer:
    """Checkpoints one database file's WAL on a daemon thread, when writers say they wrote.

    `wrote()` costs a counter increment, and every `NOTIFY_EVERY` calls an `Event.set`; the
    thread starts at the first of those. `close()` stops it and waits for a checkpoint in
    progress. After a fork the child starts its own thread when it needs one.
    """

    def __init__(self, path: str, connect: Callable[[], sqlite3.Connection]) -> None:
        self._wal_path = path + "-wal"
        self._connect = connect
        self._writes = 0
        self._wake = threading.Event()
        self._stop = False
        self._thread: threading.Thread | None = None
        self._pid = os.getpid()
        self.checkpoints = 0
        """Checkpoints the thread ran (tests and curiosity)."""
        self.finishing = False
        """The last checkpoint left frames behind: one more runs after `IDLE_SECONDS` with
        no wake."""

    def wrote(self) -> None:
        """Count one write; every `NOTIFY_EVERY` writes wake the thread (start it if needed)."""
        self._writes += 1
        if self._writes % NOTIFY_EVERY:
            return
        if self._thread is None or self._pid != os.getpid():
            self._start()
        self._wake.set()

    def _start(self) -> None:
        if self._stop:
            return
        self._pid = os.getpid()
        self._wake = threading.Event()
        thread = threading.Thread(target=self._loop, name="checkpointers-sqlite-wal", daemon=True)
        self._thread = thread
        thread.start()

    def _wal_state(self) -> tuple[int, int]:
        """The WAL's checkpoint sequence number (its header's bytes 12-15, which SQLite
        increments each time the WAL starts over) and its size; (-1, 0) if there is none."""
        try:
            with open(self._wal_path, "rb") as f:
                head = f.read(16)
                size = os.fstat(f.fileno()).st_size
        except OSError:
            return -1, 0
        return (int.from_bytes(head[12:16], "big") if len(head) == 16 else -1), size

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        wake = self._wake
        done: tuple[int, int] = (-1, 0)  # the WAL's state when the last checkpoint began
        try:
            while True:
                woke = wake.wait(IDLE_SECONDS if self.finishing else None)
                wake.clear()
                if self._stop:
                    return
                state = self._wal_state()
                if woke:
                    seq, size = state
                    copied = done[1] if seq == done[0] else 0  # started over since: all new
                    if size - copied < WAL_BYTES:
                        continue
                elif state == done:  # idle, and nothing was written since the last one
                    self.finishing = False
                    continue
                try:
                    if conn is None:
                        conn = self._connect()
                    ((_, frames, copied_frames),) = conn.execute(
                        "PRAGMA wal_checkpoint(PASSIVE)"
                    ).fetchall()
                except sqlite3.Error as exc:  # busy, or the file is gone: try at the next wake
                    logger.debug("background WAL checkpoint failed: %r", exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
                    continue
                done = state
                # Frames left behind (written meanwhile, or held by a reader) keep the WAL
                # from starting over: copy them once the writers pause.
                self.finishing = woke and (frames != copied_frames or self._wal_state() != state)
                self.checkpoints += 1
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def close(self) -> None:
        """Stop the thread; wait for a checkpoint in progress to finish."""
        self._stop = True
        thread = self._thread
        if thread is not None and self._pid == os.getpid():
            self._wake.set()
            thread.join()
        self._thread = None

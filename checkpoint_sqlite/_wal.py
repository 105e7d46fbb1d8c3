"""WAL checkpoints on a thread of their own, so that no caller's write waits for one.

SQLite copies the WAL back into the database file (a checkpoint) on the connection whose
commit takes the WAL past `wal_autocheckpoint` pages (1,000 by default), inside that
commit. In WAL mode with `synchronous=NORMAL` a commit does not sync, so the checkpoint pays
for every sync skipped since the last one: on the 2-core test machine the agent graph on a
file database took 15-40 ms for one turn in fifteen instead of ~5.5 ms, and those turns made
a quarter of the run's time (200 turns of 10 threads: mean 7.1 ms per turn, median 5.4).

So the saver's own connections only checkpoint as a safety valve, at a WAL four times that
size (`VALVE_PAGES`), and a daemon thread does the work: writers tell it every
`NOTIFY_EVERY` writes, it reads how many frames the WAL gained since its last checkpoint
(from the WAL file's headers) and runs a PASSIVE checkpoint (which never waits for a lock,
so it never holds up a writer) when that reaches `WAL_BYTES`, and once more when the
writers pause if frames were written meanwhile. Once a checkpoint has copied every frame,
the next writer starts the WAL over from its start, as after an automatic checkpoint.

Under writes with no pause at all the WAL never gets wholly copied between two of them, so
it grows to the valve; the writer that reaches it then checkpoints what the thread has not
copied yet (a fraction) and the WAL starts over. Having the thread force that with a
RESTART checkpoint (which holds writers off meanwhile) measured no better.

Continuous writes with no pause pay for it a little: the benchmarks' put loop (100-step
thread, sqlite3) took 222-228 instead of 212-217 us per put (medians; 99th percentile
510-560 instead of 990-1,100 us), the checkpoints running beside the writer, not in it.

Measured with the benchmarks' agent graph (`--backend sqlite --workload e2e --flavor sync`,
2 interleaved runs, turns/s against the official saver's, before -> after): 20-turn threads
1.20-1.23x -> 1.48-1.54x (`durability="sync"`), 1.22-1.24x -> 1.54-1.55x (`"async"`),
1.10-1.17x -> 1.30-1.34x (`"exit"`); 3-turn threads 1.13-1.22x -> 1.29x (`"sync"`), with
4 KB messages 1.09-1.13x -> 1.57-1.59x. The async flavor (which checkpointed on a pooled
connection every 256 writes before) measured the same within noise. Only with
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
    "LIMIT_PRAGMAS",
    "NOTIFY_EVERY",
    "VALVE_PAGES",
    "VALVE_PRAGMAS",
    "WAL_BYTES",
    "WAL_LIMIT_BYTES",
    "WalCheckpointer",
    "for_saver",
]

logger = logging.getLogger("checkpoint_sqlite")

WAL_BYTES = 4 * 1024 * 1024
"""The WAL size that starts a checkpoint: about SQLite's 1,000 pages of 4 KiB."""

VALVE_PAGES = 4_000
"""`wal_autocheckpoint` of the saver's connections: they checkpoint themselves only when the
thread has not kept the WAL under about 16 MiB (4 KiB pages)."""

WAL_LIMIT_BYTES = 64 * 1024 * 1024
"""`journal_size_limit` of the saver's connections: when the WAL starts over past this size
(after one large transaction: a big value, a copy of a long thread, a migration's), SQLite
cuts the file back to it. Without it the file kept its largest size until every connection
closed: a put of a 100 MB value left a 100 MB WAL beside the database for good."""

LIMIT_PRAGMAS = (f"PRAGMA journal_size_limit={WAL_LIMIT_BYTES}",)  # a constant: no user input
"""Settings of every connection of the saver, whatever its `synchronous`."""

VALVE_PRAGMAS = (f"PRAGMA wal_autocheckpoint={VALVE_PAGES}", *LIMIT_PRAGMAS)
"""Settings of each connection of the saver that writes (they take no lock)."""

NOTIFY_EVERY = 16
"""Writes between two looks at the WAL's size."""

_WAL_MAGIC = (b"\x37\x7f\x06\x82", b"\x37\x7f\x06\x83")

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
        self._thread_pid = 0  # the process the thread runs in
        self._lock = threading.Lock()
        self._lock_pid = os.getpid()
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
        if self._thread_pid != os.getpid():
            self._start()
        self._wake.set()

    def _start(self) -> None:
        pid = os.getpid()
        if self._lock_pid != pid:  # forked: a thread not copied may have held the lock
            self._lock, self._lock_pid = threading.Lock(), pid
        with self._lock:  # two writers at once start one thread
            if self._stop or self._thread_pid == pid:
                return
            self._wake = threading.Event()
            thread = threading.Thread(
                target=self._loop, name="checkpointers-sqlite-wal", daemon=True
            )
            thread.start()
            self._thread, self._thread_pid = thread, pid

    def _position(self) -> tuple[bytes, int, int] | None:
        """Where the WAL is: (its salts, frames written since it last started over, page
        size); None when there is no WAL.

        Read from the `-wal` file as SQLite's file format defines it (sqlite.org/
        fileformat2.html): a 32-byte header with the page size and two salts that change
        each time the WAL starts over, then frames of a 24-byte header (the salts again at
        byte 8) and a page. The frames of the current run are the prefix whose salts match,
        found by bisection. Never the `-shm` file: closing a descriptor of a file drops
        every POSIX lock the process holds on it, SQLite's included (a worker process died
        of SIGBUS when this read the wal-index there).
        """
        try:
            with open(self._wal_path, "rb") as f:
                head = f.read(32)
                if len(head) < 32 or head[:4] not in _WAL_MAGIC:
                    return None
                page = int.from_bytes(head[8:12], "big")
                salts = head[16:24]
                frame = 24 + page
                fd = f.fileno()
                lo, hi = 0, (os.fstat(fd).st_size - 32) // frame
                while lo < hi:  # frames [0, lo) are of this run
                    mid = (lo + hi) // 2
                    if os.pread(fd, 8, 32 + mid * frame + 8) == salts:
                        lo = mid + 1
                    else:
                        hi = mid
        except OSError:
            return None
        return salts, lo, page

    def _loop(self) -> None:
        conn: sqlite3.Connection | None = None
        wake = self._wake
        done: tuple[bytes, int] = (b"", 0)  # the WAL's salts and frames at the last checkpoint
        try:
            while True:
                woke = wake.wait(IDLE_SECONDS if self.finishing else None)
                wake.clear()
                if self._stop:
                    return
                position = self._position()
                if position is None:
                    self.finishing = False
                    continue
                salts, frames, page = position
                new = frames - done[1] if salts == done[0] else frames  # started over: all new
                if new * page < (WAL_BYTES if woke else 1):
                    self.finishing = self.finishing and woke
                    continue
                try:
                    if conn is None:
                        conn = self._connect()
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error as exc:  # busy, or the file is gone: try at the next wake
                    logger.debug("background WAL checkpoint failed: %r", exc)
                    if conn is not None:
                        with contextlib.suppress(sqlite3.Error):
                            conn.close()
                        conn = None
                    continue
                done = (salts, frames)
                # Frames written meanwhile keep the WAL from starting over: copy them once
                # the writers pause.
                after = self._position()
                self.finishing = woke and after is not None and after[:2] != done
                self.checkpoints += 1
        finally:
            if conn is not None:
                with contextlib.suppress(sqlite3.Error):
                    conn.close()

    def close(self) -> None:
        """Stop the thread; wait for a checkpoint in progress to finish."""
        self._stop = True
        if self._lock_pid != os.getpid():
            return  # forked: no thread of this process
        with self._lock:  # a `_start` under way has finished, or will see `_stop`
            thread, started_here = self._thread, self._thread_pid == os.getpid()
        if thread is not None and started_here:
            self._wake.set()
            thread.join()


def for_saver(path: str, synchronous: str) -> tuple[WalCheckpointer | None, tuple[str, ...]]:
    """The checkpointer of a saver's pool on `path`, and the settings of its connections.

    With "full" a commit syncs the WAL, so SQLite's own checkpoint is cheap, and the
    thread's were in the way: the agent graph took 0.86-0.91x the official saver's turns/s
    with them, 0.99-1.10x without (3 interleaved runs of the sync flavor). There: none, and
    SQLite's settings.
    """
    if synchronous != "normal":
        return None, LIMIT_PRAGMAS

    def connect() -> sqlite3.Connection:
        return sqlite3.connect(path, timeout=0, isolation_level=None, check_same_thread=False)

    return WalCheckpointer(path, connect), VALVE_PRAGMAS

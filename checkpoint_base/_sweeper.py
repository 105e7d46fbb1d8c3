"""A time to live for threads on backends that do not expire data themselves.

`CheckpointSaver.sweep_idle_threads(idle)` (and `connect(url, ttl=...)` on SQLite, PostgreSQL
and memory) runs `delete_idle_threads(idle)` in the background, at once and then every
`every`, until the saver closes; with the `keep_latest` strategy, `prune_idle_threads(idle)`,
which keeps each idle thread's latest state (on Redis too). Every process that opens a saver
with a time to live runs a sweeper, and each sweep is a listing of every thread: the sweepers
of one storage take turns through a lease kept in it (`Backend.claim`, named by the strategy
and the time to live, held for `every`), so that the storage is swept about once per `every`
however many processes (or short-lived savers) there are. A saver with a sync executor
sweeps from a daemon thread of its own (`checkpointers-ttl`); an async-only saver from a task
on its event loop, so the sweep never blocks the loop. A sweep that fails (the database is
down, a lock timed out) is logged and tried again at the next interval; the graphs using the
saver never see it.

Redis savers expire a thread's keys by themselves (`ttl=`); `connect` passes `ttl` to them
and starts no sweeper, unless the strategy is `keep_latest`, which key expiry cannot do.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import logging
import threading
import time
from typing import TYPE_CHECKING

from ._errors import ConfigError, StorageFullError, duration_seconds

if TYPE_CHECKING:
    from ._saver import CheckpointSaver

__all__ = ["STRATEGIES", "Sweeper", "default_every"]

logger = logging.getLogger("checkpoint_base")

STRATEGIES = ("delete", "keep_latest")
"""What a sweep does to an idle thread: delete it whole, or prune it to its latest state."""

LONGEST_DEFAULT_EVERY = 3600.0
"""The default interval is a tenth of the time to live, at most an hour, at least a second."""

_STOP_WAIT = 10.0
"""How long `stop` waits for a sweep in progress to notice (it stops before its next step)."""


def default_every(idle: float) -> float:
    """How often to sweep for a time to live of `idle` seconds when not told."""
    return min(LONGEST_DEFAULT_EVERY, max(1.0, idle / 10))


def _spelled(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{seconds:g}s"


class Sweeper:
    """Deletes (or, with `"keep_latest"`, prunes) the threads idle for longer than `idle`
    seconds, every `every` seconds.

    Returned by `CheckpointSaver.sweep_idle_threads`; the saver stops it when it closes.

    Attributes:
        idle: The time to live, in seconds.
        every: Seconds from the end of one sweep to the start of the next.
        sweeps: Sweeps finished, successful or not.
        skipped: Turns at which it did not sweep because another saver of the same storage
            (in this process or another) had swept less than `every` before (see `lease`).
        strategy: `"delete"` or `"keep_latest"` (see `CheckpointSaver.sweep_idle_threads`).
        deleted: Threads deleted by all of them (with `"keep_latest"`: pruned, or deleted when
            they held writes only).
        last_error: The exception of the last sweep if it failed, else None.
        last_sweep: When the last sweep finished (`time.time()`), or None.
    """

    def __init__(
        self,
        idle: datetime.timedelta | float,
        every: datetime.timedelta | float | None,
        strategy: str = "delete",
    ):
        if strategy not in STRATEGIES:
            raise ConfigError(
                f"unknown time-to-live strategy {strategy!r}: use 'delete' (idle threads go "
                "whole) or 'keep_latest' (they keep their latest state, their history goes)"
            )
        self.strategy = strategy
        self.idle = duration_seconds(idle, "idle (the time to live)", "timedelta(days=30)")
        self.every = (
            default_every(self.idle)
            if every is None
            else duration_seconds(every, "every", "timedelta(hours=1)")
        )
        self.sweeps = 0
        self.skipped = 0
        self._warned_lease = False
        self.deleted = 0
        self.last_error: BaseException | None = None
        self.last_sweep: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._done = threading.Event()

    def __repr__(self) -> str:
        state = "stopped" if self.stopped else "running"
        return (
            f"<Sweeper idle={_spelled(self.idle)} every={_spelled(self.every)} {state}, "
            f"{self.sweeps} sweeps, {self.skipped} left to another saver, "
            f"{self.deleted} threads {self._done_verb}>"
        )

    @property
    def lease(self) -> str:
        """The storage lease a sweep takes first (`Backend.claim`): sweepers of one storage
        with the same strategy and time to live, in any process, take turns by it."""
        return f"sweep {self.strategy} {self.idle!r}"

    @property
    def _done_verb(self) -> str:
        return "pruned" if self.strategy == "keep_latest" else "deleted"

    @property
    def _method(self) -> str:
        """The saver's method a sweep calls (its async twin has an `a` in front)."""
        return "prune_idle_threads" if self.strategy == "keep_latest" else "delete_idle_threads"

    @property
    def stopped(self) -> bool:
        """True once it stopped: by `stop`, because its saver closed, or, for a thread
        sweeper, in a process forked from the one running it (threads do not survive a
        fork: call `sweep_idle_threads` again in the child to sweep from there)."""
        thread = self._thread
        return self._done.is_set() or (thread is not None and not thread.is_alive())

    # -- starting --------------------------------------------------------------------------

    def start_thread(self, saver: CheckpointSaver) -> None:
        """Sweep from a daemon thread, through the saver's sync methods."""
        self._thread = threading.Thread(
            target=self._run_thread, args=(saver,), name="checkpointers-ttl", daemon=True
        )
        self._thread.start()

    def start_task(self, saver: CheckpointSaver, loop: asyncio.AbstractEventLoop) -> None:
        """Sweep from a task on `loop` (running, the caller's), through the async methods."""
        self._loop = loop
        self._task = loop.create_task(self._run_task(saver), name="checkpointers-ttl")
        # Not a `finally` in the task: a task cancelled before it first runs runs none of it.
        self._task.add_done_callback(lambda _: self._done.set())

    # -- the sweeps --------------------------------------------------------------------------

    def _record(self, saver: CheckpointSaver, outcome: list[str] | Exception | None) -> bool:
        """Count a sweep (its deleted ids, or its error, logged) or a turn left to another
        process (None); False when the sweeper should end instead: it was stopped, or the
        saver closed, during that sweep."""
        if isinstance(outcome, Exception) and (self._stop.is_set() or saver.closed):
            return False
        if outcome is None:
            self.skipped += 1
            logger.debug(
                "not sweeping threads idle for over %s: another saver of the storage swept "
                "less than %s ago",
                _spelled(self.idle),
                _spelled(self.every),
            )
            return True
        self.sweeps += 1
        self.last_sweep = time.time()
        if isinstance(outcome, Exception):
            self.last_error = outcome
            logger.warning(
                "%s threads idle for over %s failed, trying again in %s: %s",
                "pruning" if self.strategy == "keep_latest" else "deleting",
                _spelled(self.idle),
                _spelled(self.every),
                outcome,
            )
            return True
        self.last_error = None
        if outcome:
            self.deleted += len(outcome)
            logger.info(
                "%s %d threads idle for over %s",
                self._done_verb,
                len(outcome),
                _spelled(self.idle),
            )
        return True

    def _warn_unleased(self, exc: Exception) -> None:
        """The lease could not be taken (a role without rights on the leases table, a schema
        not migrated yet, the database down): the caller sweeps without it, as before
        leases; say so once. A database that is down fails the sweep itself, which is
        logged."""
        if isinstance(exc, StorageFullError):  # no room for the lease's row: not a setup
            logger.warning(
                "sweeping threads idle for over %s without taking turns with other savers: "
                "the storage is full (%s)",
                _spelled(self.idle),
                exc,
            )
            return
        if not self._warned_lease:
            self._warned_lease = True
            logger.warning(
                "sweeping threads idle for over %s without taking turns with other savers: "
                "the storage's lease could not be taken (%s). Run setup() (or "
                "`checkpointers setup URL`) with a role that may create tables, and let "
                "the application's role read and write the leases table",
                _spelled(self.idle),
                exc,
            )

    def _run_thread(self, saver: CheckpointSaver) -> None:
        outcome: list[str] | Exception | None
        try:
            while not self._stop.is_set() and not saver.closed:
                try:
                    try:
                        claimed = saver._claim_lease(self.lease, self.every)
                    except Exception as exc:
                        self._warn_unleased(exc)
                        claimed = True
                    outcome = getattr(saver, self._method)(self.idle) if claimed else None
                except Exception as exc:
                    outcome = exc
                if not self._record(saver, outcome):
                    return
                self._stop.wait(self.every)
        finally:
            self._done.set()

    async def _run_task(self, saver: CheckpointSaver) -> None:
        outcome: list[str] | Exception | None
        while not self._stop.is_set() and not saver.closed:
            try:
                try:
                    claimed = await saver._aclaim_lease(self.lease, self.every)
                except Exception as exc:
                    self._warn_unleased(exc)
                    claimed = True
                method = getattr(saver, "a" + self._method)
                outcome = await method(self.idle) if claimed else None
            except Exception as exc:
                outcome = exc
            if not self._record(saver, outcome):
                return
            await asyncio.sleep(self.every)

    # -- stopping --------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop sweeping; a sweep in progress stops before its next step (waited for, up to
        10 s, from any thread but the event loop of a task sweeper)."""
        self._stop.set()
        task, loop = self._task, self._loop
        if task is not None and loop is not None and not loop.is_closed():
            try:
                running = asyncio.get_running_loop()
            except RuntimeError:
                running = None
            if running is loop:
                task.cancel()  # `astop` waits for it; here only the request can be made
                return
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                loop.call_soon_threadsafe(task.cancel)
        elif task is not None:
            self._done.set()  # its loop is gone, and the task with it
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(_STOP_WAIT)
        elif task is not None:
            self._done.wait(_STOP_WAIT)

    async def astop(self) -> None:
        """Async twin of `stop`: waits for a task sweeper to end without blocking its loop."""
        self._stop.set()
        task = self._task
        if task is not None and self._loop is asyncio.get_running_loop():
            task.cancel()
            await asyncio.wait({task})  # the caller's own cancellation still reaches it
            return
        await asyncio.to_thread(self.stop)

"""What a migration reports: progress while it runs, a summary when it ends."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from ._migrate_side import row_bytes
from ._migrate_verify import ThreadMismatch
from ._records import CheckpointRow, ThreadInfo

__all__ = ["MigrationProgress", "MigrationReport", "Tally", "VerifyReport"]


@dataclass(frozen=True, slots=True)
class MigrationProgress:
    """A snapshot of a running migration, given to the `progress` callback.

    Attributes:
        threads_done: Threads finished (copied, or found complete).
        threads_total: Threads to do.
        checkpoints_copied: Checkpoints written (or, in a dry run, that would be).
        checkpoints_skipped: Checkpoints the target already had.
        checkpoints_total: Checkpoints of the source, when the source counts them cheaply.
        bytes_copied: Payload bytes written (checkpoints, metadata, blobs, writes).
        elapsed: Seconds since the start.
    """

    threads_done: int
    threads_total: int
    checkpoints_copied: int
    checkpoints_skipped: int
    checkpoints_total: int | None
    bytes_copied: int
    elapsed: float

    @property
    def rate(self) -> float:
        """Checkpoints copied per second."""
        return self.checkpoints_copied / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def bytes_rate(self) -> float:
        """Bytes copied per second."""
        return self.bytes_copied / self.elapsed if self.elapsed > 0 else 0.0

    @property
    def eta(self) -> float | None:
        """Seconds left, estimated from checkpoints when counted, else from threads."""
        if self.elapsed <= 0:
            return None
        if self.checkpoints_total:
            done = self.checkpoints_copied + self.checkpoints_skipped
            left = max(self.checkpoints_total - done, 0)
            return left / (done / self.elapsed) if done else None
        if self.threads_done and self.threads_total:
            left = max(self.threads_total - self.threads_done, 0)
            return left / (self.threads_done / self.elapsed)
        return None


@dataclass(frozen=True, slots=True)
class MigrationReport:
    """The outcome of `migrate`.

    Attributes:
        source: The source's label.
        target: The target's label.
        dry_run: Nothing was written.
        threads: Threads looked at.
        threads_copied: Threads with at least one checkpoint copied.
        checkpoints_copied: Checkpoints written (dry run: that would be written).
        checkpoints_skipped: Checkpoints the target already had.
        writes_copied: Pending writes written with them.
        blobs_copied: Channel values written with them.
        bytes_copied: Payload bytes written.
        seconds: Wall time.
        missing_threads: Requested threads that the source does not have.
    """

    source: str
    target: str
    dry_run: bool
    threads: int
    threads_copied: int
    checkpoints_copied: int
    checkpoints_skipped: int
    writes_copied: int
    blobs_copied: int
    bytes_copied: int
    seconds: float
    missing_threads: tuple[str, ...] = ()

    @property
    def rate(self) -> float:
        """Checkpoints copied per second."""
        return self.checkpoints_copied / self.seconds if self.seconds > 0 else 0.0

    @property
    def megabytes_per_second(self) -> float:
        """Payload megabytes (10^6 bytes) copied per second."""
        return self.bytes_copied / 1e6 / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True, slots=True)
class VerifyReport:
    """The outcome of `verify`.

    Attributes:
        threads: Threads compared.
        checkpoints: Source checkpoints compared.
        mismatches: Threads whose target copy is missing or differs in some checkpoint.
        missing_threads: Requested threads that the source does not have.
        seconds: Wall time.
    """

    threads: int
    checkpoints: int
    mismatches: tuple[ThreadMismatch, ...]
    missing_threads: tuple[str, ...]
    seconds: float

    @property
    def ok(self) -> bool:
        """True when every checkpoint of the source is in the target, identical."""
        return not self.mismatches


@dataclass
class Tally:
    """Running counts of a migration (mutable; snapshots go out as `MigrationProgress`)."""

    started: float = field(default_factory=time.monotonic)
    threads_total: int = 0
    checkpoints_total: int | None = None
    threads_done: int = 0
    threads_copied: set[str] = field(default_factory=set)
    checkpoints_seen: int = 0
    checkpoints_copied: int = 0
    checkpoints_skipped: int = 0
    writes_copied: int = 0
    blobs_copied: int = 0
    bytes_copied: int = 0
    missing: list[str] = field(default_factory=list)

    def start(self, infos: Sequence[ThreadInfo], *, known: bool) -> None:
        self.started = time.monotonic()
        self.threads_total = len(infos)
        self.checkpoints_total = sum(t.checkpoint_count for t in infos) if known else None

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def planned(self, thread_id: str, count: int) -> None:
        if count:
            self.threads_copied.add(thread_id)

    def copied(self, rows: Sequence[CheckpointRow]) -> None:
        self.checkpoints_copied += len(rows)
        for row in rows:
            self.writes_copied += len(row.writes)
            self.blobs_copied += len(row.blobs)
            self.bytes_copied += row_bytes(row)

    def checked(self, rows: Sequence[CheckpointRow]) -> None:
        self.checkpoints_seen += len(rows)

    def thread_done(self, *, skipped: int) -> None:
        self.threads_done += 1
        self.checkpoints_skipped += skipped

    def progress(self) -> MigrationProgress:
        return MigrationProgress(
            threads_done=self.threads_done,
            threads_total=self.threads_total,
            checkpoints_copied=self.checkpoints_copied,
            checkpoints_skipped=self.checkpoints_skipped,
            checkpoints_total=self.checkpoints_total,
            bytes_copied=self.bytes_copied,
            elapsed=self.elapsed(),
        )

    def report(self, source: str, target: str, dry_run: bool) -> MigrationReport:
        return MigrationReport(
            source=source,
            target=target,
            dry_run=dry_run,
            threads=self.threads_total,
            threads_copied=len(self.threads_copied),
            checkpoints_copied=self.checkpoints_copied,
            checkpoints_skipped=self.checkpoints_skipped,
            writes_copied=self.writes_copied,
            blobs_copied=self.blobs_copied,
            bytes_copied=self.bytes_copied,
            seconds=self.elapsed(),
            missing_threads=tuple(self.missing),
        )

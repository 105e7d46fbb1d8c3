"""Copy threads between any two checkpointers: `migrate`, `amigrate`, `verify`, `averify`.

Savers of this package copy records verbatim through their backends' plans (no serializer
round trip). The official SQLite and Postgres savers are read and written through their own
tables, so values keep their bytes and type tags. Any other `BaseCheckpointSaver` goes
through its public API (`list`, `put`, `put_writes`), which re-serializes values.

The loop is written once, as a generator of steps (run this plan on that side); `migrate`
and `amigrate` only differ in how they wait for a step.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.serde.base import SerializerProtocol
from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

from ._errors import ConfigError
from ._migrate_drive import Run, Setup, Steps, Store, adrive, drive
from ._migrate_progress import MigrationProgress, MigrationReport, Tally, VerifyReport
from ._migrate_side import (
    Key,
    SaverSide,
    Side,
    key_of,
    keys_parents_first,
    without_blobs,
)
from ._migrate_verify import Recode, ThreadMismatch, compare_rows
from ._records import CheckpointRow, ThreadInfo
from ._saver import CheckpointSaver

__all__ = [
    "MigrationProgress",
    "MigrationReport",
    "VerifyReport",
    "amigrate",
    "as_side",
    "averify",
    "migrate",
    "verify",
]

Endpoint = CheckpointSaver | BaseCheckpointSaver[Any] | Side
ProgressCallback = Callable[[MigrationProgress], None]

DEFAULT_BATCH = 100
_DEFAULT_WORKERS = 8  # see `_migrate_drive` for the measurement
_THREAD_PAGE = 1000


def as_side(endpoint: Endpoint, label: str | None = None) -> Side:
    """The migration side for a saver: ours, an official SQL saver's tables, or its public API."""
    if isinstance(endpoint, Side):
        return endpoint
    if isinstance(endpoint, CheckpointSaver):
        return SaverSide(endpoint, label)
    if not isinstance(endpoint, BaseCheckpointSaver):
        raise ConfigError(
            f"cannot migrate from or to {type(endpoint).__name__}: pass a checkpointer "
            "(a saver of this package or any langgraph BaseCheckpointSaver)"
        )
    kind = _official_kind(endpoint)
    if kind == "sqlite":
        from ._migrate_lgsqlite import LangGraphSqliteSide

        return LangGraphSqliteSide(endpoint, label)
    if kind == "postgres":
        from ._migrate_lgpostgres import LangGraphPostgresSide

        return LangGraphPostgresSide(endpoint, label)
    from ._migrate_api import ApiSide

    return ApiSide(endpoint, label)


def _official_kind(saver: BaseCheckpointSaver[Any]) -> str | None:
    """ "sqlite"/"postgres" for the official SQL savers themselves (not subclasses: they may
    store differently), else None."""
    kinds = {
        ("langgraph.checkpoint.sqlite", "SqliteSaver"): "sqlite",
        ("langgraph.checkpoint.sqlite.aio", "AsyncSqliteSaver"): "sqlite",
        ("langgraph.checkpoint.postgres", "PostgresSaver"): "postgres",
        ("langgraph.checkpoint.postgres.aio", "AsyncPostgresSaver"): "postgres",
    }
    cls = type(saver)
    return kinds.get((cls.__module__, cls.__qualname__))


# -- the loop, written once --------------------------------------------------------------------


@dataclass
class _Options:
    threads: list[str] | None
    since: float | None
    batch: int
    dry_run: bool
    progress: ProgressCallback | None
    tally: Tally = field(default_factory=Tally)


def _since(value: float | datetime.datetime | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=datetime.timezone.utc)
        return value.timestamp()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise ConfigError(f"since must be a datetime or seconds since the epoch, got {value!r}")


def _options(
    threads: Sequence[str] | None,
    since: float | datetime.datetime | None,
    batch: int,
    dry_run: bool,
    progress: ProgressCallback | None,
) -> _Options:
    if isinstance(threads, str):
        raise ConfigError("threads must be a list of thread ids, not one string")
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise ConfigError(f"batch must be a number >= 1, got {batch!r}")
    wanted = None if threads is None else list(dict.fromkeys(str(t) for t in threads))
    return _Options(wanted, _since(since), batch, dry_run, progress)


def _all_threads(side: Side) -> Steps:
    infos: list[ThreadInfo] = []
    after: str | None = None
    while True:
        page = yield Run(side, side.thread_page(after, _THREAD_PAGE))
        infos.extend(page)
        if len(page) < _THREAD_PAGE:
            return infos
        after = page[-1].thread_id


def _source_threads(source: Side, opts: _Options) -> Steps:
    if opts.threads is None:
        # Not a thread holding only writes: their checkpoints were deleted, nothing to copy.
        listed = yield from _all_threads(source)
        return [t for t in listed if t.checkpoint_count != 0]
    return [ThreadInfo(t, 0, None, None) for t in opts.threads]


def _same(a: ThreadInfo, b: ThreadInfo | None) -> bool:
    """True when a thread already looks complete in the target (count and newest id agree)."""
    return (
        b is not None
        and a.checkpoint_count > 0
        and a.checkpoint_count == b.checkpoint_count
        and a.last_checkpoint_id is not None
        and a.last_checkpoint_id == b.last_checkpoint_id
    )


def _copy(source: Side, target: Side, opts: _Options) -> Steps:
    tally = opts.tally
    infos = yield from _source_threads(source, opts)
    tally.start(infos, known=opts.threads is None)
    if not opts.dry_run:
        yield Setup(target)
    known: dict[str, ThreadInfo] | None = None
    if target.indexed_threads and opts.threads is None:
        known = {t.thread_id: t for t in (yield from _all_threads(target))}
    pending: list[CheckpointRow] = []

    def flush(rows: list[CheckpointRow]) -> Steps:
        if not opts.dry_run:
            yield Store(target, rows, source.serde)
        tally.copied(rows)
        _report(opts)

    def put(rows: list[CheckpointRow]) -> Steps:
        nonlocal pending
        for row in rows:
            pending.append(row)
            if len(pending) >= opts.batch:
                yield from flush(pending)
                pending = []

    for info in infos:
        tid = info.thread_id
        if opts.since is not None and info.updated_at is not None and info.updated_at < opts.since:
            tally.thread_done(skipped=0)
            continue
        if known is not None and _same(info, known.get(tid)):
            tally.thread_done(skipped=info.checkpoint_count)
            _report(opts)
            continue
        yield from _copy_thread(source, target, tid, opts, known is None or tid in known, put)
        _report(opts)
    if pending:
        yield from flush(pending)
    return tally.report(source.label, target.label, opts.dry_run)


Put = Callable[[list[CheckpointRow]], Steps]


def _copy_thread(
    source: Side, target: Side, tid: str, opts: _Options, maybe_stored: bool, put: Put
) -> Steps:
    """Copy a thread a batch at a time: its keys first (parents first, minus those the
    target has), then `batch` checkpoints per read, so memory holds a few batches of the
    thread, never all of it."""
    tally = opts.tally
    links = yield Run(source, source.thread_keys(tid))
    if not links and opts.threads is not None:
        tally.missing.append(tid)
    have: set[Key] = set()
    if links and maybe_stored:
        have = yield Run(target, target.existing(tid))
    order = keys_parents_first(links)
    todo = [key for key in order if key not in have]
    skipped = len(order) - len(todo)
    sent: set[tuple[str, str, str]] | None = set() if target.shared_blobs else None
    for start in range(0, len(todo), opts.batch):
        # Older than `since`: neither copied nor skipped.
        rows = yield from _read_batch(source, tid, todo[start : start + opts.batch], opts)
        if sent is not None:
            rows = [without_blobs(r, sent) for r in rows]
        tally.planned(tid, len(rows))
        yield from put(rows)
    tally.thread_done(skipped=skipped)


def _read_batch(source: Side, tid: str, keys: list[Key], opts: _Options) -> Steps:
    """These checkpoints of a thread, in the order of `keys` (one deleted since is left
    out), created at or after `since`."""
    read: list[CheckpointRow] = yield Run(source, source.read_checkpoints(tid, keys))
    by_key = {key_of(r): r for r in read}
    return _since_bound([by_key[key] for key in keys if key in by_key], opts)


def _since_bound(rows: list[CheckpointRow], opts: _Options) -> list[CheckpointRow]:
    """The rows created at or after `since` (all of them without it)."""
    if opts.since is None:
        return rows
    return [r for r in rows if r.checkpoint.created_at >= opts.since]


def _report(opts: _Options) -> None:
    if opts.progress is not None:
        opts.progress(opts.tally.progress())


def _verify(source: Side, target: Side, opts: _Options) -> Steps:
    tally = opts.tally
    infos = yield from _source_threads(source, opts)
    tally.start(infos, known=opts.threads is None)
    recode = _recoders(source, target)
    mismatches = []
    exact = source.exact and target.exact
    for info in infos:
        tid = info.thread_id
        found: ThreadMismatch | None = None
        checked = 0
        links = yield Run(source, source.thread_keys(tid))
        if not links and opts.threads is not None:
            tally.missing.append(tid)
        keys = keys_parents_first(links)
        for start in range(0, len(keys), opts.batch):
            rows = yield from _read_batch(source, tid, keys[start : start + opts.batch], opts)
            theirs = []
            if rows:
                wanted = [key_of(r) for r in rows]
                theirs = yield Run(target, target.read_checkpoints(tid, wanted))
            found = _merged(found, compare_rows(tid, rows, theirs, recode, exact=exact))
            tally.checked(rows)
            checked += len(rows)
        if found is not None:
            mismatches.append(found)
        tally.thread_done(skipped=checked)
        _report(opts)
    return VerifyReport(
        threads=len(infos),
        checkpoints=tally.checkpoints_seen,
        mismatches=tuple(mismatches),
        missing_threads=tuple(tally.missing),
        seconds=tally.elapsed(),
    )


def _merged(a: ThreadMismatch | None, b: ThreadMismatch | None) -> ThreadMismatch | None:
    """One thread's mismatches of two batches as one."""
    if a is None or b is None:
        return a or b
    return ThreadMismatch(
        a.thread_id,
        tuple(sorted(a.missing + b.missing)),
        tuple(sorted(a.different + b.different)),
    )


def _recoders(source: Side, target: Side) -> tuple[Recode | None, Recode | None]:
    """How each side's values are hashed so that equal values hash alike (see `Recode`)."""
    if not (source.exact and target.exact):
        common = _plain(target.serde if not target.exact else source.serde)
        return Recode(source.serde, common), Recode(target.serde, common)
    if (source.native_tags is None) == (target.native_tags is None):
        return None, None  # both sides hold any tag, or the same restricted family
    restricted = source if source.native_tags is not None else target
    keep = restricted.native_tags
    common = _plain(restricted.serde)
    return Recode(source.serde, common, keep), Recode(target.serde, common, keep)


def _plain(serde: SerializerProtocol) -> SerializerProtocol:
    """`serde` without its encryption (LangGraph's `EncryptedSerializer` draws a new nonce for
    every value, so its bytes differ each time): values are hashed as the inner one writes
    them, after their side's serializer decrypted them."""
    return serde.serde if isinstance(serde, EncryptedSerializer) else serde


# -- drivers -----------------------------------------------------------------------------------


def _workers(workers: int | None, target: Side) -> int:
    if workers is None:
        return _DEFAULT_WORKERS if isinstance(target, SaverSide) else 1
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise ConfigError(f"workers must be a number >= 1, got {workers!r}")
    return workers


def _sides(source: Endpoint, target: Endpoint) -> tuple[Side, Side]:
    src, dst = as_side(source), as_side(target)
    encoder = getattr(dst, "serde", None)
    if not src.exact and encoder is not None:  # public-API reads encode with the target's serde
        src.encoder = encoder  # type: ignore[attr-defined]
    return src, dst


def migrate(
    source: Endpoint,
    target: Endpoint,
    threads: Sequence[str] | None = None,
    *,
    since: float | datetime.datetime | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> MigrationReport:
    """Copy threads from one checkpointer to another: every namespace, checkpoint, blob, write.

    Savers of this package copy records verbatim (no serializer round trip). The official
    `SqliteSaver`/`AsyncSqliteSaver` and `PostgresSaver`/`AsyncPostgresSaver` are read and
    written through their own tables, so values keep their bytes and type tags. Any other
    `BaseCheckpointSaver` goes through `list`/`put`/`put_writes`: its values are decoded and
    encoded again with the target's serializer (reading) or its own (writing), and a write's
    `task_path` is not visible there, so it reads back as `""`.

    Checkpoints are written oldest first (parents before children), `batch` at a time, each
    atomically, so the target never shows a half-copied checkpoint. A checkpoint whose id the
    target already has is skipped: a second run adds nothing, and a run that was killed or
    stopped continues where it stopped. A thread whose checkpoint count and newest id already
    match in the target is skipped without being read.

    Args:
        source: Where to read (a saver, an official saver, or any `BaseCheckpointSaver`).
        target: Where to write.
        threads: Only these thread ids (default: every thread of the source).
        since: Only checkpoints created at or after this time (a datetime, or seconds since
            the epoch); their parents may then be absent from the target.
        batch: Checkpoints per write (one plan, one round trip where the backend allows).
        dry_run: Read and compare only; write nothing.
        progress: Called after every batch and thread with a `MigrationProgress`. An exception
            it raises stops the migration between batches and propagates; run again to resume.
        workers: Batches written at once (each thread's batches still in order). Default:
            8 into a saver of this package (they are safe to share between threads and
            tasks), 1 into any other checkpointer.

    Returns:
        What was copied and skipped, with timings.

    Raises:
        ConfigError: a bad argument, or an endpoint that is not a checkpointer.
        StorageError: a storage failed; what was written so far stays and a rerun resumes.
    """
    opts = _options(threads, since, batch, dry_run, progress)
    src, dst = _sides(source, target)
    report: MigrationReport = drive(_copy(src, dst, opts), _workers(workers, dst))
    return report


async def amigrate(
    source: Endpoint,
    target: Endpoint,
    threads: Sequence[str] | None = None,
    *,
    since: float | datetime.datetime | None = None,
    batch: int = DEFAULT_BATCH,
    dry_run: bool = False,
    progress: ProgressCallback | None = None,
    workers: int | None = None,
) -> MigrationReport:
    """Async twin of `migrate` (for async savers; sync ones are called directly)."""
    opts = _options(threads, since, batch, dry_run, progress)
    src, dst = _sides(source, target)
    report: MigrationReport = await adrive(_copy(src, dst, opts), _workers(workers, dst))
    return report


def verify(
    source: Endpoint,
    target: Endpoint,
    threads: Sequence[str] | None = None,
    *,
    since: float | datetime.datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Compare every source thread with the target, checkpoint by checkpoint, by digest.

    A digest covers ids, parent ids, metadata, channel versions, the type and bytes of every
    value, and every pending write. Through a public API (not exact bytes) values are decoded
    and encoded again with one serializer before hashing, and `task_path` is left out.

    Returns:
        The threads checked and every mismatch (missing or different checkpoints).
    """
    opts = _options(threads, since, DEFAULT_BATCH, True, progress)
    src, dst = _sides(source, target)
    report: VerifyReport = drive(_verify(src, dst, opts))
    return report


async def averify(
    source: Endpoint,
    target: Endpoint,
    threads: Sequence[str] | None = None,
    *,
    since: float | datetime.datetime | None = None,
    progress: ProgressCallback | None = None,
) -> VerifyReport:
    """Async twin of `verify`."""
    opts = _options(threads, since, DEFAULT_BATCH, True, progress)
    src, dst = _sides(source, target)
    report: VerifyReport = await adrive(_verify(src, dst, opts))
    return report

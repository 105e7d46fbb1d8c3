"""Operations that combine several backend plans: list paging, delta history, pruning.

Written once as plans, so the sync and the async saver run the very same logic.
"""

from __future__ import annotations

import datetime
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from langgraph.checkpoint.base import CheckpointMetadata

from ._backend import Backend, prune_fence
from ._convert import UNREADABLE, blob_map, sorted_writes
from ._errors import (
    ConfigError,
    DamagedDataError,
    PrunedHistoryError,
    StorageError,
    StorageUnavailableError,
    duration_seconds,
)
from ._metadata import decode_metadata, matches_filter
from ._plan import Plan
from ._records import (
    EMPTY,
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    ListQuery,
    StorageSpace,
    ThreadInfo,
    WriteRecord,
)

__all__ = [
    "ListWalk",
    "chain_to_snapshots",
    "compact_plan",
    "delta_channels",
    "delta_history",
    "idle_cutoff",
    "newest_or_damaged",
    "prune_plan",
    "settle_idle",
    "sweep_idle",
    "trim_plan",
]

_MAX_PAGE = 500
_FIRST_PAGE = 100
_HISTORY_PAGE = 32
_THREAD_PAGE = 1000


class ListWalk:
    """The state of one `list()` call: which page to ask for next, what to keep of a page.

    Keyset pagination, so no cursor or lock is held between pages, and the caller may use
    the saver while it iterates.
    """

    __slots__ = (
        "_before", "_checkpoint_id", "_cursor", "_done", "_filter", "_namespace", "_page",
        "_push", "_remaining", "_thread_id",
    )  # fmt: skip

    def __init__(
        self,
        base: ListQuery,
        filter: Mapping[str, Any] | None,
        limit: int | None,
        *,
        push_filter: bool,
    ) -> None:
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)):
            raise ConfigError(f"limit must be an int or None, got {limit!r}")
        if limit is not None and limit < 0:
            raise ConfigError(
                f"limit must be None (no limit) or a number >= 0, got {limit}; "
                "pass limit=None to list every checkpoint"
            )
        self._filter = filter
        # The query's fields, kept apart: building each page's ListQuery directly took 2 us
        # where dataclasses.replace took 5.
        self._thread_id = base.thread_id
        self._namespace = base.checkpoint_ns
        self._checkpoint_id = base.checkpoint_id
        self._before = base.before
        self._push = filter if push_filter else None
        self._remaining = limit
        self._cursor: tuple[str, str, str] | None = None
        self._done = limit == 0
        # Filtering in Python may discard most of a page: grow pages while that happens.
        self._page = _FIRST_PAGE if filter and not push_filter else 0

    def next_query(self) -> ListQuery | None:
        """The next page to fetch, or None when the listing is complete."""
        if self._done:
            return None
        size = _FIRST_PAGE if self._remaining is None else self._remaining
        return ListQuery(
            self._thread_id,
            self._namespace,
            self._checkpoint_id,
            self._before,
            self._cursor,
            self._push,
            min(max(size, self._page), _MAX_PAGE),
        )

    def accept(
        self, query: ListQuery, rows: Sequence[CheckpointRow]
    ) -> list[tuple[CheckpointRow, CheckpointMetadata | None]]:
        """Keep the rows of a fetched page that match, within the limit; advance the cursor.

        Each kept row comes with its decoded metadata when the filter check decoded it (pass
        it on to `to_tuple`, which then does not decode it again), else None.
        """
        if len(rows) < query.limit:
            self._done = True
        if rows:
            last = rows[-1].checkpoint
            self._cursor = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)
        kept: list[tuple[CheckpointRow, CheckpointMetadata | None]]
        if self._filter:
            filter = self._filter
            try:
                kept = [
                    (row, metadata)
                    for row in rows
                    if matches_filter(metadata := decode_metadata(row.checkpoint.metadata), filter)
                ]
            except UNREADABLE as exc:
                raise _damaged_metadata(rows, exc) from exc
        else:
            kept = [(row, None) for row in rows]
        if self._remaining is not None:
            kept = kept[: self._remaining]
            self._remaining -= len(kept)
            if self._remaining == 0:
                self._done = True
        if self._page and len(kept) < len(rows):
            self._page = min(self._page * 2, _MAX_PAGE)
        return kept


def _damaged_metadata(rows: Sequence[CheckpointRow], exc: Exception) -> DamagedDataError:
    """The error for the first row of a page whose metadata the filter check cannot read."""
    for row in rows:
        rec = row.checkpoint
        try:
            decode_metadata(rec.metadata)
        except UNREADABLE:
            return DamagedDataError.of(rec, "its metadata (JSON)", exc)
    return DamagedDataError(
        "the metadata of a listed checkpoint",
        thread_id=None,
        detail=f"{type(exc).__name__}: {exc}",
    )


Seed = tuple[BlobRecord, dict[tuple[str, str], BlobRecord]]
"""A stored value of a channel: its blob, and the blobs of its row (a list's segments)."""
DeltaWalk = tuple[dict[str, list[WriteRecord]], dict[str, Seed]]


def delta_history(
    backend: Backend,
    thread_id: str,
    checkpoint_ns: str,
    checkpoint_id: str | None,
    channels: Sequence[str],
) -> Plan[DeltaWalk]:
    """Walk the ancestors of a checkpoint once for all channels: their writes and seeds.

    For each channel: the writes stored at ancestors (oldest first), back to and including the
    nearest ancestor whose blob for the channel holds a value, which is the seed. Writes stored
    at the target itself are pending for the next step and are not included.
    """
    writes: dict[str, list[WriteRecord]] = {ch: [] for ch in channels}
    seeds: dict[str, Seed] = {}
    target = yield from backend.get(thread_id, checkpoint_ns, checkpoint_id)
    remaining = set(channels)
    cursor = target.checkpoint.parent_checkpoint_id if target else None
    while cursor is not None and remaining:
        rows = yield from backend.history(thread_id, checkpoint_ns, cursor, _HISTORY_PAGE)
        if not rows:
            break
        for row in rows:
            for write in reversed(sorted_writes(row)):
                if write.channel in remaining:
                    writes[write.channel].append(write)
            stored = _stored_values(row, remaining)
            if stored:
                blobs = blob_map(row)
                for channel, blob in stored.items():
                    seeds[channel] = (blob, blobs)
                    remaining.discard(channel)
            cursor = row.checkpoint.parent_checkpoint_id
            if cursor is None or not remaining:
                break
        if len(rows) < _HISTORY_PAGE:
            break
    if remaining and cursor is not None and target is not None:
        # The walk met a deleted ancestor before a stored value of these channels: what is
        # left would fold onto an empty value.
        raise PrunedHistoryError(
            f"cannot rebuild the DeltaChannel value of {sorted(remaining)} at checkpoint "
            f"{target.checkpoint.checkpoint_id!r} of thread {thread_id!r}"
            + (f" (namespace {checkpoint_ns!r})" if checkpoint_ns else "")
            + f": its ancestor {cursor!r}, on the way back to a stored value, was deleted "
            "(by prune, keep_last or delete_for_runs). Read one of the thread's newest "
            "checkpoints, which keep what they rebuild from."
        )
    for found in writes.values():
        found.reverse()
    return writes, seeds


def _stored_values(row: CheckpointRow, channels: Collection[str]) -> dict[str, BlobRecord]:
    """The blobs of `channels` that hold a value at this checkpoint."""
    versions = row.checkpoint.channel_versions
    found = {}
    for blob in row.blobs:
        if (
            blob.channel in channels
            and blob.type != EMPTY
            and versions.get(blob.channel) == blob.version
        ):
            found[blob.channel] = blob
    return found


def compact_plan(
    backend: Backend, full: bool, wait: float
) -> Plan[tuple[StorageSpace, StorageSpace, tuple[str, ...]]]:
    """The storage's space, the wait for older transactions (`Backend.older_transactions`),
    `Backend.compact`, then the space again; with what held space back (the transactions
    that outlasted the wait, what the compaction said)."""
    before = yield from backend.space()
    held = yield from backend.older_transactions(wait)
    kept = yield from backend.compact(full)
    after = yield from backend.space()
    return before, after, (*held, *(kept or ()))


def prune_plan(backend: Backend, thread_ids: Sequence[str], strategy: str) -> Plan[None]:
    """Prune threads: `"delete"` removes them, `"keep_latest"` keeps each namespace's latest.

    `keep_latest` is safe for `DeltaChannel`: it also keeps every ancestor back to the nearest
    checkpoint that stores a value for each delta channel of the kept checkpoint, so the
    channel still rebuilds to the same value.
    """
    if strategy == "delete":
        if thread_ids:
            yield from backend.delete_threads(list(thread_ids))
        return
    if strategy != "keep_latest":
        raise ConfigError(f"unknown prune strategy {strategy!r}: use 'keep_latest' or 'delete'")
    if thread_ids:
        yield from backend.begin_write()
    for thread_id in thread_ids:
        heads = yield from backend.heads(thread_id)
        if not heads:
            continue
        keep: set[tuple[str, str]] = set()
        for head in heads:
            keep.add((head.checkpoint_ns, head.checkpoint_id))
            channels = delta_channels(head)
            if channels:
                keep |= yield from chain_to_snapshots(backend, head, channels)
        yield from backend.prune(thread_id, keep)


def idle_cutoff(idle: datetime.timedelta | float, now: float) -> float:
    """The time (seconds since the epoch) before which a thread written `idle` ago was last
    written; `idle` is a `timedelta` or seconds, and positive."""
    return now - duration_seconds(idle, "idle", "timedelta(days=30)")


def sweep_idle(
    backend: Backend,
    cutoff: float,
    *,
    dry_run: bool = False,
    keep_latest: bool = False,
    report: Callable[[ThreadInfo, bool], None] | None = None,
    listed: Callable[[int], None] | None = None,
) -> Plan[list[str]]:
    """Delete every thread whose newest checkpoint was written before `cutoff`; their ids.

    With `keep_latest`, prune such a thread instead (`prune_plan`'s `"keep_latest"`: the
    newest checkpoint of each namespace stays, with the ancestors a `DeltaChannel` needs)
    when it holds anything older, and skip it when it holds one checkpoint a namespace; a
    thread of writes only, which holds no state to keep, is deleted. The prune keeps a
    checkpoint stored meanwhile (`Backend.prune`'s fence), so it needs no second look.

    A plan of plans: each request is a backend plan that the caller runs on its own, with
    `run(sweep, saver._run)` or `arun(sweep, saver._arun)`, so that no transaction, lock or
    connection spans more than one page of the listing or one thread's look and delete,
    and graphs go on writing meanwhile. The threads are listed a page at a time (a thread of
    writes only, which `list_threads` lists, is aged by its writes); each idle one is looked
    at again just before it goes (`settle_idle`). `report(thread, deleted)` is called for
    every idle thread of the listing, deleted or kept; `listed(n)` for every page of `n`
    threads listed, idle or not, before they are looked at.
    """
    deleted: list[str] = []
    after: str | None = None
    page = _THREAD_PAGE
    while True:
        threads: list[ThreadInfo] = yield backend.list_thread_ages(after, page)
        if listed is not None:
            listed(len(threads))
        for info in threads:
            if info.updated_at is None or info.updated_at >= cutoff:
                continue
            if keep_latest and info.checkpoint_count > 0:
                if info.checkpoint_count <= len(info.namespaces):
                    continue  # one checkpoint a namespace: nothing older to prune
                if not dry_run:
                    yield prune_plan(backend, [info.thread_id], "keep_latest")
                deleted.append(info.thread_id)
                if report is not None:
                    report(info, True)
                continue
            gone = yield from settle_idle(
                backend, info.thread_id, cutoff, info.checkpoint_count, info.updated_at,
                dry_run=dry_run,
            )  # fmt: skip
            if gone:
                deleted.append(info.thread_id)
            if report is not None:
                report(info, gone)
        if len(threads) < page:
            return deleted
        after = threads[-1].thread_id


def newest_or_damaged(backend: Backend, thread_id: str) -> Plan[tuple[float | None, bool]]:
    """(when the thread's newest checkpoint was written, False); (None, False) when it has
    none; (None, True) when it has checkpoints but its newest cannot be read (damaged data,
    which deleting the thread is the advice for). A plan of plans, as `sweep_idle`."""
    try:
        rows: list[CheckpointRow] = yield backend.list_page(ListQuery(thread_id=thread_id, limit=1))
    except StorageUnavailableError:
        raise
    except StorageError:
        if not (yield backend.checkpoint_keys(thread_id)):
            raise
        return None, True
    return (rows[0].checkpoint.created_at if rows else None), False


def settle_idle(
    backend: Backend,
    thread_id: str,
    cutoff: float | None,
    listed_count: int | None,
    listed_at: float | None,
    *,
    dry_run: bool = False,
) -> Plan[bool]:
    """Delete a listed thread if it is still idle (its newest checkpoint older than `cutoff`);
    whether it went. With `cutoff` None, delete it whatever its age.

    A plan of plans, as `sweep_idle`. The listing may be old by the time a thread's turn
    comes: the thread's newest checkpoint is read again, and the thread kept if it was written
    since. A thread whose newest checkpoint cannot be read (damaged data, which deleting the
    thread is the advice for) and a thread of writes only are aged as listed (`listed_at`).
    """
    if cutoff is not None:
        newest, damaged = yield from newest_or_damaged(backend, thread_id)
        if damaged or (newest is None and listed_count == 0):
            newest = listed_at
        if newest is None or newest >= cutoff:
            return False
    if not dry_run:
        yield backend.delete_threads([thread_id])
    return True


def trim_plan(
    backend: Backend, thread_id: str, keep_last: int, known: Sequence[CheckpointRecord] = ()
) -> Plan[int]:
    """Keep the `keep_last` newest checkpoints of each namespace of the thread; how many go.

    The retention a saver with `keep_last` runs after puts. Reads the keys alone; for a kept
    checkpoint whose parent goes (the oldest kept, or the root of a branch) it reads that
    checkpoint's metadata, and for graphs with a `DeltaChannel` keeps its ancestors back to
    each delta channel's stored value, as `prune` does. A subgraph's namespace whose newest
    checkpoint is older than the oldest kept one of the root namespace belongs to a subgraph
    run that finished before the kept history begins: it goes whole (each run of a subgraph
    node has a namespace of its own, so they would otherwise pile up), unless it is the
    thread-long history of a `checkpointer=True` subgraph (`per_run_namespace`). A checkpoint
    stored meanwhile stays (see `Backend.prune`). `known`: records the caller holds (the
    checkpoint it just stored), read from there instead of from storage (with `keep_last=1`
    the one kept is that one: a PostgreSQL trim took 1.02 ms instead of 1.40).
    """
    records = {(r.checkpoint_ns, r.checkpoint_id): r for r in known if r.thread_id == thread_id}
    by_ns: dict[str, list[tuple[str, str | None]]] = {}
    for ns, checkpoint_id, parent in (yield from backend.checkpoint_keys(thread_id)):
        by_ns.setdefault(ns, []).append((checkpoint_id, parent))
    for ids in by_ns.values():
        ids.sort(reverse=True)
    root = by_ns.get("")
    start = root[:keep_last][-1][0] if root else None  # the oldest kept root checkpoint
    keep: set[tuple[str, str]] = set()
    stale: dict[str, str] = {}
    for ns, ids in by_ns.items():
        if per_run_namespace(ns) and start is not None and ids[0][0] < start:
            stale[ns] = ids[0][0]
        else:
            keep.update((ns, checkpoint_id) for checkpoint_id, _ in ids[:keep_last])
    total = sum(len(ids) for ids in by_ns.values())
    if total == len(keep):
        return 0
    newest = set(keep)
    for ns, ids in by_ns.items():
        if ns in stale:
            continue
        stored = {checkpoint_id for checkpoint_id, _ in ids}
        for checkpoint_id, parent in ids[:keep_last]:
            # A parent kept only on another checkpoint's chain may lack what this one needs
            # (that chain covers the other's delta channels alone): only a newest one, whose
            # own parent is handled here in turn, covers it.
            if parent is None or parent not in stored or (ns, parent) in newest:
                continue
            record = records.get((ns, checkpoint_id))
            if record is None:
                row = yield from backend.get(thread_id, ns, checkpoint_id)
                record = None if row is None else row.checkpoint
            if record is not None and (channels := delta_channels(record)):
                keep |= yield from chain_to_snapshots(backend, record, channels)
    yield from backend.prune(thread_id, keep, {**prune_fence(keep), **stale}, retention=True)
    return total - len(keep)


def per_run_namespace(checkpoint_ns: str) -> bool:
    """Whether a namespace holds one run of a subgraph: `node:<task id>`, nested with `|`.

    A subgraph compiled with `checkpointer=True` keeps one history per thread instead, under
    its namespace with every task id removed (`node`, `outer|node`): its newest checkpoint is
    the state its next run starts from, however long ago it ran.
    """
    return ":" in checkpoint_ns


def delta_channels(head: CheckpointRecord) -> set[str]:
    """The `DeltaChannel`s of a checkpoint: those LangGraph counts steps since a snapshot of."""
    try:
        counters = decode_metadata(head.metadata).get("counters_since_delta_snapshot") or {}
    except UNREADABLE:
        # Damaged metadata: any channel may be a delta channel, so keep what each needs.
        return set(head.channel_versions)
    return set(counters) if isinstance(counters, dict) else set()


def chain_to_snapshots(
    backend: Backend, head: CheckpointRecord, channels: set[str]
) -> Plan[set[tuple[str, str]]]:
    """`(namespace, id)` of `head` and its ancestors back to a stored value of each channel.

    What must survive a prune for `channels` (delta channels) of `head` to rebuild.
    """
    keep: set[tuple[str, str]] = set()
    remaining = set(channels)
    cursor: str | None = head.checkpoint_id
    while cursor is not None and remaining:
        rows = yield from backend.history(head.thread_id, head.checkpoint_ns, cursor, _HISTORY_PAGE)
        if not rows:
            break
        for row in rows:
            keep.add((row.checkpoint.checkpoint_ns, row.checkpoint.checkpoint_id))
            remaining -= set(_stored_values(row, remaining))
            cursor = row.checkpoint.parent_checkpoint_id
            if cursor is None or not remaining:
                break
        if len(rows) < _HISTORY_PAGE:
            break
    return keep

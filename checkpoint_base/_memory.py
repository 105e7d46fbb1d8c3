"""The memory backend: the reference implementation of the backend interface.

Records live in dictionaries of one process. A plan's requests are functions applied to the
store; the executor applies a whole plan under one lock, so every operation is atomic.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from ._backend import Backend, Capabilities, prune_fence, thread_summary
from ._connect import BackendEntry
from ._errors import ConfigError
from ._plan import Plan, run
from ._records import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    ListQuery,
    ThreadInfo,
    WriteRecord,
    writes_only_thread,
)
from ._saver import CheckpointSaver

__all__ = ["MemoryBackend", "MemorySaver", "MemoryStore"]

T = TypeVar("T")
NsKey = tuple[str, str]  # (thread_id, checkpoint_ns)


@dataclass
class MemoryStore:
    """The dictionaries that hold one memory saver's records."""

    checkpoints: dict[NsKey, dict[str, CheckpointRecord]] = field(default_factory=dict)
    blobs: dict[tuple[str, str, str, str], BlobRecord] = field(default_factory=dict)
    writes: dict[tuple[str, str, str], dict[tuple[str, int], WriteRecord]] = field(
        default_factory=dict
    )
    lock: threading.RLock = field(default_factory=threading.RLock)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    """Lease name -> (holder, end on `time.monotonic`'s clock): see `Backend.claim`."""


Op = Callable[[MemoryStore], Any]


class MemoryBackend(Backend):
    """Plans over a `MemoryStore`; each yields functions that the executor applies."""

    name = "memory"
    capabilities = Capabilities(metadata_filter=False, durable=False, multi_process=False)

    def setup(self) -> Plan[None]:
        yield lambda store: None

    def put_checkpoint(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord] = (),
    ) -> Plan[None]:
        def op(store: MemoryStore) -> None:
            for blob in blobs:
                key = (blob.thread_id, blob.checkpoint_ns, blob.channel, blob.version)
                store.blobs.setdefault(key, blob)
            _store_writes(store, writes)
            ns_key = (checkpoint.thread_id, checkpoint.checkpoint_ns)
            store.checkpoints.setdefault(ns_key, {})[checkpoint.checkpoint_id] = checkpoint

        yield op

    def put_child(self, checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]) -> Plan[bool]:
        ns_key = (checkpoint.thread_id, checkpoint.checkpoint_ns)

        def op(store: MemoryStore) -> bool:
            records = store.checkpoints.get(ns_key)
            if records is None or checkpoint.parent_checkpoint_id not in records:
                return False
            for blob in blobs:
                key = (blob.thread_id, blob.checkpoint_ns, blob.channel, blob.version)
                store.blobs.setdefault(key, blob)
            records[checkpoint.checkpoint_id] = checkpoint
            return True

        stored: bool = yield op
        return stored

    def put_writes(self, writes: Sequence[WriteRecord]) -> Plan[None]:
        yield lambda store: _store_writes(store, writes)

    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        rows: list[CheckpointRow] = yield lambda store: _list_page(store, query)
        return rows

    def list_threads(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        listed: list[ThreadInfo] = yield lambda store: _thread_infos(store, after, limit)
        return listed

    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        def op(store: MemoryStore) -> None:
            doomed = set(thread_ids)
            for ns_key in [k for k in store.checkpoints if k[0] in doomed]:
                del store.checkpoints[ns_key]
            for key in [k for k in store.blobs if k[0] in doomed]:
                del store.blobs[key]
            for wkey in [k for k in store.writes if k[0] in doomed]:
                del store.writes[wkey]

        yield op

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        def op(store: MemoryStore) -> None:
            doomed = set(run_ids)
            touched = set()
            for ns_key, records in store.checkpoints.items():
                for cid in [c for c, r in records.items() if r.run_id in doomed]:
                    del records[cid]
                    store.writes.pop((*ns_key, cid), None)
                    touched.add(ns_key[0])
            for thread_id in touched:
                _collect_blobs(store, thread_id)

        yield op

    def claim(self, name: str, holder: str, seconds: float) -> Plan[bool]:
        def op(store: MemoryStore) -> bool:
            now = time.monotonic()
            held = store.leases.get(name)
            if held is not None and held[0] != holder and held[1] > now:
                return False
            store.leases[name] = (holder, now + seconds)
            return True

        taken: bool = yield op
        return taken

    def checkpoint_keys(self, thread_id: str) -> Plan[list[tuple[str, str, str | None]]]:
        def op(store: MemoryStore) -> list[tuple[str, str, str | None]]:
            return [
                (ns, cid, record.parent_checkpoint_id)
                for (tid, ns), records in store.checkpoints.items()
                if tid == thread_id
                for cid, record in records.items()
            ]

        keys: list[tuple[str, str, str | None]] = yield op
        return keys

    def prune(
        self,
        thread_id: str,
        keep: Collection[tuple[str, str]],
        upto: Mapping[str, str] | None = None,
        *,
        retention: bool = False,
    ) -> Plan[None]:
        def op(store: MemoryStore) -> None:
            kept, bound = set(keep), prune_fence(keep) if upto is None else upto
            for ns_key in [k for k in store.checkpoints if k[0] == thread_id and k[1] in bound]:
                records = store.checkpoints[ns_key]
                last = bound[ns_key[1]]
                for cid in [c for c in records if (ns_key[1], c) not in kept and c <= last]:
                    del records[cid]
                    store.writes.pop((*ns_key, cid), None)
            _collect_blobs(store, thread_id)

        yield op


def _store_writes(store: MemoryStore, writes: Sequence[WriteRecord]) -> None:
    for w in writes:
        stored = store.writes.setdefault((w.thread_id, w.checkpoint_ns, w.checkpoint_id), {})
        key = (w.task_id, w.idx)
        if w.idx < 0 or key not in stored:
            stored[key] = w


def _thread_infos(store: MemoryStore, after: str | None, limit: int) -> list[ThreadInfo]:
    records: dict[str, list[CheckpointRecord]] = {}
    for (tid, _ns), by_id in store.checkpoints.items():
        if by_id and (after is None or tid > after):
            records.setdefault(tid, []).extend(by_id.values())
    writes: dict[str, list[tuple[str, str, int]]] = {}
    for (tid, ns, cid), by_task in store.writes.items():
        if by_task and tid not in records and (after is None or tid > after):
            size = sum(len(w.data) for w in by_task.values())
            writes.setdefault(tid, []).append((ns, cid, size))
    values: dict[str, int] = {}  # the channel values and pending writes of each thread
    for (tid, *_), blob in store.blobs.items():
        if tid in records:
            values[tid] = values.get(tid, 0) + len(blob.data)
    for (tid, *_), by_task in store.writes.items():
        if tid in records:
            values[tid] = values.get(tid, 0) + sum(len(w.data) for w in by_task.values())
    infos = []
    for tid in sorted(records.keys() | writes.keys())[: max(limit, 0)]:
        if tid in writes:
            held = writes[tid]
            newest = max(cid for _ns, cid, _size in held)
            size = sum(s for _ns, _cid, s in held)
            infos.append(writes_only_thread(tid, newest, size, [ns for ns, _, _ in held]))
            continue
        infos.append(thread_summary(tid, records[tid], values.get(tid, 0)))
    return infos


def _collect_blobs(store: MemoryStore, thread_id: str) -> None:
    """Delete the thread's blobs that no remaining checkpoint reads."""
    live = {
        (ns, ch, ver)
        for (tid, ns), records in store.checkpoints.items()
        if tid == thread_id
        for r in records.values()
        for ch, ver in r.channel_versions.items()
    }
    for key in [k for k in store.blobs if k[0] == thread_id and k[1:] not in live]:
        del store.blobs[key]


def _list_page(store: MemoryStore, query: ListQuery) -> list[CheckpointRow]:
    found = _candidates(store, query)
    if query.limit == 1 and found:
        found = [max(found, key=_order)]
    else:
        found.sort(key=_order, reverse=True)
    rows = []
    for rec in found[: query.limit]:
        blobs = tuple(
            blob
            for ch, ver in rec.channel_versions.items()
            if (blob := store.blobs.get((rec.thread_id, rec.checkpoint_ns, ch, ver))) is not None
        )
        writes = store.writes.get((rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id), {})
        rows.append(CheckpointRow(rec, blobs, tuple(writes.values())))
    return rows


def _order(rec: CheckpointRecord) -> tuple[str, str, str]:
    """A page's order key (`ListQuery`: descending)."""
    return (rec.checkpoint_id, rec.thread_id, rec.checkpoint_ns)


def _candidates(store: MemoryStore, query: ListQuery) -> list[CheckpointRecord]:
    """The records that satisfy every condition of `query` but its limit, in no order.

    A query of one thread and namespace (every `get_tuple` and `list` LangGraph makes) reads
    that namespace's records alone, and one of a checkpoint id that record alone, so that a
    read does not grow with the other threads the store holds.
    """
    if query.thread_id is not None and query.checkpoint_ns is not None:
        records = store.checkpoints.get((query.thread_id, query.checkpoint_ns))
        spaces = [] if records is None else [records]
    else:
        spaces = [
            records
            for (thread_id, ns), records in store.checkpoints.items()
            if (query.thread_id is None or thread_id == query.thread_id)
            and (query.checkpoint_ns is None or ns == query.checkpoint_ns)
        ]
    found: list[CheckpointRecord] = []
    for records in spaces:
        if query.checkpoint_id is not None:
            one = records.get(query.checkpoint_id)
            found += () if one is None else (one,)
        else:
            found += records.values()
    if query.before is not None:
        found = [r for r in found if r.checkpoint_id < query.before]
    if query.cursor is not None:
        found = [r for r in found if _order(r) < query.cursor]
    return found


class MemoryExecutor:
    """Applies a plan's functions to a store under its lock: sync and async alike."""

    def __init__(self, store: MemoryStore) -> None:
        self.store = store

    def run(self, plan: Plan[T]) -> T:
        with self.store.lock:
            return run(plan, self._apply)

    def _apply(self, op: Op) -> Any:
        return op(self.store)

    def close(self) -> None:
        """Nothing to release: the store lives as long as the saver."""


class AsyncMemoryExecutor(MemoryExecutor):
    """The async flavor: the same work, awaited (it never blocks on I/O)."""

    async def run(self, plan: Plan[T]) -> T:  # type: ignore[override]
        return super().run(plan)

    async def aclose(self) -> None:
        """Nothing to release."""


class MemorySaver(CheckpointSaver):
    """A saver that keeps checkpoints in this process's memory (tests, demos, notebooks).

    Both flavors work: `put` and `aput` reach the same store.

    Args:
        serde: The serializer (default: the package's safe msgpack serializer).
        store: Share a store between savers; a new one by default.
    """

    def __init__(
        self, *, serde: SerializerProtocol | None = None, store: MemoryStore | None = None
    ) -> None:
        self.store = store if store is not None else MemoryStore()
        super().__init__(
            MemoryBackend(),
            executor=MemoryExecutor(self.store),
            aexecutor=AsyncMemoryExecutor(self.store),
            serde=serde,
        )


def _connect(url: str, **options: Any) -> MemorySaver:
    _check_url(url)
    return MemorySaver(**options)


async def _aconnect(url: str, **options: Any) -> MemorySaver:
    _check_url(url)
    return MemorySaver(**options)


def _check_url(url: str) -> None:
    rest = url.split("://", 1)[1] if "://" in url else url
    if rest.strip("/"):
        raise ConfigError(
            f"memory:// takes nothing after the scheme, got {url!r}: the saver lives in this "
            "process and has no options in its URL but connect()'s ttl, sweep_every and "
            "ttl_strategy (pass serde= to connect())"
        )


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra=None)

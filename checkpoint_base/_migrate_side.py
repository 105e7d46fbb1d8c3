"""The two ends of a migration: what a side must read and write, and the side for our savers.

A side speaks records (`CheckpointRow`s). Each operation is a plan, run by the side's own
`run` (blocking) or `arun` (asyncio), so the migration loop is written once for both flavors.
"""

from __future__ import annotations

import dataclasses
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from langgraph.checkpoint.serde.base import SerializerProtocol

from ._errors import StorageError
from ._lists import HEAD, is_segment
from ._plan import Plan
from ._records import CheckpointRow, ListQuery, ThreadInfo
from ._saver import CheckpointSaver

__all__ = [
    "AsyncLock",
    "IdIndex",
    "Key",
    "Link",
    "SaverSide",
    "Side",
    "SqlMany",
    "SqlQuery",
    "id_index",
    "ids_by_namespace",
    "key_of",
    "keys_parents_first",
    "read_by_runs",
    "row_bytes",
]

T = TypeVar("T")
Key = tuple[str, str]
"""(checkpoint_ns, checkpoint_id) of a checkpoint within its thread."""
Link = tuple[str, str, str | None]
"""(checkpoint_ns, checkpoint_id, parent_checkpoint_id) of a checkpoint within its thread."""

_SCAN_PAGE = 200


class Side(ABC):
    """One end of a migration. Subclasses say how to reach their storage.

    Attributes:
        label: How reports and errors name this side.
        exact: True when records hold the stored bytes with their type tags; False when they
            are re-encoded through a public API (values then go through a serializer).
        indexed_threads: True when `thread_page` is cheap (no need to read every checkpoint).
        shared_blobs: True when a stored blob serves every checkpoint that reads its version,
            so a migration sends each blob once; False when each checkpoint needs all its
            values (the official SQLite saver inlines them; a public `put` takes them all).
    """

    exact: ClassVar[bool] = True
    indexed_threads: ClassVar[bool] = True
    shared_blobs: ClassVar[bool] = True
    native_tags: ClassVar[frozenset[str] | None] = None
    """The only type tags this storage holds (None: any); others are re-encoded on the way."""

    def __init__(self, label: str) -> None:
        self.label = label

    @property
    @abstractmethod
    def serde(self) -> SerializerProtocol:
        """The serializer that reads the type tags of this side's records."""

    @abstractmethod
    def run(self, plan: Plan[T]) -> T:
        """Run a plan of this side, blocking."""

    @abstractmethod
    async def arun(self, plan: Plan[T]) -> T:
        """Run a plan of this side on asyncio."""

    def setup(self) -> None:  # noqa: B027 - most sides have no schema to create
        """Make the storage ready to be written (create its schema), blocking."""

    async def asetup(self) -> None:  # noqa: B027
        """Make the storage ready to be written (create its schema), on asyncio."""

    @abstractmethod
    def thread_page(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        """Up to `limit` thread summaries with ids above `after`, by thread id."""

    @abstractmethod
    def read_thread(self, thread_id: str) -> Plan[list[CheckpointRow]]:
        """Every checkpoint of a thread (all namespaces) with its blobs and writes, at once.

        Not what a migration reads (see `thread_keys`): a whole reading, written apart from
        the reading by key, that the tests check the reading by key against.
        """

    def existing(self, thread_id: str) -> Plan[set[Key]]:
        """The (namespace, id) of every checkpoint of the thread already stored.

        From `thread_keys`, keeping no index of them (`_index`): a migration asks a target,
        whose keys change as it is written.
        """
        kept = self._ids
        links = yield from self.thread_keys(thread_id)
        self._ids = kept
        return {(ns, cid) for ns, cid, _parent in links}

    # A migration reads a thread's keys, then its checkpoints a batch at a time, so that it
    # holds a few batches of a thread, never all of it (a thread of 1,000 agent steps is
    # ~180 MB of message-list versions).

    @abstractmethod
    def thread_keys(self, thread_id: str) -> Plan[list[Link]]:
        """(namespace, id, parent id) of every checkpoint of a thread, without values."""

    @abstractmethod
    def read_checkpoints(self, thread_id: str, keys: Sequence[Key]) -> Plan[list[CheckpointRow]]:
        """These checkpoints of a thread with their blobs and writes, in any order; a key no
        longer stored is left out."""

    # The id index of the thread whose keys were read last: a migration reads a thread's
    # keys, then its checkpoints a batch at a time (`read_by_runs`).
    _ids: tuple[str, IdIndex] | None = None

    def _remember(self, thread_id: str, links: list[Link]) -> list[Link]:
        self._ids = (thread_id, id_index(links))
        return links

    def _index(self, thread_id: str) -> Plan[IdIndex]:
        if self._ids is None or self._ids[0] != thread_id:
            yield from self.thread_keys(thread_id)
        assert self._ids is not None  # another thread's index finds no key: each is a get
        return self._ids[1]

    @abstractmethod
    def write(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> Plan[None]:
        """Store rows (parents before children); each checkpoint appears whole or not at all.

        Args:
            rows: The rows, as the source side read them.
            serde: Reads the type tags of the rows (the source side's serializer), for sides
                that must decode what they cannot store verbatim.
        """

    def store(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> None:
        """Run `write` for a batch, blocking."""
        self.run(self.write(rows, serde))

    async def astore(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> None:
        """Run `write` for a batch, on asyncio."""
        await self.arun(self.write(rows, serde))


class SaverSide(Side):
    """A saver of this package: records are copied verbatim through its backend's plans."""

    def __init__(self, saver: CheckpointSaver, label: str | None = None) -> None:
        super().__init__(label or f"{type(saver).__name__}({saver.backend.name})")
        self.saver = saver

    @property
    def serde(self) -> SerializerProtocol:
        return self.saver.serde

    def run(self, plan: Plan[T]) -> T:
        return self.saver._run(plan)

    async def arun(self, plan: Plan[T]) -> T:
        return await self.saver._arun(plan)

    def setup(self) -> None:
        self.saver.setup()

    async def asetup(self) -> None:
        await self.saver.asetup()

    def thread_page(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        return self.saver.backend.list_threads(after, limit)

    def thread_keys(self, thread_id: str) -> Plan[list[Link]]:
        return self._remember(thread_id, (yield from self.saver.backend.checkpoint_keys(thread_id)))

    def read_checkpoints(self, thread_id: str, keys: Sequence[Key]) -> Plan[list[CheckpointRow]]:
        index = yield from self._index(thread_id)
        backend = self.saver.backend

        def page(ns: str, before: str | None, limit: int) -> Plan[list[CheckpointRow]]:
            query = ListQuery(thread_id=thread_id, checkpoint_ns=ns, before=before, limit=limit)
            return (yield from backend.list_page(query))

        def get(ns: str, cid: str) -> Plan[CheckpointRow | None]:
            return (yield from backend.get(thread_id, ns, cid))

        return (yield from read_by_runs(keys, index, page, get))

    def read_thread(self, thread_id: str) -> Plan[list[CheckpointRow]]:
        backend = self.saver.backend
        rows: list[CheckpointRow] = []
        cursor = None
        while True:
            query = ListQuery(thread_id=thread_id, cursor=cursor, limit=_SCAN_PAGE)
            page = yield from backend.list_page(query)
            rows.extend(page)
            if len(page) < _SCAN_PAGE:
                return rows
            last = page[-1].checkpoint
            cursor = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)

    def write(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> Plan[None]:
        backend = self.saver.backend
        for row in rows:
            yield from backend.put_checkpoint(row.checkpoint, row.blobs, row.writes)

    # A batch is one plan: one connection and, where the backend opens one, one transaction
    # (see `_migrate_drive` for the throughput this gives). A backend may
    # refuse to compose several atomic writes in one plan; from then on this side stores one
    # checkpoint per plan. Rewriting what the refused batch already stored is harmless: a
    # stored checkpoint is replaced by the same one, a stored blob or write is kept.

    _compose = True

    def store(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> None:
        if self._compose or len(rows) == 1:
            try:
                self.run(self.write(rows, serde))
                return
            except StorageError:
                if len(rows) == 1:
                    raise
                self._compose = False
        for row in rows:
            self.run(self.write([row], serde))

    async def astore(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> None:
        if self._compose or len(rows) == 1:
            try:
                await self.arun(self.write(rows, serde))
                return
            except StorageError:
                if len(rows) == 1:
                    raise
                self._compose = False
        for row in rows:
            await self.arun(self.write([row], serde))


@dataclasses.dataclass(frozen=True, slots=True)
class SqlQuery:
    """A request of the official SQL storages' plans: one statement, its rows come back."""

    sql: str
    params: Sequence[Any] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class SqlMany:
    """A request of the official SQL storages' plans: one statement for many parameter rows."""

    sql: str
    rows: Sequence[Sequence[Any]]


class AsyncLock:
    """`async with` over an official async saver's `asyncio.Lock` (typed `Any` there)."""

    def __init__(self, lock: Any) -> None:
        self._lock = lock

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


def key_of(row: CheckpointRow) -> Key:
    """(namespace, id) of a row's checkpoint."""
    return row.checkpoint.checkpoint_ns, row.checkpoint.checkpoint_id


def keys_parents_first(links: Iterable[Link]) -> list[Key]:
    """The keys of (namespace, id, parent id) links oldest first, every parent before its
    children (ids order only within a process)."""
    parents = {(ns, cid): parent for ns, cid, parent in links}
    ordered: list[Key] = []
    placed: set[Key] = set()
    for start in sorted(parents, key=lambda k: (k[1], k)):
        chain: list[Key] = []
        seen: set[Key] = set()
        current: Key | None = start
        while current is not None:
            if current in placed or current in seen:  # placed already, or a loop of links
                break
            seen.add(current)
            chain.append(current)
            parent = parents[current]
            current = (current[0], parent) if parent and (current[0], parent) in parents else None
        for key in reversed(chain):
            placed.add(key)
            ordered.append(key)
    return ordered


def ids_by_namespace(keys: Iterable[Key]) -> dict[str, list[str]]:
    """The ids of `keys`, grouped by namespace (in the keys' order)."""
    grouped: dict[str, list[str]] = {}
    for ns, cid in keys:
        grouped.setdefault(ns, []).append(cid)
    return grouped


IdIndex = dict[str, tuple[list[str], dict[str, int]]]
"""Per namespace of a thread: its checkpoint ids in ascending order, and each id's position."""


def read_by_runs(
    keys: Sequence[Key],
    index: IdIndex,
    page: Callable[[str, str | None, int], Plan[list[CheckpointRow]]],
    get: Callable[[str, str], Plan[CheckpointRow | None]],
) -> Plan[list[CheckpointRow]]:
    """These checkpoints of a thread, read a page per run of neighbouring ids.

    A migration asks for a thread's checkpoints oldest first, so a batch is one or two runs
    of a namespace's ids (`index`, from the thread's keys). `page(ns, before, limit)` lists
    the namespace newest first below `before` (the id just above the run), as long as the
    run; `get(ns, id)` reads one checkpoint, for a key no page brought (stored since, or
    pushed out by one). A key no longer stored is left out.
    """
    wanted = set(keys)
    rows: list[CheckpointRow] = []
    for ns, positions in _positions(keys, index):
        ids = index[ns][0]
        for lo, hi in _runs(positions):
            before = ids[hi + 1] if hi + 1 < len(ids) else None
            rows += [r for r in (yield from page(ns, before, hi - lo + 1)) if key_of(r) in wanted]
    found = {key_of(r) for r in rows}
    for ns, cid in keys:
        if (ns, cid) not in found:
            row = yield from get(ns, cid)
            if row is not None:
                rows.append(row)
    return rows


def id_index(links: Iterable[Link]) -> IdIndex:
    """Per namespace: its checkpoint ids in ascending order, and each id's position."""
    index = {}
    for ns, listed in ids_by_namespace((ns, cid) for ns, cid, _parent in links).items():
        listed.sort()
        index[ns] = (listed, {cid: i for i, cid in enumerate(listed)})
    return index


def _positions(keys: Iterable[Key], index: IdIndex) -> list[tuple[str, list[int]]]:
    """Per namespace, the sorted positions of the keys found in `index`."""
    found: dict[str, list[int]] = {}
    for ns, cid in keys:
        position = index.get(ns, ((), {}))[1].get(cid)
        if position is not None:
            found.setdefault(ns, []).append(position)
    return [(ns, sorted(positions)) for ns, positions in found.items()]


_GAP = 2
"""Unwanted checkpoints a page may read (and drop) to join two runs of wanted ones."""


def _runs(positions: Sequence[int]) -> list[tuple[int, int]]:
    """Sorted positions as (first, last) runs, joining runs at most `_GAP` apart."""
    runs: list[tuple[int, int]] = []
    for p in positions:
        if runs and p - runs[-1][1] <= _GAP + 1:
            runs[-1] = (runs[-1][0], p)
        else:
            runs.append((p, p))
    return runs


def row_bytes(row: CheckpointRow) -> int:
    """Bytes of a row's payloads (checkpoint, metadata, blobs, writes)."""
    rec = row.checkpoint
    return (
        len(rec.checkpoint)
        + len(rec.metadata)
        + sum(len(b.data) for b in row.blobs)
        + sum(len(w.data) for w in row.writes)
    )


def without_blobs(row: CheckpointRow, sent: set[tuple[str, str, str]]) -> CheckpointRow:
    """The row without the blobs already sent in this run; records the ones it keeps."""
    ns = row.checkpoint.checkpoint_ns
    kept = []
    for blob in row.blobs:
        key = (ns, blob.channel, blob.version)
        if key not in sent:
            sent.add(key)
            kept.append(blob)
    if any(blob.type == HEAD for blob in kept):
        # A head goes with its segments, which a target that stores lists whole reads it by.
        have = {(b.channel, b.version) for b in kept}
        kept += [
            b for b in row.blobs if is_segment(b.channel) and (b.channel, b.version) not in have
        ]
    if len(kept) == len(row.blobs):
        return row
    return dataclasses.replace(row, blobs=tuple(kept))

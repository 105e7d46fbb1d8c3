"""A migration side over any LangGraph `BaseCheckpointSaver`, through its public API only.

Reading uses `list` (a thread's keys, then a page per run of neighbouring ids, so a
migration holds a batch of a thread, never all of it) and `get_tuple`; writing uses
`put_writes` then `put` (the checkpoint last, so it never shows without its writes). Values
cross a public API as Python objects, so they are decoded and encoded again: records read
here are encoded with `encoder` (the target's serializer when migrating), and records
written here are decoded with the source's serializer. Two facts of a write are not visible
through the API and are rebuilt: `idx` (the write's position among its task's writes, or
its `WRITES_IDX_MAP` index) and `task_path`, which only orders pending writes
(`writes_sort_key`): it reads back as `""`, or, where the listed order is not the order of
task ids, as `"~migrated, NNNNNN"` numbering the tasks in the listed order, which LangGraph
then applies in the same order.
"""

from __future__ import annotations

import inspect
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from langgraph.checkpoint.base import WRITES_IDX_MAP, BaseCheckpointSaver, CheckpointTuple
from langgraph.checkpoint.serde.base import SerializerProtocol

from ._convert import blob_map, checkpoint_config, load_values
from ._errors import ConfigError
from ._metadata import decode_metadata, encode_metadata
from ._migrate_msgpack import ts_to_epoch, uuid6_epoch
from ._migrate_side import Key, Link, Side, read_by_runs
from ._plan import Plan
from ._records import (
    BlobRecord,
    CheckpointRecord,
    CheckpointRow,
    ThreadInfo,
    WriteRecord,
)

__all__ = ["ApiSide"]

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Call:
    """A request of an API plan: call `method` (sync) or `a{method}` (async) of the saver.

    `list` returns an iterator: its items are passed through `each` as they come (so that a
    plan keeps what it needs of each checkpoint, not every value of a thread at once), and
    the results come back as a list.
    """

    method: str
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = ()
    each: Callable[[CheckpointTuple], Any] | None = None


def _thread_config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id}}


class ApiSide(Side):
    """Any `BaseCheckpointSaver` (official or third-party), through `list`, `put`, `put_writes`.

    Args:
        saver: The checkpointer.
        label: How reports name it.
        encoder: Encodes the values this side reads (default: the saver's own serializer).
    """

    exact = False
    indexed_threads = False
    shared_blobs = False

    def __init__(
        self,
        saver: BaseCheckpointSaver[Any],
        label: str | None = None,
        *,
        encoder: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(label or type(saver).__name__)
        self.saver = saver
        self.encoder: SerializerProtocol = encoder or saver.serde
        self._threads: list[ThreadInfo] | None = None
        self._sync_only = False

    @property
    def serde(self) -> SerializerProtocol:
        return self.encoder

    # -- running ---------------------------------------------------------------------------

    def _call(self, call: _Call) -> Any:
        result = getattr(self.saver, call.method)(*call.args, **dict(call.kwargs))
        if call.method != "list":
            return result
        each = call.each or _same
        return [each(item) for item in result]

    async def _acall(self, call: _Call) -> Any:
        if not self._sync_only:
            try:
                method = getattr(self.saver, f"a{call.method}")
                if call.method == "list":
                    each = call.each or _same
                    return [each(item) async for item in method(*call.args, **dict(call.kwargs))]
                result = method(*call.args, **dict(call.kwargs))
                return await result if inspect.isawaitable(result) else result
            except NotImplementedError:  # a sync-only saver (the official SqliteSaver)
                self._sync_only = True
        return self._call(call)

    def run(self, plan: Plan[T]) -> T:
        from ._plan import run

        return run(plan, self._call)

    async def arun(self, plan: Plan[T]) -> T:
        from ._plan import arun

        return await arun(plan, self._acall)

    # -- plans -----------------------------------------------------------------------------

    def setup(self) -> None:
        setup = getattr(self.saver, "setup", None)
        if callable(setup):
            outcome = setup()
            if inspect.isawaitable(outcome):
                if inspect.iscoroutine(outcome):
                    outcome.close()
                raise ConfigError(f"{self.label} is async: use amigrate()/averify()")

    async def asetup(self) -> None:
        setup = getattr(self.saver, "setup", None)
        if callable(setup):
            outcome = setup()
            if inspect.isawaitable(outcome):
                await outcome

    def thread_page(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        # The API lists checkpoints, not threads: one pass over all of them, keeping a
        # summary per thread (not the checkpoints).
        if self._threads is None:
            found: dict[str, _Summary] = {}

            def count(tup: CheckpointTuple) -> None:
                tid = str(tup.config["configurable"]["thread_id"])
                summary = found.get(tid)
                if summary is None:
                    summary = found[tid] = _Summary()
                summary.add(tup)

            yield _Call("list", (None,), each=count)
            self._threads = [found[tid].info(tid) for tid in sorted(found)]
        return [t for t in self._threads if after is None or t.thread_id > after][:limit]

    def read_thread(self, thread_id: str) -> Plan[list[CheckpointRow]]:
        rows: list[CheckpointRow] = yield _Call(
            "list", (_thread_config(thread_id),), each=self._row
        )
        return rows

    # A thread is read a batch at a time: its keys first (a pass over its checkpoints that
    # keeps three strings of each), then a `list` page per run of neighbouring ids
    # (`before` the id above the run, `limit` its length).

    def thread_keys(self, thread_id: str) -> Plan[list[Link]]:
        links: list[Link] = yield _Call("list", (_thread_config(thread_id),), each=_link)
        return self._remember(thread_id, links)

    def read_checkpoints(self, thread_id: str, keys: Sequence[Key]) -> Plan[list[CheckpointRow]]:
        index = yield from self._index(thread_id)

        def page(ns: str, before: str | None, limit: int) -> Plan[list[CheckpointRow]]:
            kwargs: dict[str, Any] = {"limit": limit}
            if before is not None:
                kwargs["before"] = {"configurable": {"checkpoint_id": before}}
            config = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
            call = _Call("list", (config,), tuple(kwargs.items()), each=self._row)
            rows: list[CheckpointRow] = yield call
            return rows

        def get(ns: str, cid: str) -> Plan[CheckpointRow | None]:
            tup = yield _Call("get_tuple", (checkpoint_config(thread_id, ns, cid),))
            return None if tup is None else self._row(tup)

        return (yield from read_by_runs(keys, index, page, get))

    def write(self, rows: Sequence[CheckpointRow], serde: SerializerProtocol) -> Plan[None]:
        for row in rows:
            rec = row.checkpoint
            config = checkpoint_config(rec.thread_id, rec.checkpoint_ns, rec.checkpoint_id)
            for (task_id, task_path), writes in _by_task(row.writes).items():
                values = [(w.channel, serde.loads_typed((w.type, w.data))) for w in writes]
                yield _Call("put_writes", (config, values, task_id, task_path))
            checkpoint = serde.loads_typed((rec.type, rec.checkpoint))
            checkpoint["channel_values"] = load_values(serde, rec, blob_map(row))
            parent: Any = {
                "configurable": {
                    "thread_id": rec.thread_id,
                    "checkpoint_ns": rec.checkpoint_ns,
                    "checkpoint_id": rec.parent_checkpoint_id,
                }
            }
            if rec.parent_checkpoint_id is None:
                del parent["configurable"]["checkpoint_id"]
            new_versions = dict(checkpoint.get("channel_versions") or {})
            yield _Call("put", (parent, checkpoint, decode_metadata(rec.metadata), new_versions))

    # -- conversions -----------------------------------------------------------------------

    def _row(self, tup: CheckpointTuple) -> CheckpointRow:
        configurable = tup.config["configurable"]
        thread_id = str(configurable["thread_id"])
        ns = configurable.get("checkpoint_ns") or ""
        body: dict[str, Any] = dict(tup.checkpoint)
        values: dict[str, Any] = body.pop("channel_values", None) or {}
        versions = {ch: str(v) for ch, v in (body.get("channel_versions") or {}).items()}
        blobs = tuple(
            BlobRecord(thread_id, ns, ch, versions[ch], *self.encoder.dumps_typed(values[ch]))
            for ch in versions
            if ch in values
        )
        type_, data = self.encoder.dumps_typed(body)
        metadata = dict(tup.metadata or {})
        run_id = metadata.get("run_id")
        parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
        record = CheckpointRecord(
            thread_id=thread_id,
            checkpoint_ns=ns,
            checkpoint_id=str(body["id"]),
            parent_checkpoint_id=parent or None,
            type=type_,
            checkpoint=data,
            metadata=encode_metadata(metadata),
            channel_versions=versions,
            run_id=str(run_id) if run_id is not None else None,
            created_at=ts_to_epoch(body.get("ts")) or uuid6_epoch(str(body["id"])) or 0.0,
        )
        pending = list(tup.pending_writes or ())
        paths = _task_paths([task_id for task_id, _, _ in pending])
        writes = []
        position: dict[str, int] = defaultdict(int)
        for task_id, channel, value in pending:
            idx = WRITES_IDX_MAP.get(channel, position[task_id])
            if channel not in WRITES_IDX_MAP:
                position[task_id] += 1
            w_type, w_data = self.encoder.dumps_typed(value)
            writes.append(
                WriteRecord(
                    thread_id,
                    ns,
                    record.checkpoint_id,
                    task_id,
                    idx,
                    channel,
                    w_type,
                    w_data,
                    paths[task_id],
                )
            )
        return CheckpointRow(record, blobs, tuple(writes))


def _task_paths(task_ids: Sequence[str]) -> dict[str, str]:
    """A `task_path` per task that keeps the listed order of pending writes (see module doc)."""
    order = list(dict.fromkeys(task_ids))
    if order == sorted(order):
        return dict.fromkeys(order, "")
    return {task_id: f"~migrated, {rank:06}" for rank, task_id in enumerate(order)}


def _by_task(writes: Sequence[WriteRecord]) -> dict[tuple[str, str], list[WriteRecord]]:
    """Writes per (task, path), in the order `put_writes` gives them back their `idx`.

    `put_writes` numbers a write by its position, except special channels, which take their
    `WRITES_IDX_MAP` index wherever they stand: so ordinary writes go at their `idx` and
    special ones fill the gaps (the rest follow; their `idx` then shifts, order preserved).
    """
    grouped: dict[tuple[str, str], list[WriteRecord]] = defaultdict(list)
    for w in writes:
        grouped[(w.task_id, w.task_path)].append(w)
    return {key: _positioned(found) for key, found in grouped.items()}


def _positioned(writes: list[WriteRecord]) -> list[WriteRecord]:
    ordinary = sorted((w for w in writes if w.idx >= 0), key=lambda w: w.idx)
    special = sorted((w for w in writes if w.idx < 0), key=lambda w: w.idx)
    placed: list[WriteRecord] = []
    for w in ordinary:
        while len(placed) < w.idx and special:
            placed.append(special.pop())
        placed.append(w)
    return placed + special


def _ns(tup: CheckpointTuple) -> str:
    return str(tup.config["configurable"].get("checkpoint_ns") or "")


def _same(tup: CheckpointTuple) -> CheckpointTuple:
    return tup


def _link(tup: CheckpointTuple) -> Link:
    parent = (tup.parent_config or {}).get("configurable", {}).get("checkpoint_id")
    return (_ns(tup), str(tup.checkpoint["id"]), str(parent) if parent else None)


class _Summary:
    """What a thread summary needs of a thread's checkpoints, gathered one at a time."""

    __slots__ = ("count", "latest", "namespaces", "newest")

    def __init__(self) -> None:
        self.count = 0
        self.newest = ""
        self.latest: float | None = None
        self.namespaces: set[str] = set()

    def add(self, tup: CheckpointTuple) -> None:
        self.count += 1
        self.newest = max(self.newest, str(tup.checkpoint["id"]))
        when = ts_to_epoch(tup.checkpoint.get("ts"))
        if when is not None and (self.latest is None or when > self.latest):
            self.latest = when
        self.namespaces.add(_ns(tup))

    def info(self, thread_id: str) -> ThreadInfo:
        return ThreadInfo(
            thread_id=thread_id,
            checkpoint_count=self.count,
            last_checkpoint_id=self.newest,
            updated_at=self.latest if self.latest is not None else uuid6_epoch(self.newest),
            namespaces=tuple(sorted(self.namespaces)),
        )

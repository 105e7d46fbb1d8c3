"""The Redis backend: each storage operation as a plan of script calls.

One script per operation on a thread (`put`, `put_writes`, `get`, one `list` page, `history`,
`prune`, `delete_thread`), so each is one round trip and atomic, on a single server and on a
cluster alike. What spans threads (listing across threads, `list_threads`, `delete_runs`)
runs one script per registry bucket: one bucket on a single server, one per slot in use on a
cluster, found in a directory set.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import json
import math
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Any

from checkpoint_base import (
    Backend,
    BlobRecord,
    Capabilities,
    CheckpointRecord,
    CheckpointRow,
    DamagedDataError,
    ListQuery,
    Plan,
    SchemaVersionError,
    StorageError,
    ThreadInfo,
    WriteRecord,
    prune_fence,
    writes_only_thread,
)

from . import _lua as lua
from . import _lua_registry as reg
from ._codec import (
    UNREADABLE,
    blob_field,
    blob_value,
    decode_record,
    decode_row,
    pack_checkpoint,
    write_field,
    write_value,
)
from ._keys import Layout, ThreadKeys, seg, seg_common, split, unseg
from ._requests import Arg, Batch, Command, Eval, Transaction
from ._scans import index_prefixes, plan_scan

__all__ = ["DEFAULT_PREFIX", "MIGRATIONS", "RedisBackend", "RedisClusterBackend"]

DEFAULT_PREFIX = "checkpointers"
MIGRATIONS: list[str] = [
    "1: key layout of checkpoint_redis 0.1 (see _keys.py)",
]
"""Layout versions; position + 1 is the version recorded under `{prefix}:{#}:schema`."""

_COPY_BATCH = 64
_PAGE_RETRIES = 3
INLINE_BYTES = 64 * 1024
"""Blob bytes a one-checkpoint read (get) returns from its script; the rest come by HMGET."""
PAGE_INLINE_BYTES = 8 * 1024
"""The same for reads of several checkpoints (list pages, history). Every byte a script reads
is copied into a Lua string, which Lua's collector then walks: list(limit=10) of the
benchmarks' 100-step thread (ten 55 KB message blobs) spent 606 us per call in the script
with 64 KB inline and 135-175 us with 4-8 KB, for 1.1-1.2 ms instead of 1.2-1.5 ms per
page without deserialization (INFO commandstats, this machine). A get keeps the larger
budget: there the second round trip would cost what the copy saves."""
DIRECT_BLOB_BYTES = 4096
"""Blobs (and writes) this large are written by HSETNX beside the script, in one MULTI/EXEC: through
the script's ARGV a 56 KB blob cost the server ~140 us, as HSETNX ~30 us (Redis 7.0,
INFO commandstats; the time a client waits is about the same either way)."""
_HINTS = 4096
"""Threads whose latest checkpoint's blob fields a backend remembers (`read_hints`)."""
_ALL_INLINE = 1 << 62
"""A `direct` threshold no value reaches: the request's one-script form (`Transaction.inline`)."""


def _rel(a: str, b: str) -> int:
    return (a > b) - (a < b)


class RedisBackend(Backend):
    """Plans for one key prefix on a single Redis (or Valkey) server.

    Args:
        key_prefix: Namespace of every key; several applications can share a server.
        ttl: Seconds (or a timedelta) every key of a thread lives after its last write (None:
            forever).
        refresh_on_read: Reading a thread also renews its TTL.
    """

    name = "redis"
    capabilities = Capabilities(metadata_filter=True, ttl=True, cluster=False)
    _cluster = False

    prune_batch = 400
    """Checkpoints one prune script drops at most (~5 ms of server time, ~13 µs each);
    a longer prune is several scripts, so that other clients are not held up by one."""

    def __init__(
        self,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        ttl: float | datetime.timedelta | None = None,
        refresh_on_read: bool = False,
    ) -> None:
        if isinstance(ttl, datetime.timedelta):
            ttl = ttl.total_seconds()
        if ttl is not None and (
            isinstance(ttl, bool) or not isinstance(ttl, (int, float)) or not ttl > 0
        ):
            raise ValueError(
                f"ttl must be a positive number of seconds, a timedelta or None, got {ttl!r}"
            )
        if ttl is not None and not 0.001 <= ttl < 1e12:
            # Redis expires keys by the millisecond: less would store no expiry at all.
            raise ValueError(f"ttl must be at least 1 ms and finite, got {ttl!r} seconds")
        self.layout = Layout(key_prefix, cluster=self._cluster)
        self.ttl_ms = int(ttl * 1000) if ttl else 0
        self.refresh_ms = self.ttl_ms if refresh_on_read else 0
        self._known_buckets: set[bytes] = set()
        self.read_hints = False
        """Read a latest checkpoint's blobs beside its script (`get`); set by the saver when its
        executor sends transactions cheaply (a lane)."""
        self._hints: dict[tuple[bytes, bytes], tuple[bytes, ...]] = {}

    # -- registry --------------------------------------------------------------------------

    def _register(self, tk: ThreadKeys) -> Plan[None]:
        """Make sure the thread's bucket is in the directory (cluster only)."""
        if self._cluster and tk.bucket not in self._known_buckets:
            # Before the thread's own write, so the directory never misses a bucket in use.
            yield Command(("SADD", self.layout.directory_key, tk.bucket))
            self._known_buckets.add(tk.bucket)

    def _buckets(self) -> Plan[list[bytes]]:
        if not self._cluster:
            return [b"#"]
        found = yield Command(("SMEMBERS", self.layout.directory_key))
        return sorted(found)

    def _per_bucket(self, requests: list[Eval]) -> Plan[list[Any]]:
        if len(requests) == 1:
            return [(yield requests[0])]
        if not requests:
            return []
        results: list[Any] = yield Batch(tuple(requests))
        return results

    # -- setup -----------------------------------------------------------------------------

    def setup(self) -> Plan[None]:
        key = self.layout.schema_key
        known = len(MIGRATIONS)
        raw = yield Command(("GET", key))
        try:
            current = int(raw or 0)
        except ValueError:
            raise StorageError(
                f"Redis key {key!r} holds {bytes(raw)[:40]!r}, not a layout version of "
                f"checkpointers: another application uses the key prefix "
                f"{self.layout.prefix.decode()!r}; give this saver a key_prefix of its own"
            ) from None
        while current < known:
            # Every layout step is idempotent; the compare-and-set lets two processes race.
            found = int((yield Eval(reg.SCHEMA, (key,), (current, current + 1))))
            current = current + 1 if found == current else found
        if current > known:
            raise SchemaVersionError(
                f"Redis keys under prefix {self.layout.prefix.decode()!r} use layout version "
                f"{current}, newer than this checkpoint_redis understands ({known}); upgrade "
                "checkpointers"
            )

    # -- writes ----------------------------------------------------------------------------

    def _put_request(
        self,
        record: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord],
        *,
        direct: int = DIRECT_BLOB_BYTES,
        child: bool = False,
    ) -> Eval | Transaction:
        tk = self.layout.thread(record.thread_id)
        cid = seg(record.checkpoint_id)
        ns = seg_common(record.checkpoint_ns)
        k = ns + cid
        parent = record.parent_checkpoint_id
        try:  # a record migrated from a damaged source is refused whole, naming it
            metadata = json.loads(record.metadata)
        except (ValueError, RecursionError) as exc:
            raise DamagedDataError.of(record, "its metadata (JSON)", exc) from exc
        value = pack_checkpoint(record, index_prefixes(record, metadata))
        run_f = run_r = b""
        if record.run_id is not None:
            run = seg(record.run_id)
            run_f, run_r = b"F" + run + tk.member, b"R" + tk.tid + run
        args: list[Any] = [
            tk.base,
            self.ttl_ms,
            time.time() if self.ttl_ms else 0,
            k,
            cid + k,
            value,
            tk.member,
            run_f,
            run_r,
            ns + seg(parent) if child and parent is not None else b"",
        ]
        small = [b for b in blobs if len(b.data) < direct]
        args.append(len(small))
        for blob in small:
            args.append(blob_field(blob.checkpoint_ns, blob.channel, blob.version))
            args.append(blob_value(blob))
        beside = _append_writes(args, writes, tk.keys[4], direct)
        put = Eval(lua.PUT, tk.keys, tuple(args))
        beside.extend(
            Command(("HSETNX", tk.keys[3], blob_field(b.checkpoint_ns, b.channel, b.version),
                     blob_value(b)))
            for b in blobs
            if len(b.data) >= direct
        )  # fmt: skip
        return _beside(
            beside,
            put,
            lambda: self._put_request(record, blobs, writes, direct=_ALL_INLINE, child=child),
        )

    def put_checkpoint(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord] = (),
    ) -> Plan[None]:
        yield from self._put(checkpoint, blobs, writes, child=False)

    def put_child(self, checkpoint: CheckpointRecord, blobs: Sequence[BlobRecord]) -> Plan[bool]:
        stored: bool = yield from self._put(checkpoint, blobs, (), child=True)
        return stored

    def _put(
        self,
        checkpoint: CheckpointRecord,
        blobs: Sequence[BlobRecord],
        writes: Sequence[WriteRecord],
        *,
        child: bool,
    ) -> Plan[bool]:
        """The put script; with `child`, False (and nothing stored) when the parent is gone."""
        tk = self.layout.thread(checkpoint.thread_id)
        if self._cluster:
            yield from self._register(tk)
        reply = yield self._put_request(checkpoint, blobs, writes, child=child)
        if child:
            if isinstance(reply, list):  # a MULTI/EXEC: the script's reply comes last
                reply = reply[-1]
            if not int(reply):
                return False
        if self.read_hints:
            self._hint(tk, checkpoint)
        return True

    def put_writes(self, writes: Sequence[WriteRecord]) -> Plan[None]:
        by_thread: dict[str, list[WriteRecord]] = {}
        for write in writes:
            by_thread.setdefault(write.thread_id, []).append(write)
        for thread_id, group in by_thread.items():  # LangGraph writes one thread at a time
            tk = self.layout.thread(thread_id)
            yield from self._register(tk)
            yield self._put_writes_request(tk, group, DIRECT_BLOB_BYTES)

    def _put_writes_request(
        self, tk: ThreadKeys, writes: Sequence[WriteRecord], direct: int
    ) -> Eval | Transaction:
        args: list[Any] = [tk.base, self.ttl_ms, time.time() if self.ttl_ms else 0, tk.member]
        beside = _append_writes(args, writes, tk.keys[4], direct)
        script = Eval(lua.PUT_WRITES, tk.keys, tuple(args))
        return _beside(beside, script, lambda: self._put_writes_request(tk, writes, _ALL_INLINE))

    # -- reads -----------------------------------------------------------------------------

    def _list_request(
        self, tk: ThreadKeys, index: bytes, skip: int, hi: bytes, lo: bytes, limit: int,
        ns_filter: bytes = b"", checks: Sequence[bytes] = (),
    ) -> Callable[..., Eval]:  # fmt: skip
        """The list script's request for an inline budget and, optionally, blob fields read
        beside it (`_read`)."""
        now = time.time() if self.refresh_ms else 0
        args = (tk.base, index, skip, hi, lo, limit, ns_filter, self.refresh_ms, now, tk.member)

        def request(budget: int, beside: tuple[bytes, ...] = ()) -> Eval:
            tail: tuple[Arg, ...] = (len(beside), *beside) if beside else ()
            return Eval(lua.LIST, tk.keys, (*args, budget, len(checks), *checks, *tail))

        return request

    def _read(
        self,
        tk: ThreadKeys,
        request: Callable[..., Eval],
        inline: int = PAGE_INLINE_BYTES,
        beside: tuple[bytes, ...] = (),
    ) -> Plan[list[CheckpointRow]]:
        """A read script on one thread, then one HMGET of the blobs it left out, if any.

        With `beside` (blob fields the rows are expected to read), the first attempt sends
        the script with an HMGET of those fields in one MULTI/EXEC and the script leaves
        them out: their bytes never pass through Lua (see `INLINE_BYTES`). A field the rows
        do not read costs its bytes on the wire; one they read that is not there, a second
        round trip, as without.
        """
        for attempt in range(_PAGE_RETRIES):
            last = attempt == _PAGE_RETRIES - 1
            got: dict[bytes, Any] = {}
            if beside and attempt == 0:
                replies = yield Transaction(
                    (request(inline, beside), Command(("HMGET", tk.keys[3], *beside))),
                    functools.partial(request, inline),  # the one-script form (no MULTI)
                )
                raw = replies[0]
                if len(replies) > 1:  # atomic with the script: a None is a blob not there
                    got = dict(zip(beside, replies[1], strict=True))
            else:
                raw = yield request(-1 if last else inline)
            deferred = []
            for row in raw:
                for j, value in enumerate(row[1]):
                    if isinstance(value, list) and len(value) == 1:  # not a repeat
                        if value[0] in got:
                            row[1][j] = got[value[0]]
                        else:
                            deferred.append((row[1], j, value[0]))
            if deferred:
                values = yield Command(("HMGET", tk.keys[3], *(d[2] for d in deferred)))
                if any(v is None for v in values):
                    continue  # deleted between the two reads (prune, delete): read again
                for (blobs, j, _field), value in zip(deferred, values, strict=True):
                    blobs[j] = value
            return _decode_rows(raw, tk)
        raise AssertionError("unreachable: the last attempt inlines every blob")

    def _hint(self, tk: ThreadKeys, record: CheckpointRecord) -> None:
        """Remember the blob fields of the latest checkpoint of `record`'s namespace."""
        if len(self._hints) >= _HINTS:  # bounded, whatever the number of threads
            self._hints.clear()
        ns = record.checkpoint_ns
        fields = tuple(blob_field(ns, ch, v) for ch, v in record.channel_versions.items())
        self._hints[(tk.base, seg(ns))] = fields

    def get(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str | None
    ) -> Plan[CheckpointRow | None]:
        tk = self.layout.thread(thread_id)
        ns = seg(checkpoint_ns)
        if checkpoint_id is None:
            hi, lo = b"(" + ns + b"\xff", b"[" + ns
        else:
            hi = lo = b"[" + ns + seg(checkpoint_id)
        hinted = self.read_hints and checkpoint_id is None
        beside = self._hints.get((tk.base, ns), ()) if hinted else ()
        request = self._list_request(tk, b"i", 0, hi, lo, 1)
        rows = yield from self._read(tk, request, INLINE_BYTES, beside)
        if hinted:
            if rows:
                self._hint(tk, rows[0].checkpoint)
            else:
                self._hints.pop((tk.base, ns), None)
        return rows[0] if rows else None

    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        scan = plan_scan(query)
        if query.thread_id is not None:
            rel = 0 if query.cursor is None else _rel(query.thread_id, query.cursor[1])
            tk = self.layout.thread(query.thread_id)
            request = self._list_request(
                tk, scan.index, scan.skip, scan.hi[rel + 1], scan.lo, query.limit,
                scan.ns, scan.checks,
            )  # fmt: skip
            return (yield from self._read(tk, request))
        buckets = yield from self._buckets()
        head: tuple[Any, ...] = (scan.index, scan.skip, *scan.hi, scan.lo)
        tail: tuple[Any, ...] = (
            seg(query.cursor[1]) if query.cursor else b"",
            query.limit,
            scan.ns,
        )
        checks: tuple[Any, ...] = (len(scan.checks), *scan.checks)
        if len(buckets) <= 1:
            keys = self.layout.bucket_keys(buckets[0] if buckets else b"#")
            raw = yield Eval(reg.SCAN, keys, (*head, *tail, b"0", *checks))
            return _decode_rows(raw, None)
        for _ in range(_PAGE_RETRIES):
            rows = yield from self._scan_buckets(buckets, (*head, *tail, b"1", *checks), query)
            if rows is not None:
                return rows
        rows = yield from self._scan_buckets(buckets, (*head, *tail, b"1", *checks), query, True)
        assert rows is not None
        return rows

    def _scan_buckets(
        self, buckets: list[bytes], args: tuple[Any, ...], query: ListQuery, last: bool = False
    ) -> Plan[list[CheckpointRow] | None]:
        """Two steps: each bucket's best candidates, then the rows of the overall best."""
        found = yield from self._per_bucket(
            [Eval(reg.SCAN, self.layout.bucket_keys(b), args) for b in buckets]
        )
        chosen = sorted(
            ((c[0], i, c[1], c[2]) for i, cands in enumerate(found) for c in cands),
            reverse=True,
        )[: query.limit]
        wanted: dict[int, list[bytes]] = {}
        for _key, i, base, k in chosen:
            wanted.setdefault(i, []).extend((base, k))
        order = sorted(wanted)
        fetched = yield from self._per_bucket(
            [Eval(reg.FETCH, self.layout.bucket_keys(buckets[i]), tuple(wanted[i])) for i in order]
        )
        rows_of: dict[tuple[bytes, bytes], Any] = {}
        for i, got in zip(order, fetched, strict=True):
            _resolve([r for r in got if r], None)  # references count rows of one reply
            pairs = wanted[i]
            for j, r in enumerate(got):
                rows_of[(pairs[2 * j], pairs[2 * j + 1])] = r
        raw = [rows_of.get((base, k)) for _key, _i, base, k in chosen]
        if not last and any(not r for r in raw):
            return None  # a checkpoint vanished between the steps: ask again
        return _decode_rows([r for r in raw if r], None, resolved=True)

    def history(
        self, thread_id: str, checkpoint_ns: str, checkpoint_id: str, limit: int
    ) -> Plan[list[CheckpointRow]]:
        tk = self.layout.thread(thread_id)
        k = seg(checkpoint_ns) + seg(checkpoint_id)
        args = (tk.base, k, limit, self.refresh_ms, time.time() if self.refresh_ms else 0)
        return (
            yield from self._read(tk, lambda b: Eval(lua.HISTORY, tk.keys, (*args, tk.member, b)))
        )

    def heads(self, thread_id: str) -> Plan[list[CheckpointRecord]]:
        tk = self.layout.thread(thread_id)
        raw = yield Eval(lua.HEADS, tk.keys, (tk.base,))
        try:
            return [decode_record(v) for v in raw]
        except UNREADABLE as exc:
            raise _damaged(tk, exc) from exc

    def checkpoint_keys(self, thread_id: str) -> Plan[list[tuple[str, str, str | None]]]:
        tk = self.layout.thread(thread_id)
        flat = yield Eval(lua.CHECKPOINT_KEYS, tk.keys, (tk.base,))
        keys = []
        for j in range(0, len(flat), 2):
            ns, cid, _ = split(bytes(flat[j]))
            parent = flat[j + 1]
            keys.append((unseg(ns), unseg(cid), None if parent is None else bytes(parent).decode()))
        return keys

    def list_threads(self, after: str | None, limit: int) -> Plan[list[ThreadInfo]]:
        if limit <= 0:
            return []
        buckets = yield from self._buckets()
        lo = b"(" + seg(after) + b"\xff" if after is not None else b"-"
        found = yield from self._per_bucket(
            [Eval(reg.THREADS, self.layout.bucket_keys(b), (lo, limit)) for b in buckets]
        )
        entries = sorted((e for got in found for e in got), key=lambda e: e[0])[:limit]
        infos = []
        for member, count, value, size, namespaces in entries:
            if not int(count):  # writes and no checkpoint: `value` is a checkpoint id's segment
                tid, nss = unseg(split(member)[0]), [unseg(ns) for ns in namespaces]
                known = int(size) if size is not None else None
                infos.append(writes_only_thread(tid, unseg(value), known, nss))
                continue
            latest = decode_record(value) if value else None
            infos.append(
                ThreadInfo(
                    thread_id=unseg(split(member)[0]),
                    checkpoint_count=int(count),
                    last_checkpoint_id=latest.checkpoint_id if latest else None,
                    updated_at=latest.created_at if latest else None,
                    size_bytes=int(size) if size is not None else None,
                    namespaces=tuple(sorted(unseg(ns) for ns in namespaces)),
                )
            )
        return infos

    # -- deletes, copies -------------------------------------------------------------------

    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        requests = []
        for thread_id in dict.fromkeys(thread_ids):
            tk = self.layout.thread(thread_id)
            requests.append(Eval(lua.DELETE_THREAD, tk.keys, (tk.base, tk.member)))
        yield from self._per_bucket(requests)

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        runs = tuple(seg(r) for r in dict.fromkeys(run_ids))
        if not runs:
            return
        buckets = yield from self._buckets()
        yield from self._per_bucket(
            [Eval(reg.DELETE_RUNS, self.layout.bucket_keys(b), runs) for b in buckets]
        )

    def prune(
        self,
        thread_id: str,
        keep: Collection[tuple[str, str]],
        upto: Mapping[str, str] | None = None,
        *,
        retention: bool = False,
    ) -> Plan[None]:
        tk = self.layout.thread(thread_id)
        kept = [seg(ns) + seg(cid) for ns, cid in keep]
        bounds = prune_fence(keep) if upto is None else upto
        last = [seg(ns) + seg(cid) for ns, cid in bounds.items()]
        args: tuple[Arg, ...] = (len(kept), *kept, len(last), *last)
        continued = 0
        while True:
            head = (tk.base, tk.member, self.prune_batch, continued)
            if not int((yield Eval(lua.PRUNE, tk.keys, (*head, *args)))):
                return
            continued = 1

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> Plan[None]:
        """Copy `_COPY_BATCH` checkpoints at a time, oldest first (parents before children,
        so the copy never shows a dangling parent), holding one batch of rows in memory:
        reading the whole thread first held every blob of it (39 MB for 10,000 small steps)."""
        source = self.layout.thread(source_thread_id)
        keys = yield from self.checkpoint_keys(source_thread_id)  # ascending: parents first
        if not keys:
            return
        yield from self._register(self.layout.thread(target_thread_id))
        bucket = self.layout.bucket_keys(source.bucket)
        for start in range(0, len(keys), _COPY_BATCH):
            wanted: list[bytes] = []
            for ns, cid, _parent in keys[start : start + _COPY_BATCH]:
                wanted.extend((source.base, seg(ns) + seg(cid)))
            raw = yield Eval(reg.FETCH, bucket, tuple(wanted))
            requests = []
            for row in _decode_rows([r for r in raw if r], source):  # false: deleted since
                put = self._put_request(
                    dataclasses.replace(row.checkpoint, thread_id=target_thread_id),
                    [dataclasses.replace(b, thread_id=target_thread_id) for b in row.blobs],
                    [dataclasses.replace(w, thread_id=target_thread_id) for w in row.writes],
                    direct=1 << 62,  # every blob through the script: a batch holds no MULTI
                )
                assert isinstance(put, Eval)
                requests.append(put)
            if requests:
                yield Batch(tuple(requests))

    def claim(self, name: str, holder: str, seconds: float) -> Plan[bool]:
        ms = max(1, math.ceil(seconds * 1000))
        taken = yield Eval(reg.LEASE, (self.layout.lease_key,), (name, holder, ms))
        return int(taken) == 1

    def drop_all(self) -> Plan[int]:
        """Delete every key under this prefix, found through the registry (no KEYS/SCAN).

        Returns:
            How many threads were deleted.
        """
        buckets = yield from self._buckets()
        counts = yield from self._per_bucket(
            [Eval(reg.DROP_BUCKET, self.layout.bucket_keys(b), ()) for b in buckets]
        )
        layout = self.layout
        yield Command(("DEL", layout.directory_key, layout.schema_key, layout.lease_key))
        self._known_buckets.clear()
        return sum(int(c) for c in counts)


class RedisClusterBackend(RedisBackend):
    """Plans for one key prefix on a Redis Cluster: one registry bucket per slot in use."""

    name = "redis-cluster"
    capabilities = Capabilities(metadata_filter=True, ttl=True, cluster=True)
    _cluster = True


def _decode_rows(
    raw: Sequence[Any], tk: ThreadKeys | None, *, resolved: bool = False
) -> list[CheckpointRow]:
    """The rows a read script returned (its `false` entries left out, blobs read beside it
    filled in), or a `DamagedDataError` for a value it cannot read. `resolved`: rows merged
    from several replies, each already `_resolve`d on its own (a reference counts the rows of
    its reply only)."""
    if not resolved:
        _resolve(raw, tk)
    try:
        return [decode_row(r) for r in raw]
    except UNREADABLE as exc:
        raise _damaged(tk, exc) from exc


def _resolve(raw: Sequence[Any], tk: ThreadKeys | None) -> None:
    """Fill in the blobs one script reply returned once for several of its rows.

    A script's `row` returns a blob the reply already holds as `[field, row, position]`
    (1-based, rows counted as the script made them, its `false` entries left out): the
    value at that earlier place, never itself such a triple. A list page of a long message
    list names the same segments from every checkpoint; they cross the network once a page.
    Raises `DamagedDataError` for a reference that names no value.
    """
    for row in raw:
        blobs = row[1]
        for j, value in enumerate(blobs):
            if type(value) is list:
                source: Any = value  # unread, unless the reference names a value
                if len(value) == 3 and 0 < value[1] <= len(raw):
                    place = raw[value[1] - 1][1]
                    if 0 < value[2] <= len(place):
                        source = place[value[2] - 1]
                if type(source) is list:
                    raise _damaged(tk, ValueError(f"blob {value[0]!r} of the reply is unread"))
                blobs[j] = source  # None: a blob not stored, as where it was first read


def _damaged(tk: ThreadKeys | None, exc: BaseException) -> DamagedDataError:
    return DamagedDataError(
        "a stored checkpoint record",
        thread_id=unseg(tk.tid) if tk is not None else None,
        detail=f"{type(exc).__name__}: {exc}",
    )


def _beside(
    beside: list[Command], script: Eval, all_inline: Callable[[], Eval | Transaction]
) -> Eval | Transaction:
    """`script` alone, or with the commands beside it in one MULTI/EXEC whose one-script form
    (`Transaction.inline`) is `all_inline()`, the same request built with every value inline."""
    if not beside:
        return script

    def inline() -> Eval:
        request = all_inline()
        assert isinstance(request, Eval)  # with every value inline nothing goes beside
        return request

    return Transaction((*beside, script), inline)


def _append_writes(
    args: list[Any], writes: Sequence[WriteRecord], key: bytes, direct: int
) -> list[Command]:
    """The script's write arguments; large writes become commands beside it (see blobs).

    The commands beside run before the script, so two writes of one field (a task's special
    channel written twice in one call) would land out of order: only the write that the
    `idx` rule keeps is sent, the last of a special field, the first of an ordinary one.
    """
    kept: dict[bytes, WriteRecord] = {}
    for write in writes:
        field = write_field(write)
        if write.idx < 0 or field not in kept:
            kept[field] = write
    beside = []
    args.append(len(kept))
    for field, write in kept.items():
        command = "HSET" if write.idx < 0 else "HSETNX"  # special writes replace, others never
        args.append(field)
        if len(write.data) >= direct:
            beside.append(Command((command, key, field, write_value(write))))
            args.append(b"2")
            args.append(b"")
        else:
            args.append(b"1" if write.idx < 0 else b"0")
            args.append(write_value(write))
    return beside

"""`list_page` against the memory backend (the reference) on the same random records.

Covers what the shared suite exercises only lightly: many threads (several registry buckets
on a cluster), namespaces, cursors that fall between threads, `before`, exact ids, and
metadata filters pushed down to the indexes (`source`, `step`, `run_id`) or not.
"""

from __future__ import annotations

import random
from typing import Any

from checkpoint_base import (
    BlobRecord,
    CheckpointRecord,
    ListQuery,
    MemorySaver,
    WriteRecord,
    run,
)
from checkpoint_base._metadata import decode_metadata, encode_metadata, matches_filter

THREADS = ["a", "ab", "b", "a{x}", "中", "z z", "\x00", "b:c"]
NAMESPACES = ["", "child:1", "child:10", "\x00ns"]


def _records(rng: random.Random) -> list[tuple[CheckpointRecord, list[BlobRecord], list[Any]]]:
    found = []
    ids = [f"1ef{rng.randrange(16**6):06x}-{i:04d}" for i in range(60)]
    for n, cid in enumerate(ids):
        tid, ns = rng.choice(THREADS), rng.choice(NAMESPACES)
        metadata = {
            "source": rng.choice(["loop", "input", "update"]),
            "step": rng.choice([1, 2, 2.0, 3, True, "2"]),
            "run_id": rng.choice(["r1", "r2", "r{3}"]),
            "other": rng.choice([1, 1.0, [1], {"k": None}]),
        }
        record = CheckpointRecord(
            thread_id=tid,
            checkpoint_ns=ns,
            checkpoint_id=cid,
            parent_checkpoint_id=None,
            type="msgpack",
            checkpoint=b"cp-%d" % n,
            metadata=encode_metadata(metadata),
            channel_versions={"ch": f"{n:032}.5", "ch\x00b": "1"},
            run_id=str(metadata["run_id"]),
            created_at=1.5 + n,
        )
        blobs = [BlobRecord(tid, ns, "ch", f"{n:032}.5", "msgpack", b"v%d" % n)]
        writes = [WriteRecord(tid, ns, cid, "task", 0, "ch", "msgpack", b"w%d" % n, "p")]
        found.append((record, blobs, writes))
    return found


def _key(row: Any) -> tuple[Any, ...]:
    cp = row.checkpoint
    return (
        cp.thread_id,
        cp.checkpoint_ns,
        cp.checkpoint_id,
        cp.checkpoint,
        tuple(sorted(cp.channel_versions.items())),
        cp.run_id,
        tuple(sorted((b.channel, b.version, b.data) for b in row.blobs)),
        tuple(sorted((w.task_id, w.idx, w.data) for w in row.writes)),
    )


def _queries(rng: random.Random, ids: list[str]) -> list[ListQuery]:
    queries = []
    for _ in range(150):
        flt = None
        if rng.random() < 0.4:
            flt = {
                k: v
                for k, v in (
                    ("source", rng.choice(["loop", "input"])),
                    ("step", rng.choice([2, 2.0, True, "2"])),
                    ("run_id", rng.choice(["r1", "r{3}"])),
                    ("other", rng.choice([1, [1]])),
                )
                if rng.random() < 0.5
            } or None
        cursor = None
        if rng.random() < 0.5:
            cursor = (rng.choice(ids), rng.choice(THREADS), rng.choice(NAMESPACES))
        queries.append(
            ListQuery(
                thread_id=rng.choice([None, *THREADS]),
                checkpoint_ns=rng.choice([None, *NAMESPACES]),
                checkpoint_id=rng.choice(ids) if rng.random() < 0.15 else None,
                before=rng.choice(ids) if rng.random() < 0.3 else None,
                cursor=cursor,
                filter=flt,
                limit=rng.choice([1, 3, 7, 100]),
            )
        )
    return queries


def test_list_page_matches_the_memory_backend(open_saver: Any) -> None:
    rng = random.Random(7)
    saver = open_saver()
    memory = MemorySaver()
    data = _records(rng)
    for record, blobs, writes in data:
        for target in (saver, memory):
            target._run(target.backend.put_checkpoint(record, blobs, writes))
    ids = [r.checkpoint_id for r, _, _ in data]
    for query in _queries(rng, ids):
        ours = saver._run(saver.backend.list_page(query))
        flt = query.filter
        ours = [r for r in ours if matches_filter(decode_metadata(r.checkpoint.metadata), flt)]
        # The memory backend does not filter: filter its unbounded answer, then cut.
        reference = run(
            memory.backend.list_page(
                ListQuery(
                    query.thread_id,
                    query.checkpoint_ns,
                    query.checkpoint_id,
                    query.before,
                    query.cursor,
                    None,
                    10_000,
                )
            ),
            memory._executor._apply,  # type: ignore[union-attr]
        )
        reference = [
            r for r in reference if matches_filter(decode_metadata(r.checkpoint.metadata), flt)
        ]
        if flt and set(flt) <= {"source", "step", "run_id"}:
            # Fully pushed down: the page is exactly the first `limit` matching rows.
            assert [_key(r) for r in ours] == [_key(r) for r in reference[: query.limit]], query
        else:
            # A superset page: what survives the filter is a prefix of the reference.
            assert [_key(r) for r in ours] == [_key(r) for r in reference[: len(ours)]], query


def test_heads_history_and_threads(open_saver: Any) -> None:
    rng = random.Random(11)
    saver = open_saver()
    memory = MemorySaver()
    for record, blobs, writes in _records(rng):
        for target in (saver, memory):
            target._run(target.backend.put_checkpoint(record, blobs, writes))
    for tid in THREADS:
        ours = sorted(
            (r.checkpoint_ns, r.checkpoint_id) for r in saver._run(saver.backend.heads(tid))
        )
        ref = sorted(
            (r.checkpoint_ns, r.checkpoint_id) for r in memory._run(memory.backend.heads(tid))
        )
        assert ours == ref
    ours_threads = saver._run(saver.backend.list_threads(None, 100))
    ref_threads = memory._run(memory.backend.list_threads(None, 100))
    strip = [
        (t.thread_id, t.checkpoint_count, t.last_checkpoint_id, t.namespaces) for t in ref_threads
    ]
    assert [
        (t.thread_id, t.checkpoint_count, t.last_checkpoint_id, t.namespaces) for t in ours_threads
    ] == strip
    page = saver._run(saver.backend.list_threads("a{x}", 2))
    assert [t.thread_id for t in page] == [t[0] for t in strip if t[0] > "a{x}"][:2]

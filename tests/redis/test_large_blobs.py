"""Blobs past a read script's inline budget come by a second request, and still read right."""

from __future__ import annotations

from typing import Any

from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6

from checkpoint_base import ListQuery
from checkpoint_redis import RedisBackend
from checkpoint_redis._backend import INLINE_BYTES, PAGE_INLINE_BYTES
from checkpoint_redis._requests import Command, Eval


def _put_big(saver: Any, thread_id: str, n: int, size: int) -> list[Any]:
    configs, parent = [], None
    for step in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        cp["channel_values"] = {"big": bytes([step]) * size, "small": step}
        cp["channel_versions"] = {"big": str(step + 1), "small": str(step + 1)}
        cfg: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}
        if parent:
            cfg["configurable"]["checkpoint_id"] = parent
        stored = saver.put(cfg, cp, {"step": step}, dict(cp["channel_versions"]))
        parent = stored["configurable"]["checkpoint_id"]
        configs.append(stored)
    return configs


def test_pages_larger_than_the_inline_budget(open_saver: Any) -> None:
    saver = open_saver()
    size = INLINE_BYTES // 3 + 1000  # over both budgets: three fill a get's, one a page's
    assert size > PAGE_INLINE_BYTES
    configs = _put_big(saver, "big", 8, size)
    listed = list(saver.list({"configurable": {"thread_id": "big"}}, limit=6))
    assert [t.checkpoint["channel_values"]["small"] for t in listed] == [7, 6, 5, 4, 3, 2]
    for tup in listed:
        step = tup.checkpoint["channel_values"]["small"]
        assert tup.checkpoint["channel_values"]["big"] == bytes([step]) * size
    latest = saver.get_tuple({"configurable": {"thread_id": "big"}})
    assert latest is not None and latest.checkpoint["channel_values"]["big"] == bytes([7]) * size
    walk = saver._run(
        saver.backend.history("big", "", configs[-1]["configurable"]["checkpoint_id"], 5)
    )
    assert [len(r.blobs) for r in walk] == [2] * 5
    big = [b.data for r in walk for b in r.blobs if b.channel == "big"]
    assert len(big) == 5 and all(len(data) >= size for data in big)


def _row(blob: Any) -> list[Any]:
    from checkpoint_base import CheckpointRecord
    from checkpoint_redis._codec import pack_checkpoint

    record = CheckpointRecord("t", "", "1", None, "msgpack", b"c", b"{}", {"big": "1"}, None, 1.0)
    return [pack_checkpoint(record, []), [blob], []]


def test_a_blob_deleted_between_the_two_requests_is_read_again() -> None:
    """Plan level: the HMGET finds the blob gone (a prune ran): the read starts over."""
    plan = RedisBackend().get("t", "", None)
    first = next(plan)
    assert isinstance(first, Eval) and first.args[10] == INLINE_BYTES
    follow = plan.send([_row([b"field"])])
    assert isinstance(follow, Command) and follow.args[0] == "HMGET"
    again = plan.send([None])
    assert isinstance(again, Eval) and again.script is first.script
    last = plan.send([_row([b"field"])])  # deferred again, but present this time
    assert isinstance(last, Command)
    try:
        plan.send([b"\x07msgpackDATA"])
    except StopIteration as stop:
        row = stop.value
    assert row is not None and row.blobs[0].data == b"DATA"


def test_the_last_attempt_inlines_everything() -> None:
    plan = RedisBackend().list_page(ListQuery(thread_id="t", checkpoint_ns="", limit=3))
    request = next(plan)
    for _ in range(2):
        assert isinstance(request, Eval) and request.args[10] == PAGE_INLINE_BYTES
        assert isinstance(plan.send([_row([b"f"])]), Command)
        request = plan.send([None])
    assert isinstance(request, Eval) and request.args[10] == -1


def test_big_blobs_go_beside_the_script_atomically(open_saver: Any, raw: Any) -> None:
    """Blobs of DIRECT_BLOB_BYTES and more: HSETNX in the put's MULTI/EXEC, scripts or not."""
    from checkpoint_redis._backend import DIRECT_BLOB_BYTES

    from .test_connect_and_prefix import _flush_scripts

    saver = open_saver()
    _flush_scripts(raw)  # EVALSHA fails inside EXEC: the put runs again with EVAL
    _put_big(saver, "direct", 3, DIRECT_BLOB_BYTES * 2)
    blobs_key = saver.backend.layout.thread("direct").keys[3]
    assert raw.hlen(blobs_key) == 6
    latest = saver.get_tuple({"configurable": {"thread_id": "direct"}})
    assert latest is not None
    assert latest.checkpoint["channel_values"]["big"] == bytes([2]) * DIRECT_BLOB_BYTES * 2
    saver.copy_thread("direct", "copy")
    copied = saver.get_tuple({"configurable": {"thread_id": "copy"}})
    assert copied is not None and copied.checkpoint == latest.checkpoint


async def test_big_blobs_async(url: str, raw: Any) -> None:
    from checkpoint_redis import AsyncRedisSaver
    from checkpoint_redis._testing import drop_prefix, fresh_prefix

    from .test_connect_and_prefix import _flush_scripts

    prefix = fresh_prefix()
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            await saver.asetup()
            _flush_scripts(raw)
            cp = empty_checkpoint()
            cp["id"] = str(uuid6(clock_seq=1))
            cp["channel_values"] = {"big": b"z" * 100_000}
            cp["channel_versions"] = {"big": "1"}
            config = {"configurable": {"thread_id": "a", "checkpoint_ns": ""}}
            await saver.aput(config, cp, {}, {"big": "1"})
            got = await saver.aget_tuple(config)
            assert got is not None and got.checkpoint["channel_values"]["big"] == b"z" * 100_000
    finally:
        drop_prefix(url, prefix)


def test_large_writes_beside_the_script(open_saver: Any) -> None:
    from checkpoint_redis._backend import DIRECT_BLOB_BYTES

    saver = open_saver()
    (config,) = _put_big(saver, "w", 1, 10)
    big = "q" * DIRECT_BLOB_BYTES * 3
    saver.put_writes(config, [("a", big), ("b", 1)], "task")
    saver.put_writes(config, [("a", "other")], "task")  # idx 0 exists: kept
    saver.put_writes(config, [("__error__", big)], "task")
    saver.put_writes(config, [("__error__", "replaced")], "task")  # special: replaced
    got = saver.get_tuple(config)
    assert got is not None
    assert sorted(got.pending_writes) == [
        ("task", "__error__", "replaced"),
        ("task", "a", big),
        ("task", "b", 1),
    ]
    saver.delete_thread("w")
    assert saver.get_tuple(config) is None


def test_a_special_write_repeated_in_one_call_keeps_the_last(open_saver: Any) -> None:
    """Two writes of one special channel in one call: the last wins, as in every backend,
    also when only the last is large enough to go beside the script (which runs first)."""
    from checkpoint_redis._backend import DIRECT_BLOB_BYTES

    saver = open_saver()
    config, other = _put_big(saver, "w", 2, 10)
    big = "q" * DIRECT_BLOB_BYTES * 3
    saver.put_writes(config, [("__error__", "small"), ("__error__", big)], "task")
    saver.put_writes(other, [("__error__", big), ("__error__", "small")], "task")
    got, got_other = saver.get_tuple(config), saver.get_tuple(other)
    assert got is not None and got.pending_writes == [("task", "__error__", big)]
    assert got_other is not None and got_other.pending_writes == [("task", "__error__", "small")]


async def test_large_writes_async(url: str, raw: Any) -> None:
    """The async flavor; on a cluster its puts and writes run as one script each (`inline`)."""
    from checkpoint_redis import AsyncRedisSaver
    from checkpoint_redis._backend import DIRECT_BLOB_BYTES
    from checkpoint_redis._testing import drop_prefix, fresh_prefix

    prefix = fresh_prefix()
    big = "q" * DIRECT_BLOB_BYTES * 3
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            await saver.asetup()
            cp = empty_checkpoint()
            cp["id"] = str(uuid6(clock_seq=1))
            cp["channel_values"] = {"big": big, "small": 1}
            cp["channel_versions"] = {"big": "1", "small": "1"}
            base = {"configurable": {"thread_id": "w", "checkpoint_ns": ""}}
            config = await saver.aput(base, cp, {}, {"big": "1", "small": "1"})
            await saver.aput_writes(config, [("a", big), ("b", 1)], "task")
            await saver.aput_writes(config, [("a", "other")], "task")  # idx 0 exists: kept
            await saver.aput_writes(config, [("__error__", big)], "task")
            await saver.aput_writes(config, [("__error__", "replaced")], "task")  # replaced
            got = await saver.aget_tuple(config)
            assert got is not None and got.checkpoint["channel_values"]["big"] == big
            assert sorted(got.pending_writes) == [
                ("task", "__error__", "replaced"),
                ("task", "a", big),
                ("task", "b", 1),
            ]
    finally:
        drop_prefix(url, prefix)


def test_inline_form_stores_what_the_transaction_stores(url: str, raw: Any) -> None:
    """`Transaction.inline` (one script) and the MULTI/EXEC leave the same hashes behind."""
    from checkpoint_base import BlobRecord, CheckpointRecord, WriteRecord
    from checkpoint_redis._backend import DIRECT_BLOB_BYTES, RedisClusterBackend
    from checkpoint_redis._errors import RetryPolicy
    from checkpoint_redis._executor import RedisExecutor
    from checkpoint_redis._requests import Transaction
    from checkpoint_redis._testing import drop_prefix, fresh_prefix

    big = b"x" * DIRECT_BLOB_BYTES * 2
    record = CheckpointRecord("t", "", "1", None, "msgpack", b"c", b"{}", {"big": "1"}, "r", 1.0)
    blobs = [BlobRecord("t", "", "big", "1", "bytes", big)]
    writes = [
        WriteRecord("t", "", "1", "task", 0, "a", "bytes", big, ""),
        WriteRecord("t", "", "1", "task", -1, "__error__", "bytes", big, ""),
        WriteRecord("t", "", "1", "task", 1, "b", "bytes", b"small", ""),
    ]
    executor = RedisExecutor(raw, owned=False, retry=RetryPolicy(timeout=5.0))
    cluster = kind_is_cluster(raw)
    stored = []
    prefixes = [fresh_prefix(), fresh_prefix()]
    try:
        for use_inline, prefix in zip((False, True), prefixes, strict=True):
            backend = (RedisClusterBackend if cluster else RedisBackend)(key_prefix=prefix)
            request = backend._put_request(record, blobs, writes)
            assert isinstance(request, Transaction) and request.inline is not None
            executor.run(_one(request.inline() if use_inline else request))
            keys = backend.layout.thread("t").keys
            stored.append(
                [raw.hgetall(keys[i]) for i in (0, 3, 4)]  # checkpoints, blobs, writes
                + [raw.zrange(keys[i], 0, -1) for i in (1, 5)]
            )
        assert stored[0] == stored[1]
        assert len(stored[0][1]) == 1 and len(stored[0][2]) == 3
    finally:
        for prefix in prefixes:
            drop_prefix(url, prefix)


def kind_is_cluster(client: Any) -> bool:
    from redis.cluster import RedisCluster

    return isinstance(client, RedisCluster)


def _one(request: Any) -> Any:
    yield request

"""A Redis server at `maxmemory` that evicts nothing: writes refused whole, reads go on.

With `maxmemory-policy noeviction` (what `setup()` asks for; the others may drop part of a
thread) a full server refuses every command that may take memory. A put or put_writes then
fails with a `StorageFullError` saying how to make room, and nothing of it is stored: the
put is one script or one MULTI/EXEC, and Redis refuses a script's first write or a queued
command before anything applies. Reads must go on, and deleting a thread must work, since
that is how room is made.

Reads broke: a read that sends a script and an HMGET together does it in one MULTI/EXEC,
and Redis (7.0 here) refuses every command queued in MULTI while it is over `maxmemory`,
reads included, so `get_tuple` and `list` failed with "OOM command not allowed" until
memory was freed (Valkey 9.1 queues them). Now such a transaction runs again as its
one-script form, outside MULTI, where a full server refuses only writes; also when the
server has lost the saver's scripts (a restart, a failover, `SCRIPT FLUSH`) and the script
is sent by its text.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from checkpoint_base import StorageError, StorageFullError
from checkpoint_base.testing import servers
from checkpoint_base.testing._redis import LocalRedis, command, info
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._testing import drop_prefix, fresh_prefix

from ..conformance.builders import checkpoint, cid, config, new_thread
from ..storage_full import arefused_when_full, refused_when_full
from .conftest import keys_under

_BIG = "x" * 200_000


def _primaries(raw: Any) -> dict[str, Any]:
    return {"target_nodes": RedisCluster.PRIMARIES} if isinstance(raw, RedisCluster) else {}


def _settings(raw: Any) -> dict[str, Any]:
    found = raw.config_get("maxmemory*", **_primaries(raw))
    if isinstance(raw, RedisCluster) and "maxmemory" not in found:  # {node: {name: value}}
        found = next(iter(found.values()))
    return dict(found)


@pytest.fixture
def full(raw: Any) -> Iterator[Any]:
    """A function that fills every master (maxmemory of 1 byte, noeviction) and one that
    empties their script caches; the settings are restored after the test."""
    before = _settings(raw)
    nodes = _primaries(raw)

    def fill() -> None:
        raw.config_set("maxmemory-policy", "noeviction", **nodes)
        raw.config_set("maxmemory", 1, **nodes)

    def room() -> None:
        raw.config_set("maxmemory", before["maxmemory"], **nodes)
        raw.config_set("maxmemory-policy", before["maxmemory-policy"], **nodes)

    try:
        yield fill, room
    finally:
        room()


def _refused(exc: StorageFullError) -> None:
    message = str(exc)
    assert message.startswith("Redis is out of memory (OutOfMemoryError: "), message
    assert "maxmemory" in message and "nothing of this call was stored" in message, message
    assert "ttl=" in message and "checkpointers delete --idle" in message, message


def _flush_scripts(raw: Any) -> None:
    raw.script_flush()  # on a cluster, redis-py sends it to every master


def test_sync(raw: Any, open_saver: Any, full: Any) -> None:
    fill, room = full
    saver: RedisSaver = open_saver()
    prefix = saver.backend.layout.prefix.decode()
    tid, other = new_thread(), new_thread()
    first = saver.put(config(tid), checkpoint({"a": 1, "b": "small"}), {}, {"a": 1, "b": 1})
    saver.put_writes(first, [("a", 2)], "task-0")
    saver.put(config(other), checkpoint({"a": 1}), {}, {"a": 1})
    before = keys_under(raw, prefix)
    fill()
    refused_when_full(saver, first, _BIG, _refused)
    assert keys_under(raw, prefix) == before
    # Reads go on, also once the server has lost the saver's scripts.
    for flush in (False, True):
        if flush:
            _flush_scripts(raw)
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(first)
        assert latest.checkpoint["channel_values"] == {"a": 1, "b": "small"}
        assert latest.pending_writes == [("task-0", "a", 2)]
        assert [cid(t.config) for t in saver.list(config(tid))] == [cid(first)]
    # Deleting a thread makes room, full or not.
    saver.delete_thread(other)
    assert saver.get_tuple(config(other)) is None
    room()
    big = checkpoint({"a": 1, "b": _BIG}, {"a": 1, "b": 2})
    second = saver.put(first, big, {"step": 1}, {"b": 2})
    latest = saver.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(second)
    assert latest.checkpoint["channel_values"] == {"a": 1, "b": _BIG}


async def test_async(url: str, raw: Any, open_saver: Any, full: Any) -> None:
    fill, room = full
    prefix = open_saver().backend.layout.prefix.decode()
    tid = new_thread()
    async with AsyncRedisSaver.from_url(url, key_prefix=prefix) as saver:
        first = await saver.aput(config(tid), checkpoint({"b": "small"}), {"step": 0}, {"b": 1})
        before = keys_under(raw, prefix)
        fill()
        await arefused_when_full(saver, first, _BIG, _refused)
        assert keys_under(raw, prefix) == before
        _flush_scripts(raw)
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(first)
        assert [t.checkpoint["channel_values"] async for t in saver.alist(config(tid))] == [
            {"b": "small"}
        ]
        room()
        second = await saver.aput(first, checkpoint({"b": _BIG}, {"b": 2}), {}, {"b": 2})
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(second)
        assert latest.checkpoint["channel_values"] == {"b": _BIG}


def test_reads_that_renew_the_time_to_live(raw: Any, open_saver: Any, full: Any) -> None:
    """A read of a saver with `ttl` and `refresh_on_read` renews the thread's keys in its one
    script; a full server refuses that renewal, which failed the read. Now the read goes on
    without it, and renews again once there is room."""
    fill, room = full
    saver: RedisSaver = open_saver(ttl=60, refresh_on_read=True)
    prefix = saver.backend.layout.prefix.decode()
    tid = new_thread()
    first = saver.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    fill()
    latest = saver.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(first)
    assert [cid(t.config) for t in saver.list(config(tid))] == [cid(first)]
    room()
    keys = [key for key in keys_under(raw, prefix) if raw.pttl(key) > 0]  # not the schema's
    assert len(keys) >= 5  # the thread's, and its bucket's
    for key in keys:
        raw.pexpire(key, 10_000)
    assert saver.get_tuple(config(tid)) is not None
    assert all(raw.pttl(key) > 50_000 for key in keys)  # renewed to about 60 s


def test_a_renewal_that_fails_otherwise_fails_the_read(raw: Any, open_saver: Any) -> None:
    """Only a full server's refusal is let go: a renewal that fails for another reason (here
    the expiry index of the thread's bucket holds another application's string) fails the
    read, as before, rather than leave the thread's time to live silently unkept."""
    saver: RedisSaver = open_saver(ttl=60, refresh_on_read=True)
    prefix = saver.backend.layout.prefix.decode()
    tid = new_thread()
    saver.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    (index,) = [key for key in keys_under(raw, prefix) if key.endswith(b":exp")]
    raw.delete(index)
    raw.set(index, b"another application's value")
    try:
        with pytest.raises(StorageError, match="WRONGTYPE"):
            saver.get_tuple(config(tid))
    finally:
        raw.delete(index)  # the fixture's drop of the prefix reads that index


@pytest.fixture
def replica() -> Iterator[str]:
    """The URL of a replica of the single test server, in sync with it; stopped after."""
    master = urllib.parse.urlsplit(servers.redis_url())
    if master.hostname != "127.0.0.1" or master.password:
        pytest.skip("the test server is not a local one this run may replicate")
    server = LocalRedis(durable=False)
    server.start()
    try:
        command(server.port, "REPLICAOF", "127.0.0.1", str(master.port))
        deadline = time.monotonic() + 30
        while info(server.port, "replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not sync"
            time.sleep(0.05)
        yield server.url
    finally:
        server.stop()


def test_renewing_reads_on_a_replica(replica: str) -> None:
    """A replica takes no writes either: a saver reading from it (a reporting process on a
    read replica, with the application's `ttl` and `refresh_on_read`) reads without renewing;
    the renewal failed the read. Its writes are refused, named as what they are."""
    prefix, tid = fresh_prefix(), new_thread()
    with RedisSaver.from_conn_string(servers.redis_url(), key_prefix=prefix, ttl=60) as writer:
        writer.setup()
        first = writer.put(config(tid), checkpoint({"a": 1}), {}, {"a": 1})
    options = {"ttl": 60, "refresh_on_read": True, "retry_timeout": 0.5}
    try:
        _read_from(replica, prefix, tid, cid(first), options)
    finally:
        drop_prefix(servers.redis_url(), prefix)


def _read_from(replica: str, prefix: str, tid: str, first: str, options: dict[str, Any]) -> None:
    with RedisSaver.from_conn_string(replica, key_prefix=prefix, **options) as reader:
        deadline = time.monotonic() + 10
        while (latest := reader.get_tuple(config(tid))) is None:  # the replica catches up
            assert time.monotonic() < deadline, "the replica never got the checkpoint"
            time.sleep(0.05)
        assert cid(latest.config) == first
        assert [cid(t.config) for t in reader.list(config(tid))] == [first]
        with pytest.raises(StorageError, match="read only replica"):
            reader.put(config(new_thread()), checkpoint({"a": 1}), {}, {"a": 1})

"""A value longer than the server takes in one argument: a `ValueTooLargeError` at once.

Redis refuses a bulk argument longer than `proto-max-bulk-len` (512 MB by default; lowered
here to its floor, 1 MB) by closing the connection. Before, the executor took that for a
lost server: it sent the whole request again and again for its retry budget, then raised
`StorageUnavailableError` ("unreachable or failing over"), which callers retry too; a
cluster node's "Protocol error: invalid bulk length" came back as a bare "Redis error".
Now the put fails at once with an error naming the checkpoint, the channel, the size and
the server's limit; nothing of the checkpoint is stored, and the saver goes on working.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from redis.cluster import RedisCluster

from checkpoint_base import StorageUnavailableError, ValueTooLargeError
from checkpoint_redis import AsyncRedisSaver, RedisSaver

from ..conformance.builders import checkpoint, cid, config, new_thread
from .conftest import keys_under

_LIMIT = 1 << 20  # the lowest proto-max-bulk-len Redis accepts
_BIG = "x" * (2 * _LIMIT)


@pytest.fixture
def low_limit(raw: Any) -> Iterator[None]:
    """proto-max-bulk-len at 1 MB on every node while the test runs."""
    nodes = {"target_nodes": RedisCluster.ALL_NODES} if isinstance(raw, RedisCluster) else {}
    old = raw.config_get("proto-max-bulk-len", **nodes)
    if isinstance(raw, RedisCluster):  # {node: {name: value}} or one merged {name: value}
        old = next(iter(old.values())) if "proto-max-bulk-len" not in old else old
    raw.config_set("proto-max-bulk-len", _LIMIT, **nodes)
    try:
        yield
    finally:
        raw.config_set("proto-max-bulk-len", old["proto-max-bulk-len"], **nodes)


def _refused(exc: ValueTooLargeError, tid: str, what: str) -> None:
    message = str(exc)
    assert not isinstance(exc, StorageUnavailableError)
    assert repr(tid) in message and what in message, message
    assert f"{len(_BIG) + 5:,} bytes" in message, message  # the serialized value: 5 bytes more
    assert "proto-max-bulk-len" in message, message


@pytest.mark.usefixtures("low_limit")
def test_sync_put_of_a_value_past_the_limit(url: str, raw: Any, open_saver: Any) -> None:
    saver: RedisSaver = open_saver()
    prefix = saver.backend.layout.prefix.decode()
    tid = new_thread()
    first = saver.put(
        config(tid), checkpoint({"a": 1, "b": "small"}), {"step": 0}, {"a": 1, "b": 1}
    )
    before = keys_under(raw, prefix)
    started = time.monotonic()
    with pytest.raises(ValueTooLargeError) as raised:
        saver.put(first, checkpoint({"a": 1, "b": _BIG}, {"a": 1, "b": 2}), {"step": 1}, {"b": 2})
    _refused(raised.value, tid, "channel 'b'")
    with pytest.raises(ValueTooLargeError) as raised:
        saver.put_writes(first, [("b", _BIG)], "task-1")
    _refused(raised.value, tid, "the write to channel 'b'")
    assert time.monotonic() - started < 2  # no retries for the failover budget
    assert keys_under(raw, prefix) == before
    latest = saver.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(first)
    assert latest.checkpoint["channel_values"] == {"a": 1, "b": "small"}
    assert latest.pending_writes == []
    # The connection the server closed is replaced: the saver goes on.
    fine = checkpoint({"a": 1, "b": "fine"}, {"a": 1, "b": 2})
    second = saver.put(first, fine, {"step": 1}, {"b": 2})
    latest = saver.get_tuple(config(tid))
    assert latest is not None and cid(latest.config) == cid(second)
    assert latest.checkpoint["channel_values"] == {"a": 1, "b": "fine"}


@pytest.mark.usefixtures("low_limit")
async def test_async_put_of_a_value_past_the_limit(url: str, raw: Any, open_saver: Any) -> None:
    inspector: RedisSaver = open_saver()
    prefix = inspector.backend.layout.prefix.decode()
    tid = new_thread()
    async with AsyncRedisSaver.from_url(url, key_prefix=prefix) as saver:
        first = await saver.aput(config(tid), checkpoint({"b": "small"}), {"step": 0}, {"b": 1})
        before = keys_under(raw, prefix)
        started = time.monotonic()
        with pytest.raises(ValueTooLargeError) as raised:
            await saver.aput(first, checkpoint({"b": _BIG}, {"b": 2}), {"step": 1}, {"b": 2})
        _refused(raised.value, tid, "channel 'b'")
        with pytest.raises(ValueTooLargeError) as raised:
            await saver.aput_writes(first, [("b", _BIG)], "task-1")
        _refused(raised.value, tid, "the write to channel 'b'")
        assert time.monotonic() - started < 2
        assert keys_under(raw, prefix) == before
        second = await saver.aput(first, checkpoint({"b": "fine"}, {"b": 2}), {"step": 1}, {"b": 2})
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(second)
        assert latest.checkpoint["channel_values"] == {"b": "fine"}

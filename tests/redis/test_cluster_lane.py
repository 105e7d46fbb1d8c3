"""A saver's own cluster client sends scripts on the lane of the keys' master (`_cluster_lane.py`).

What must hold: each request goes to the master of its slot on a kept connection; a request
the lane sends to the wrong node (a stale slot map: MOVED) is answered through redis-py's
routing all the same; a client you pass in keeps going through redis-py. (The failover of a
master during a run is `test_cluster_failover.py`, on savers built from URLs: with lanes.
Which clients get lanes: `test_lane.py`.)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aredis

from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._lane import AsyncLane, Lane
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from tests.conformance.builders import checkpoint, config

from .conftest import server_url

THREADS = [f"thread-{i}" for i in range(12)]  # spread over the three masters


def _put_args(thread_id: str, value: str) -> tuple[Any, ...]:
    return config(thread_id), checkpoint({"owner": value}), {"step": 1}, {"owner": 1}


def _owner(tup: Any) -> str:
    assert tup is not None
    return str(tup.checkpoint["channel_values"]["owner"])


@pytest.fixture
def url() -> str:
    return server_url("cluster")


@pytest.fixture
def saver(url: str) -> Iterator[RedisSaver]:
    prefix = fresh_prefix()
    saver = RedisSaver.from_url(url, key_prefix=prefix, retry_timeout=5)
    try:
        saver.setup()
        yield saver
    finally:
        saver.close()
        drop_prefix(url, prefix)


def _masters(client: Any) -> list[Any]:
    return sorted(client.get_primaries(), key=lambda node: node.name)


def test_scripts_go_to_each_slots_master_on_kept_connections(saver: RedisSaver) -> None:
    lanes = saver._executor._lanes
    assert lanes is not None
    big = "b" * 50_000  # beside the script: a MULTI/EXEC on the lane
    for thread_id in THREADS:
        saver.put(*_put_args(thread_id, f"{thread_id} {big}"))
    for thread_id in THREADS:
        assert _owner(saver.get_tuple(config(thread_id))) == f"{thread_id} {big}"
    client = saver._executor.client
    masters = {node.name for node in _masters(client)}
    assert set(lanes._lanes) == masters  # twelve threads reached all three masters
    for name, lane in lanes._lanes.items():
        assert lane._idle, f"the lane of {name} kept no connection"
        (conn,) = lane._idle
        assert f"{conn.host}:{conn.port}" == name
        ids = {int(lane.call("CLIENT", "ID")) for _ in range(3)}
        assert len(ids) == 1  # the same connection, every time


def test_a_stale_slot_map_is_answered_through_redis_py(
    saver: RedisSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    lanes = saver._executor._lanes
    assert lanes is not None
    client = lanes._client
    masters = _masters(client)
    right = client.get_node_from_key

    def wrong(key: Any, replica: bool = False) -> Any:
        node = right(key)
        return next(m for m in masters if m.name != node.name)  # MOVED, every time

    monkeypatch.setattr(client, "get_node_from_key", wrong)
    big = "m" * 50_000
    for thread_id in THREADS[:4]:
        saver.put(*_put_args(thread_id, thread_id))  # a script alone
        saver.put(*_put_args(thread_id + "-big", big))  # a transaction
    for thread_id in THREADS[:4]:
        assert _owner(saver.get_tuple(config(thread_id))) == thread_id
        assert _owner(saver.get_tuple(config(thread_id + "-big"))) == big
    assert [t.config["configurable"]["thread_id"] for t in saver.list(config(THREADS[0]))] == [
        THREADS[0]
    ]


async def test_async_scripts_go_to_each_slots_master_and_survive_a_stale_map(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    prefix = fresh_prefix()
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            await saver.asetup()
            lanes = saver._aexecutor._lanes
            assert lanes is not None
            big = "a" * 50_000
            for thread_id in THREADS:
                await saver.aput(*_put_args(thread_id, f"{thread_id} {big}"))
            for thread_id in THREADS:
                assert _owner(await saver.aget_tuple(config(thread_id))) == f"{thread_id} {big}"
            client = saver._aexecutor.client
            masters = sorted(client.get_primaries(), key=lambda node: node.name)
            assert set(lanes._lanes) == {m.name for m in masters}
            for lane in lanes._lanes.values():
                ids = {int(await lane.call("CLIENT", "ID")) for _ in range(3)}
                assert len(ids) == 1

            right = client.get_node_from_key

            def wrong(key: Any, replica: bool = False) -> Any:
                node = right(key)
                return next(m for m in masters if m.name != node.name)

            monkeypatch.setattr(client, "get_node_from_key", wrong)
            for thread_id in THREADS[:4]:
                await saver.aput(*_put_args(thread_id + "-small", thread_id))
                await saver.aput(*_put_args(thread_id + "-big", big))
            for thread_id in THREADS[:4]:
                assert _owner(await saver.aget_tuple(config(thread_id + "-small"))) == thread_id
                assert _owner(await saver.aget_tuple(config(thread_id + "-big"))) == big
    finally:
        drop_prefix(url, prefix)


def test_the_lane_of_a_node_that_left_is_closed_when_the_map_changes(
    saver: RedisSaver,
) -> None:
    lanes = saver._executor._lanes
    assert lanes is not None
    for thread_id in THREADS:
        saver.put(*_put_args(thread_id, thread_id))
    masters = {node.name for node in _masters(saver._executor.client)}
    # A lane of a node no longer in the map, as a failover leaves one (the old master's),
    # holding a live connection to a real server.
    gone_client = redis.Redis.from_url(server_url("single"))
    gone = Lane(gone_client.connection_pool, 2)
    gone.call("PING")
    (conn,) = gone._idle
    assert conn._sock is not None
    lanes._lanes["127.0.0.1:1"] = gone
    # A map change makes a new lane: here, one master's lane is made again.
    replaced = sorted(masters)[0]
    del lanes._lanes[replaced]
    for thread_id in THREADS:
        assert _owner(saver.get_tuple(config(thread_id))) == thread_id
    assert set(lanes._lanes) == masters
    assert conn._sock is None and not gone._idle  # closed, not left open
    gone_client.close()


async def test_the_async_lane_of_a_node_that_left_is_closed_when_the_map_changes(
    url: str,
) -> None:
    prefix = fresh_prefix()
    gone_client = aredis.Redis.from_url(server_url("single"))
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            await saver.asetup()
            lanes = saver._aexecutor._lanes
            assert lanes is not None
            for thread_id in THREADS:
                await saver.aput(*_put_args(thread_id, thread_id))
            masters = {node.name for node in saver._aexecutor.client.get_primaries()}
            gone = AsyncLane(gone_client.connection_pool, 2)
            await gone.call("PING")
            (conn,) = gone._idle
            assert conn.is_connected
            lanes._lanes["127.0.0.1:1"] = gone
            del lanes._lanes[sorted(masters)[0]]
            for thread_id in THREADS:
                assert _owner(await saver.aget_tuple(config(thread_id))) == thread_id
            assert set(lanes._lanes) == masters
            assert not conn.is_connected and not gone._idle
    finally:
        await gone_client.aclose()
        drop_prefix(url, prefix)

"""Valkey in cluster mode, as AWS ElastiCache and MemoryDB for Valkey run it: a cluster of
valkey-server nodes (three masters, a replica each) of this module's own.

Redis Cluster has the whole conformance suite (the `redis-cluster` target). Valkey's cluster
speaks the same protocol, but its slot maps, redirects and failovers have been Valkey's own
code since the fork, and the saver's lanes read that slot map themselves. What must hold here,
through `valkey+cluster://` URLs: LangGraph's conformance suite passes on both flavors; a
thread's keys share one slot and its master; and a master killed in the middle of a graph's
run fails over under the saver, sync and async, with every checkpoint written before the kill
readable afterwards.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)

from checkpoint_base import aconnect, connect
from checkpoint_base.testing._cluster import LocalRedisCluster
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._urls import sync_client
from tests.conformance.sync_as_async import SyncAsAsync

from .failover import STEPS, counting_graph, wait_replicated


@pytest.fixture(scope="module")
def cluster() -> Iterator[LocalRedisCluster]:
    server = LocalRedisCluster(durable=False, flavor="valkey")
    try:
        server.start()
        yield server
    finally:
        server.stop()


def _url(cluster: LocalRedisCluster) -> str:
    """The cluster's URL as Valkey's users write it, with a key prefix of its own."""
    cluster.wait_ok(30, revive=True)  # a whole cluster, after an earlier test's kill
    plain = cluster.url.replace("redis+cluster://", "valkey+cluster://", 1)
    return f"{plain}?key_prefix=vkc-{uuid.uuid4().hex[:8]}"


def test_the_nodes_are_valkey(cluster: LocalRedisCluster) -> None:
    raw = sync_client(cluster.url)
    try:
        servers = raw.info("server", target_nodes=raw.get_primaries())
        assert len(servers) == 3
        assert all("valkey_version" in reply for reply in servers.values()), servers
    finally:
        raw.close()


@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_official_conformance_suite(cluster: LocalRedisCluster, flavor: str) -> None:
    url = _url(cluster)
    required = {cap.value for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}

    async def report_of(saver: BaseCheckpointSaver[str]) -> object:
        @checkpointer_test(name=f"valkey-cluster-{flavor}")
        async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
            yield saver

        return await validate(factory)

    if flavor == "sync":
        with connect(url) as saver:
            assert isinstance(saver, RedisSaver) and saver._executor._lanes is not None
            report = await report_of(SyncAsAsync(saver))
    else:
        async with aconnect(url) as asaver:
            assert isinstance(asaver, AsyncRedisSaver)
            report = await report_of(asaver)
    results = report.results  # type: ignore[attr-defined]
    assert set(results) >= required, f"capabilities not run: {required - set(results)}"
    problems = {
        name: result.failures
        for name, result in results.items()
        if name in required and result.passed is not True
    }
    assert not problems, f"official conformance failures: {problems}"
    assert sum(results[name].tests_passed for name in required) >= 70


def test_a_threads_keys_share_one_master(cluster: LocalRedisCluster) -> None:
    with connect(_url(cluster)) as saver:
        raw = sync_client(cluster.url)
        try:
            keys = saver.backend.layout.thread("t").keys
            assert len({raw.keyslot(k) for k in keys}) == 1
        finally:
            raw.close()


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_a_run_survives_a_master_failover(cluster: LocalRedisCluster, flavor: str) -> None:
    url = _url(cluster)
    thread_id = f"vk-failover-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread_id}}
    with RedisSaver.from_url(url) as inspector:
        raw = sync_client(cluster.url)
        node = raw.get_node_from_key(inspector.backend.layout.thread(thread_id).keys[0])
        port = int(node.port)
        raw.close()
        before: list[str] = []

        def kill() -> None:
            deadline = time.monotonic() + 10
            while not before and time.monotonic() < deadline:  # stored in the background
                before.extend(
                    t.config["configurable"]["checkpoint_id"] for t in inspector.list(config)
                )
                time.sleep(0.02)
            wait_replicated(port)
            assert cluster.kill_master(port) == port

        start = {"count": 0, "log": []}
        if flavor == "sync":
            with connect(url) as saver:
                final = counting_graph(kill).compile(checkpointer=saver).invoke(start, config)
        else:
            async with aconnect(url) as asaver:
                graph = counting_graph(kill).compile(checkpointer=asaver)
                final = await graph.ainvoke(start, config)
        assert port in cluster.dead, "the kill did not happen"
        assert final["count"] == STEPS and final["log"] == list(range(1, STEPS + 1))
        listed = list(inspector.list(config))
        ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
        assert before and set(before) <= set(ids) and len(ids) > len(before)
        for tup in listed:
            again = inspector.get_tuple(tup.config)
            assert again is not None and again.checkpoint == tup.checkpoint

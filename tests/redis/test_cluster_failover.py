"""Kill the master of a thread's slot in the middle of a LangGraph run on Redis Cluster.

The saver rides out the failover (its bounded retry), the run finishes, and every checkpoint
written before the kill is readable afterwards. Redis replicates asynchronously, so before
the kill the test waits until the replica has what the master acknowledged
(`failover.wait_replicated`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from checkpoint_base import aconnect, connect
from checkpoint_base.testing import servers
from checkpoint_redis import RedisSaver
from checkpoint_redis._errors import RetryPolicy
from checkpoint_redis._urls import sync_client
from tests.conformance.builders import checkpoint, config

from .conftest import OWNERS, async_cluster_saver, cluster_saver, inspected_cluster
from .failover import STEPS, counting_graph, wait_replicated


@pytest.fixture(params=[False, True], ids=["plain", "tls"])
def tls(request: pytest.FixtureRequest) -> bool:
    """Whether the cluster takes TLS only (its bus and replication too)."""
    return bool(request.param)


@pytest.fixture
def cluster(tls: bool) -> Iterator[tuple[str, str, Any]]:
    with inspected_cluster(revive=True, tls=tls) as found:
        yield found


class _Killer:
    """Kills the master serving `thread_id`'s slot, after recording what was stored."""

    def __init__(self, url: str, inspector: RedisSaver, thread_id: str) -> None:
        self.inspector = inspector
        self.thread_id = thread_id
        self.tls = servers.redis_cluster(tls=True) if "ssl_ca_certs=" in url else None
        raw = sync_client(url)
        key = inspector.backend.layout.thread(thread_id).keys[0]
        node = raw.get_node_from_key(key)
        self.port = int(node.port)
        self.gone = str(node.name)  # the lanes' name of the master killed
        raw.close()
        self.before: list[str] = []
        self.killed_at = 0.0

    def __call__(self) -> None:
        config = {"configurable": {"thread_id": self.thread_id}}
        # LangGraph stores checkpoints in the background (durability "async"): on a loaded
        # machine none may have landed yet when the step that kills runs.
        deadline = time.monotonic() + 10
        while not self.before and time.monotonic() < deadline:
            self.before = [
                t.config["configurable"]["checkpoint_id"] for t in self.inspector.list(config)
            ]
            if not self.before:
                time.sleep(0.05)
        if self.tls is None:
            wait_replicated(self.port)
        else:
            assert self.tls.certificates is not None
            wait_replicated(self.port, ssl=True, ssl_ca_certs=str(self.tls.certificates.ca))
        tls = self.tls is not None
        assert servers.kill_redis_cluster_master(self.port, tls=tls) == self.port
        self.killed_at = time.monotonic()

    def check(self, final: Any) -> None:
        assert self.before, "the kill did not happen"
        assert final["count"] == STEPS and final["log"] == list(range(1, STEPS + 1))
        config = {"configurable": {"thread_id": self.thread_id}}
        listed = list(self.inspector.list(config))
        ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
        assert set(self.before) <= set(ids)
        assert len(ids) > len(self.before)
        for tup in listed:  # every checkpoint reads back whole
            again = self.inspector.get_tuple(tup.config)
            assert again is not None and again.checkpoint == tup.checkpoint
        latest = self.inspector.get_tuple(config)
        assert latest is not None and latest.checkpoint["channel_values"]["count"] == STEPS


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
def test_sync_run_survives_master_failover(cluster: tuple[str, str, Any], owner: str) -> None:
    url, prefix, inspector = cluster
    thread_id = f"failover-{uuid.uuid4()}"
    killer = _Killer(url, inspector, thread_id)
    with cluster_saver(url, prefix, owner) as saver:
        graph = counting_graph(killer).compile(checkpointer=saver)
        final = graph.invoke({"count": 0, "log": []}, {"configurable": {"thread_id": thread_id}})
        lanes = saver._executor._lanes
        if owner == "from-url":
            assert lanes is not None and killer.gone not in lanes._lanes  # its lane was closed
        else:
            assert lanes is None  # redis-py alone routed every request
    killer.check(final)


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
async def test_async_run_survives_master_failover(
    cluster: tuple[str, str, Any], owner: str
) -> None:
    url, prefix, inspector = cluster
    thread_id = f"failover-{uuid.uuid4()}"
    killer = _Killer(url, inspector, thread_id)
    async with async_cluster_saver(url, prefix, owner) as saver:
        graph = counting_graph(killer).compile(checkpointer=saver)
        final = await graph.ainvoke(
            {"count": 0, "log": []}, {"configurable": {"thread_id": thread_id}}
        )
        lanes = saver._aexecutor._lanes
        if owner == "from-url":
            assert lanes is not None and killer.gone not in lanes._lanes
        else:
            assert lanes is None
    killer.check(final)


@pytest.mark.slow
@pytest.mark.parametrize("flavor", ["sync", "async"])
async def test_a_saver_opened_during_a_failover_waits_for_it(flavor: str) -> None:
    """A saver opened while the master of its first key's slot is down, before a replica
    took over (a pod started during an ElastiCache failover), opens once the failover is
    done. Its client read the slot map from a live node, so the cluster has answered: the
    dead master is a failover under way, given the whole retry budget, not the second a
    server never reached gets (setup's first GET failed at that second before)."""
    with inspected_cluster(revive=True) as (url, prefix, inspector):
        raw = sync_client(url)
        port = int(raw.get_node_from_key(inspector.backend.layout.schema_key).port)
        raw.close()
        wait_replicated(port)
        assert servers.kill_redis_cluster_master(port) == port
        killed = time.monotonic()
        if flavor == "sync":
            with connect(url, key_prefix=prefix) as saver:
                opened = time.monotonic()
                stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
                assert saver.get_tuple(stored) is not None
        else:
            async with aconnect(url, key_prefix=prefix) as asaver:
                opened = time.monotonic()
                stored = await asaver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
                assert await asaver.aget_tuple(stored) is not None
        # The scenario happened: no replica can take over within the node timeout (1 s), so
        # the saver's setup waited past the short budget of a server never reached.
        assert opened - killed > RetryPolicy(timeout=0).first_timeout
        assert inspector.get_tuple(stored) is not None

"""Lanes on Redis Cluster: a `Lane` per master, chosen by the slot of the request's keys.

redis-py's cluster client routes every command itself: it finds the keys' slot, the slot's
node, a connection of that node, and wraps the call in its redirect and retry handling;
about 35 µs of CPU per call more than a lane on the same node's pool (a GET of a one-slot
key, 74-86 µs against 39-51 µs through the lane, this machine, redis-py 8.2). A saver's own
cluster client sends its scripts and transactions on the lane of the master that the
client's slot map names for the keys' slot; every key of a request shares one hash tag.

Whatever the lane cannot settle goes back to redis-py, which owns the cluster's topology:
a redirect (MOVED, ASK), a cluster that is down or failing over (CLUSTERDOWN, TRYAGAIN,
MASTERDOWN, READONLY), a connection that failed, a slot the map does not cover. redis-py then
sends the same request, follows the redirect and refreshes its map, and raises what it
cannot cure to the executor's retry. One exception: the asyncio executor follows an ASK
itself (ASKING then the command, on one connection of the node the ASK names), as redis-py's
asyncio client sends the ASKING it owes on one connection of the node and the command on
another (the next of the node's free list), which the node then answers with MOVED. For a
cluster client the user passed in, which has no lanes, the asyncio executor does the same
once redis-py has given up ("TTL exhausted"), on lanes that keep no connection. Every
request is idempotent (`_requests.py`), so sending it again after a connection failed
mid-call is safe. An error reply of the script itself
(NOSCRIPT among them) is the request's answer: raised as it is.
"""

from __future__ import annotations

import threading
from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from ._lane import AsyncLane, Lane, keep_for
from ._requests import Eval, Transaction

__all__ = ["REROUTE", "AsyncClusterLanes", "ClusterLanes", "slot_key"]

REROUTE: tuple[type[BaseException], ...] = (
    rx.AskError,  # a MovedError is an AskError
    rx.TryAgainError,
    rx.ClusterDownError,  # MASTERDOWN too
    rx.ReadOnlyError,
    rx.ConnectionError,
    rx.TimeoutError,
    rx.RedisClusterException,  # SlotNotCoveredError among them
    OSError,
)
"""Errors of a lane call that redis-py's own routing handles: the request goes to it."""


def slot_key(request: Eval | Transaction) -> bytes | None:
    """A key of the request (all of its keys are in one slot); None if it has none."""
    requests = request.requests if isinstance(request, Transaction) else (request,)
    for r in requests:
        if isinstance(r, Eval) and r.keys:
            return r.keys[0]
    return None


class ClusterLanes:
    """The lanes of a blocking `RedisCluster` that only the saver uses, one per master."""

    def __init__(self, client: RedisCluster) -> None:
        self._client: Any = client  # its methods are untyped
        self._lanes: dict[str, Lane] = {}
        self._lock = threading.Lock()  # two threads never make two lanes of one node

    def for_key(self, key: bytes | None) -> Lane | None:
        """The lane of the master that holds `key`'s slot (per the client's slot map);
        None when the map cannot say or the node's pool has no connection to spare."""
        if key is None:
            return None
        try:
            node = self._client.get_node_from_key(key)
            pool = node.redis_connection.connection_pool
        except Exception:  # no map yet, a slot not covered: redis-py routes (and raises)
            return None
        lane = self._lanes.get(node.name)
        if lane is not None and lane.pool is pool:
            return lane
        with self._lock:  # new, or the node was replaced
            lane = self._lanes.get(node.name)
            if lane is None or lane.pool is not pool:
                if lane is not None:
                    lane.close()
                self._drop_departed()
                keep = keep_for(pool)
                if not keep:
                    return None
                lane = self._lanes[node.name] = Lane(pool, keep)
            return lane

    def _drop_departed(self) -> None:
        """Close the lanes of nodes that are no longer masters in the client's map (a master
        replaced in a failover, a node that moved), whose kept connections would otherwise
        stay open for as long as the saver; run whenever a lane is made, a sign that the map
        changed."""
        try:
            masters = {node.name for node in self._client.get_primaries()}
        except Exception:  # no map to go by: keep them until the next change
            return
        for name in [name for name in self._lanes if name not in masters]:
            self._lanes.pop(name).close(disconnect=True)

    def close(self) -> None:
        """Hand every kept connection back to its node's pool."""
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            lane.close()


class _NodePool:
    """What `AsyncLane` needs of a pool, on an asyncio `ClusterNode` (which holds its own
    connections, without a `ConnectionPool`)."""

    def __init__(self, node: Any) -> None:
        self.node = node
        self.connection_kwargs = node.connection_kwargs
        self.max_connections = node.max_connections

    async def get_connection(self) -> Any:
        return self.node.acquire_connection()

    async def release(self, conn: Any) -> None:
        self.node.release(conn)


class AsyncClusterLanes:
    """`ClusterLanes` for an asyncio `RedisCluster`."""

    def __init__(self, client: AsyncRedisCluster, keep: int | None = None) -> None:
        """`keep`: idle connections each lane keeps (default `keep_for` the node's pool);
        0 for a client the user passed in, whose connections go back after each call."""
        self._client = client
        self._keep = keep
        self._lanes: dict[str, AsyncLane] = {}

    async def for_key(self, key: bytes | None) -> AsyncLane | None:
        """`ClusterLanes.for_key`."""
        if key is None:
            return None
        try:
            node = self._client.get_node_from_key(key)  # type: ignore[arg-type]
        except Exception:
            return None
        return await self._for_node(node)

    async def for_redirect(self, error: rx.AskError) -> AsyncLane | None:
        """The lane of the node a redirect names; None if the client's map does not know it."""
        try:
            node = self._client.get_node(host=error.host, port=error.port)
        except Exception:
            return None
        return await self._for_node(node)

    async def _for_node(self, node: Any) -> AsyncLane | None:
        if node is None:
            return None
        lane = self._lanes.get(node.name)
        if lane is None or lane.pool.node is not node:  # new, or the node was replaced
            if lane is not None:
                await lane.aclose()
            await self._drop_departed()
            pool = _NodePool(node)
            keep = keep_for(pool) if self._keep is None else self._keep
            if not keep and self._keep is None:
                return None
            lane = self._lanes[node.name] = AsyncLane(pool, keep)
        return lane

    async def _drop_departed(self) -> None:
        """`ClusterLanes._drop_departed`."""
        try:
            masters = {node.name for node in self._client.get_primaries()}
        except Exception:
            return
        departed = [self._lanes.pop(name) for name in list(self._lanes) if name not in masters]
        for lane in departed:
            await lane.aclose(disconnect=True)

    async def aclose(self) -> None:
        """Hand every kept connection back to its node."""
        lanes, self._lanes = self._lanes, {}
        for lane in lanes.values():
            await lane.aclose()

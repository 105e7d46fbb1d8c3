"""The async executor: runs Redis plans on `redis.asyncio.Redis` or its `RedisCluster`.

The same requests and retry policy as the sync executor (see `_executor.py`), awaited; no
thread hop.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster

from checkpoint_base import ConfigError, Plan, ValueTooLargeError, arun

from ._cluster_lane import REROUTE, AsyncClusterLanes, slot_key
from ._errors import (
    BULK_LIMIT_QUERY,
    RetryPolicy,
    demoted,
    maybe_oversized,
    oversized,
    retryable,
    topology_known,
    translate,
)
from ._lane import AsyncLane, async_lane_for
from ._requests import Batch, Command, Eval, Transaction, commands, queue
from ._sentinel import is_sentinel
from ._tls import client_tls

__all__ = ["AsyncClient", "AsyncRedisExecutor"]

T = TypeVar("T")
AsyncClient = aredis.Redis | AsyncRedisCluster


class AsyncRedisExecutor:
    """Runs plans on an asyncio redis-py client.

    Args:
        client: A `redis.asyncio.Redis` or `redis.asyncio.cluster.RedisCluster`.
        owned: Close the client in `aclose()` (true when the saver created it); a single-server
            client the saver owns sends its script calls on an `AsyncLane`.
        retry: How long to ride out transient failures.
    """

    def __init__(self, client: AsyncClient, *, owned: bool, retry: RetryPolicy) -> None:
        self.client = client
        self._owned = owned
        self._retry = retry
        self._answered = False  # a server that never answered is unreachable, not failing over
        self._lane = async_lane_for(client, owned)
        self._lanes = (
            AsyncClusterLanes(client) if owned and isinstance(client, AsyncRedisCluster) else None
        )
        self._redirects = self._lanes or _redirects(client)
        self.reopen: Callable[[], AsyncClient] | None = None
        """Makes a client like `client`, for another event loop (`moved_loop`)."""

    def moved_loop(self) -> Coroutine[Any, Any, None]:
        """The saver moved to another event loop, the last one stopped: the client's
        connections were bound to it (their streams). The saver's own client is replaced by
        a new one here; the old one is closed as well as its loop allows (its connections
        forgotten, their sockets closed when collected) by the coroutine returned. A client
        passed in cannot be replaced: an error says so."""
        if self.reopen is None:
            raise ConfigError(
                "the redis.asyncio client passed to AsyncRedisSaver has connections on "
                "another event loop, which has stopped. Create the client and the saver on "
                "the event loop that uses them (inside the same asyncio.run), or use "
                "AsyncRedisSaver.from_url / aconnect(url): the saver then makes a client of "
                "its own on each loop it moves to."
            )
        old = self.client
        self.client = client = self.reopen()
        self._lane = async_lane_for(client, self._owned)
        self._lanes = AsyncClusterLanes(client) if isinstance(client, AsyncRedisCluster) else None
        self._redirects = self._lanes
        return _forget(old)

    @property
    def cheap_transactions(self) -> bool:
        """True when transactions go on a lane: as cheap as a script call."""
        return self._lane is not None or self._lanes is not None

    async def run(self, plan: Plan[T]) -> T:
        """Run one plan; every request is retried alone on a transient failure."""
        return await arun(plan, self._execute)

    async def _execute(self, request: Eval | Command | Transaction | Batch) -> Any:
        started: float | None = None
        delay = self._retry.first_delay
        while True:
            try:
                result = await self._perform(request)
            except Exception as exc:
                too_big = await self._oversized(request, exc)
                if too_big is not None:
                    raise too_big from exc
                if not retryable(exc):
                    raise translate(exc, request, tls=client_tls(self.client)) from exc
                if demoted(exc):
                    await self._forget()
                now = time.monotonic()
                started = now if started is None else started
                answered = self._answered or topology_known(self.client)
                timeout = self._retry.timeout if answered else self._retry.first_timeout
                if now + delay - started > timeout:
                    raise translate(exc, request, tls=client_tls(self.client)) from exc
            else:
                self._answered = True
                return result
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._retry.max_delay)

    async def _forget(self) -> None:
        """`RedisExecutor._forget`."""
        if self._lane is not None:
            await self._lane.aclose(disconnect=True)
        client: Any = self.client  # a Sentinel client is a redis.Redis
        if is_sentinel(client):
            await client.connection_pool.disconnect(inuse_connections=False)

    async def _oversized(
        self, request: Eval | Command | Transaction | Batch, exc: Exception
    ) -> ValueTooLargeError | None:
        """The error when `exc` is the server refusing an argument of `request` as longer
        than it takes (sending it again would fail again), else None."""
        if not maybe_oversized(exc, request):
            return None
        client: Any = self.client
        try:
            if isinstance(client, AsyncRedisCluster):
                # Asked of a node directly: before redis-py 8.2 the asyncio cluster client
                # routed CONFIG GET nowhere ("Missing key"), target_nodes or not, so the limit
                # went unread and the put was sent again and again for the failover budget
                # (10 s) before it failed.
                reply = await client.get_default_node().execute_command(*BULK_LIMIT_QUERY)
            else:
                reply = await client.execute_command(*BULK_LIMIT_QUERY)
        except Exception:  # CONFIG disabled, or the server is gone indeed
            reply = None
        return oversized(request, reply)

    async def _perform(self, request: Eval | Command | Transaction | Batch) -> Any:
        if isinstance(request, Eval):
            keys = request.keys
            lane = await self._lane_for(request)
            call = self._call
            try:
                return await call(
                    lane, "EVALSHA", request.script.sha, len(keys), *keys, *request.args
                )
            except rx.NoScriptError:
                return await call(
                    lane, "EVAL", request.script.text, len(keys), *keys, *request.args
                )
        if isinstance(request, Command):
            args = request.args
            return await self._redis_py(args[1] if len(args) > 1 else None, *args)
        if isinstance(request, Transaction):
            return await self._transaction(request)
        return await self._batch(request)

    async def _lane_for(self, request: Eval | Transaction) -> AsyncLane | None:
        if self._lanes is not None:
            return await self._lanes.for_key(slot_key(request))
        return self._lane

    async def _call(self, lane: AsyncLane | None, *args: Any) -> Any:
        """`RedisExecutor._call`; `args` are an EVALSHA's or EVAL's."""
        key = args[3] if args[2] else None
        if lane is None:
            return await self._redis_py(key, *args)
        if self._lanes is None:
            return await lane.call(*args)
        try:
            return await lane.call(*args)
        except rx.AskError as exc:
            if isinstance(exc, rx.MovedError):
                return await self._redis_py(key, *args)
            # A slot being migrated: ASKING and the command on one connection of the node
            # importing it (see `_cluster_lane.py` on redis-py's asyncio ASK).
            target = await self._lanes.for_redirect(exc)
            if target is None:
                return await self._redis_py(key, *args)
            return await target.call_asking(*args)
        except REROUTE:
            return await self._redis_py(key, *args)

    async def _redis_py(self, key: Any, *args: Any) -> Any:
        """`execute_command` on the client. On a cluster, a command that ends in "TTL
        exhausted" is sent again here to the node of `key`'s slot and, when that node
        answers ASK (the slot is being migrated, the key moved already), with ASKING on one
        connection of the node the ASK names: redis-py's asyncio client sends that ASKING on
        another connection than the command's, which the node then answers with MOVED, back
        and forth until its 16 tries are spent (`_cluster_lane.py`). Failing that, the
        error is redis-py's, for the executor's retry."""
        try:
            return await self.client.execute_command(*args)
        except rx.ClusterError as exhausted:
            redirects = self._redirects
            if type(exhausted) is not rx.ClusterError or redirects is None or key is None:
                raise
            lane = await redirects.for_key(key)
            if lane is None:
                raise
            try:
                try:
                    return await lane.call(*args)
                except rx.AskError as exc:
                    if isinstance(exc, rx.MovedError):
                        raise
                    target = await redirects.for_redirect(exc)
                    if target is None:
                        raise
                    return await target.call_asking(*args)
            except REROUTE:
                raise exhausted from None

    async def _transaction(self, tx: Transaction) -> list[Any]:
        try:
            return await self._multi(tx)
        except rx.OutOfMemoryError:
            if tx.inline is None:
                raise
            # A server at maxmemory refuses every command queued in MULTI, reads too: the
            # one-script form (see `RedisExecutor._transaction`).
            return [await self._perform(tx.inline())]

    async def _multi(self, tx: Transaction) -> list[Any]:
        lane = await self._lane_for(tx)
        if lane is not None:  # EXEC's replies raw: no caller reads them
            try:
                try:
                    return await lane.transaction(commands(tx.requests))
                except rx.NoScriptError:  # EXEC applied the rest; again with the scripts' text
                    return await lane.transaction(commands(tx.requests, by_text=True))
            except REROUTE:
                if self._lanes is None:
                    raise  # a single server: the executor's retry
                # A cluster: redis-py routes it, below.
        if tx.inline is not None and isinstance(self.client, AsyncRedisCluster):
            # redis-py's asyncio cluster pipeline queues each command of a transaction by
            # starting a thread that runs its own event loop: a put of the benchmarks'
            # 20-step thread took 1.11-1.21 ms that way, against 0.46 ms for the sync client.
            return [await self._perform(tx.inline())]
        pipe = self.client.pipeline(transaction=True)
        queue(pipe, tx.requests)
        try:
            results: list[Any] = await pipe.execute()
        except rx.NoScriptError:  # EXEC applied the rest; again with the scripts' text
            pipe = self.client.pipeline(transaction=True)
            queue(pipe, tx.requests, by_text=True)
            results = await pipe.execute()
        return results

    async def _batch(self, batch: Batch) -> list[Any]:
        pipe = self.client.pipeline(transaction=False)
        queue(pipe, batch.requests)
        try:
            results: list[Any] = await pipe.execute()
        except rx.ClusterError as exc:
            if type(exc) is not rx.ClusterError:
                raise
            # "TTL exhausted": a request met a slot being migrated (`_redis_py`), or TRYAGAIN
            # sixteen times. One by one (idempotent), each then followed here.
            return [await self._perform(request) for request in batch.requests]
        except rx.NoScriptError:
            # A node lacks a script: one by one, each with its EVAL fallback (idempotent).
            return [await self._perform(request) for request in batch.requests]
        return results

    async def aclose(self) -> None:
        """Close the client if the saver created it."""
        if self._lane is not None:
            await self._lane.aclose()
        if self._lanes is not None:
            await self._lanes.aclose()
        if self._owned:
            await self.client.aclose()


def _redirects(client: AsyncClient) -> AsyncClusterLanes | None:
    """For a cluster client the user passed in: lanes that only follow what redis-py could
    not (`AsyncRedisExecutor._redis_py`), keeping none of the client's connections."""
    return AsyncClusterLanes(client, keep=0) if isinstance(client, AsyncRedisCluster) else None


async def _forget(client: AsyncClient) -> None:
    """Close a client whose connections belong to a stopped loop: closing their streams
    needs that loop and fails, but each connection is marked closed all the same (so
    nothing warns of it as left open), and its socket is closed when collected."""
    if isinstance(client, AsyncRedisCluster):  # its close stops at the first node's error
        nodes = client.nodes_manager
        # By identity: before redis-py 7.2 an async ClusterNode has __eq__ but no __hash__.
        every = {id(n): n for n in (*nodes.nodes_cache.values(), *nodes.startup_nodes.values())}
        for node in every.values():
            with contextlib.suppress(Exception):
                await node.disconnect()  # each of its connections, whatever fails
    with contextlib.suppress(Exception):
        await client.aclose()

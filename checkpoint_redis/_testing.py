"""Targets of the Redis backend for the conformance suite and the benchmarks.

Each opened saver gets a fresh key prefix on the shared test server (or cluster) and, when it
closes, every key under that prefix is deleted through the thread registry (no KEYS/SCAN).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from checkpoint_base.testing import servers
from checkpoint_base.testing.targets import Target

from ._backend import RedisBackend, RedisClusterBackend
from ._errors import RetryPolicy
from ._executor import RedisExecutor
from ._saver import AsyncRedisSaver, RedisSaver
from ._urls import sync_client

__all__ = ["drop_prefix", "fresh_prefix", "targets"]


def fresh_prefix() -> str:
    """A key prefix no other test uses."""
    return f"test-{uuid.uuid4().hex[:12]}"


def drop_prefix(url: str, prefix: str) -> int:
    """Delete every key a saver wrote under `prefix` on `url`; returns the threads deleted."""
    client = sync_client(url)
    try:
        kind = RedisClusterBackend if url.startswith("redis+cluster") else RedisBackend
        executor = RedisExecutor(client, owned=False, retry=RetryPolicy(timeout=20.0))
        return executor.run(kind(key_prefix=prefix).drop_all())
    finally:
        client.close()


def _target(name: str, url: Callable[[], str], cluster: bool) -> Target:
    @contextmanager
    def open_sync() -> Iterator[RedisSaver]:
        address, prefix = url(), fresh_prefix()
        try:
            with RedisSaver.from_conn_string(address, key_prefix=prefix) as saver:
                saver.setup()
                yield saver
        finally:
            drop_prefix(address, prefix)

    @asynccontextmanager
    async def open_async() -> AsyncIterator[AsyncRedisSaver]:
        address, prefix = url(), fresh_prefix()
        try:
            async with AsyncRedisSaver.from_conn_string(address, key_prefix=prefix) as saver:
                await saver.asetup()
                yield saver
        finally:
            drop_prefix(address, prefix)

    official_sync = official_async = None
    if not cluster:  # the module-free peer stores a thread across slots: no cluster
        official_sync, official_async = _official(url)
    backend = RedisClusterBackend if cluster else RedisBackend
    return Target(
        name=name,
        backend="redis",
        capabilities=backend.capabilities,
        open_sync=open_sync,
        open_async=open_async,
        official_sync=official_sync,
        official_async=official_async,
        url=lambda: f"{url()}{'&' if '?' in url() else '?'}key_prefix={fresh_prefix()}",
    )


def _official(url: Callable[[], str]) -> tuple[Any, Any]:
    """`langgraph-checkpoint-plainredis`, the module-free peer, on a fresh prefix."""

    @contextmanager
    def official_sync() -> Iterator[Any]:
        from langgraph_checkpoint_plainredis import RedisSaver as PlainRedisSaver

        prefix = fresh_prefix()
        saver = PlainRedisSaver(url=url(), prefix=prefix)
        try:
            yield saver
        finally:
            for thread_id in _plain_threads(saver.client.hgetall(f"{prefix}:threads")):
                saver.delete_thread(thread_id)
            saver.client.delete(f"{prefix}:threads", f"{prefix}:seq")
            saver.close()

    @asynccontextmanager
    async def official_async() -> AsyncIterator[Any]:
        from langgraph_checkpoint_plainredis import AsyncRedisSaver as PlainAsyncRedisSaver

        prefix = fresh_prefix()
        saver = PlainAsyncRedisSaver(url=url(), prefix=prefix)
        try:
            yield saver
        finally:
            for thread_id in _plain_threads(await saver.client.hgetall(f"{prefix}:threads")):
                await saver.adelete_thread(thread_id)
            await saver.client.delete(f"{prefix}:threads", f"{prefix}:seq")
            await saver.aclose()

    return official_sync, official_async


def _plain_threads(registry: dict[Any, Any]) -> set[str]:
    """The thread ids in plainredis' registry hash (values are JSON with a "thread" key)."""
    found = set()
    for value in registry.values():
        try:
            found.add(str(json.loads(value)["thread"]))
        except (TypeError, ValueError, KeyError):
            continue
    return found


def targets() -> list[Target]:
    """`redis` (one server), `redis-cluster` (3 masters with replicas), `valkey` (one server)."""
    return [
        _target("redis", servers.redis_url, cluster=False),
        _target("redis-cluster", servers.redis_cluster_url, cluster=True),
        _target("valkey", servers.valkey_url, cluster=False),
    ]

"""The raw redis-py floor: the same bytes, one command per operation.

`put` is one `SET` of the bytes a saver of this package would store for the checkpoint;
reads are one `GET` or one `MGET`. The floor keeps its own index of the keys it wrote in
Python (so it never needs a second round trip to find them): a lower bound a saver with a
server-side index can approach, not reach. Every key of a thread shares one hash tag, so the
floor runs unchanged on Redis Cluster.
"""

from __future__ import annotations

import uuid
from typing import Any

from ._graph import PutCall, WritesCall
from ._handles import Handle

__all__ = ["RedisFloor", "redis_client"]


def redis_client(url: str, *, sync: bool) -> Any:
    """A redis-py client for `redis://`, `rediss://` or `redis+cluster://h:p,h:p` URLs, with
    the URL's credentials and connection options (TLS among them) and redis-py's defaults
    for the rest; the saver's own options (`key_prefix`, ...) are left out."""
    from checkpoint_redis._urls import _cluster_parts, saver_options

    url = saver_options(url)[0]
    if url.startswith("redis+cluster://"):
        hosts, options = _cluster_parts(url)
        if sync:
            from redis.cluster import ClusterNode, RedisCluster
        else:
            from redis.asyncio.cluster import (  # type: ignore[assignment]
                ClusterNode,
                RedisCluster,
            )
        return RedisCluster(startup_nodes=[ClusterNode(h, p) for h, p in hosts], **options)
    if sync:
        import redis

        return redis.Redis.from_url(url)
    import redis.asyncio

    return redis.asyncio.Redis.from_url(url)


class RedisFloor(Handle):
    """redis-py (sync) or redis.asyncio (async): SET / GET / MGET / DEL of the same bytes."""

    def __init__(self, url: str, *, sync: bool) -> None:
        self.sync = sync
        self.url = url
        self.prefix = f"bench-floor-{uuid.uuid4().hex[:12]}"
        self._client: Any = None
        # thread -> checkpoint ids in write order; (thread, step) -> id; thread -> every key
        self._ids: dict[str, list[str]] = {}
        self._steps: dict[tuple[str, int], str] = {}
        self._keys: dict[str, set[str]] = {}
        self._children: list[RedisFloor] = []

    async def open(self) -> RedisFloor:
        """Create the client (connections are made on first use)."""
        self._client = redis_client(self.url, sync=self.sync)
        return self

    def _key(self, thread_id: str, *parts: str) -> str:
        return ":".join((self.prefix, "{" + thread_id + "}", *parts))

    def prepare_put(self, thread_id: str, call: PutCall) -> Any:
        checkpoint_id = call.checkpoint["id"]
        key = self._key(thread_id, "cp", checkpoint_id)
        # Client-side bookkeeping, outside the timed region.
        ids = self._ids.setdefault(thread_id, [])
        if not ids or ids[-1] != checkpoint_id:
            ids.append(checkpoint_id)
        self._steps[(thread_id, int(call.metadata.get("step", 0)))] = checkpoint_id
        self._keys.setdefault(thread_id, set()).add(key)
        return (key, call.data)

    def prepare_writes(self, thread_id: str, call: WritesCall) -> Any:
        checkpoint_id = call.config["configurable"]["checkpoint_id"]
        key = self._key(thread_id, "wr", checkpoint_id, call.task_id)
        self._keys.setdefault(thread_id, set()).add(key)
        return (key, call.data)

    async def writers(self, n: int) -> list[Handle]:
        # A client per writer, as the SQL floors have a connection per writer (redis-py's
        # asyncio cluster client also failed with 32 tasks connecting through one client).
        while len(self._children) < n:
            child = RedisFloor(self.url, sync=self.sync)
            child.prefix = self.prefix
            self._children.append(await child.open())
        return list(self._children[:n])

    async def _cmd(self, *args: Any) -> Any:
        if self.sync:
            return self._client.execute_command(*args)
        return await self._client.execute_command(*args)

    def put_sync(self, args: Any) -> None:
        self._client.execute_command("SET", *args)

    async def put(self, args: Any) -> None:
        await self._cmd("SET", *args)

    async def put_writes(self, args: Any) -> None:
        await self._cmd("SET", *args)

    async def get(self, thread_id: str, checkpoint_id: str | None) -> bool:
        ids = self._ids.get(thread_id) or []
        if checkpoint_id is None:
            if not ids:
                return False
            checkpoint_id = ids[-1]
        return await self._cmd("GET", self._key(thread_id, "cp", checkpoint_id)) is not None

    async def list(self, thread_id: str, limit: int | None, step: int | None) -> int:
        if step is not None:
            found = self._steps.get((thread_id, step))
            if found is None:
                return 0
            return int(await self._cmd("GET", self._key(thread_id, "cp", found)) is not None)
        ids = list(reversed(self._ids.get(thread_id) or []))[:limit]
        if not ids:
            return 0
        values = await self._cmd("MGET", *(self._key(thread_id, "cp", i) for i in ids))
        return sum(v is not None for v in values)

    async def delete(self, thread_id: str) -> None:
        keys = self._keys.pop(thread_id, set())
        self._ids.pop(thread_id, None)
        for key in [k for k in self._steps if k[0] == thread_id]:
            del self._steps[key]
        if keys:
            await self._cmd("DEL", *keys)

    async def storage_bytes(self) -> int | None:
        total = 0
        for keys in self._keys.values():
            for key in keys:
                used = await self._cmd("MEMORY", "USAGE", key, "SAMPLES", "0")
                total += int(used or 0)
        return total

    async def aclose(self) -> None:
        for child in self._children:
            await child.aclose()
        for thread_id in list(self._keys):
            await self.delete(thread_id)
        if self._client is not None:
            if self.sync:
                self._client.close()
            else:
                await self._client.aclose()
            self._client = None

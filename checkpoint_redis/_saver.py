"""`RedisSaver` and `AsyncRedisSaver`: constructors over the shared saver and the Redis backend."""

from __future__ import annotations

import datetime
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

from langgraph.checkpoint.serde.base import SerializerProtocol
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from checkpoint_base import CheckpointSaver, ConfigError

from ._aexecutor import AsyncClient, AsyncRedisExecutor
from ._backend import DEFAULT_PREFIX, RedisBackend, RedisClusterBackend
from ._errors import RetryPolicy
from ._eviction import acheck_eviction, check_eviction
from ._executor import RedisExecutor, SyncClient
from ._sentinel import acheck_replicas, check_replicas, is_sentinel
from ._urls import async_client, saver_options, sync_client

__all__ = ["AsyncRedisSaver", "RedisSaver"]

SINGLE_RETRY_TIMEOUT = 1.0
"""Seconds a single server gets to come back (a reconnect, a restart in progress)."""
CLUSTER_RETRY_TIMEOUT = 20.0
"""Seconds a cluster gets to promote a replica: Redis' default `cluster-node-timeout` is 15 s."""
SENTINEL_RETRY_TIMEOUT = 35.0
"""Seconds Sentinels get to replace a master: their default `down-after-milliseconds` is 30 s."""


def _backend(
    client: Any,
    cluster: bool,
    key_prefix: str,
    ttl: float | datetime.timedelta | None,
    refresh_on_read: bool,
) -> RedisBackend:
    if client.get_encoder().decode_responses:
        raise ConfigError(
            "the Redis client decodes responses to str, but checkpoints are bytes: "
            "create it with decode_responses=False"
        )
    kind = RedisClusterBackend if cluster else RedisBackend
    try:
        return kind(key_prefix=key_prefix, ttl=ttl, refresh_on_read=refresh_on_read)
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _retry(client: Any, cluster: bool, timeout: float | None) -> RetryPolicy:
    if timeout is not None and (
        isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or not timeout >= 0
    ):
        raise ConfigError(
            f"retry_timeout must be a number of seconds, 0 or more (0: no retry), got {timeout!r}"
        )
    if timeout is None:
        timeout = (
            CLUSTER_RETRY_TIMEOUT
            if cluster
            else SENTINEL_RETRY_TIMEOUT
            if is_sentinel(client)
            else SINGLE_RETRY_TIMEOUT
        )
    return RetryPolicy(timeout=timeout, first_timeout=min(timeout, SINGLE_RETRY_TIMEOUT))


class RedisSaver(CheckpointSaver):
    """A LangGraph checkpointer on Redis or Valkey (core commands only, no modules).

    Works on a single server, on a master that Redis Sentinel names, and on Redis Cluster:
    every key of a thread shares one hash tag, so each operation is one atomic script in one
    slot.

    A saver built from a URL (`from_url`, `from_conn_string`, `connect`) sends its scripts
    and transactions on connections it keeps (on a cluster, those of the keys' master), past
    redis-py's per-command machinery (about 65 µs of CPU per call with redis-py 8.1); a client
    you pass in is used through redis-py as it is, with your retry, event and observability
    settings.

        with RedisSaver.from_conn_string("redis://localhost:6379/0") as saver:
            saver.setup()
            graph = builder.compile(checkpointer=saver)

    Args:
        client: A `redis.Redis` (one from `redis.sentinel.Sentinel.master_for` too) or a
            `redis.cluster.RedisCluster`, with `decode_responses=False`.
        key_prefix: Namespace of every key, so several applications share a server.
        ttl: Seconds (or a timedelta) every key of a thread lives after the thread's last
            write; None keeps threads until deleted.
        refresh_on_read: With `ttl`, reading a thread renews its time to live.
        retry_timeout: Seconds to keep retrying a request after a lost connection or during
            a failover (default 1 on a single server, 20 on a cluster, 35 behind Sentinel:
            above the Sentinels' `down-after-milliseconds`, 30 s by default, plus the
            failover itself).
        serde: The serializer (default: the package's safe msgpack serializer).
        close_client: Close `client` when the saver closes.

    Raises:
        ConfigError: The client decodes responses, or an option is invalid.
    """

    def __init__(
        self,
        client: SyncClient,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        ttl: float | datetime.timedelta | None = None,
        refresh_on_read: bool = False,
        retry_timeout: float | None = None,
        serde: SerializerProtocol | None = None,
        close_client: bool = False,
    ) -> None:
        cluster = isinstance(client, RedisCluster)
        backend = _backend(client, cluster, key_prefix, ttl, refresh_on_read)
        executor = RedisExecutor(
            client, owned=close_client, retry=_retry(client, cluster, retry_timeout)
        )
        backend.read_hints = executor.cheap_transactions
        super().__init__(backend, executor=executor, serde=serde)
        self.client = client
        self._ttl = ttl is not None

    def setup(self) -> None:
        """Create or migrate the key layout (idempotent), then check the server's eviction
        policy: `EvictionWarning` when a node may evict some keys of a thread and keep
        others (an `allkeys-*` `maxmemory-policy`, or `volatile-*` with `ttl=`); behind
        Sentinel, `FailoverWarning` when the master takes writes without a replica
        (`min-replicas-to-write 0`), which a failover can lose."""
        super().setup()
        check_eviction(self.client, self._ttl)
        check_replicas(self.client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisSaver:
        """A saver on a new client for `url`, closed with the saver.

        Args:
            url: `redis://[user:password@]host:port/db`, `rediss://...` (TLS),
                `redis+cluster://[user:password@]host:port,host:port[?ssl=true]` (TLS
                options, `ssl_ca_certs=` among them, in the query), or
                `redis+sentinel://[user:password@]host:port,host:port/service[/db]` (the
                Sentinels, and the service they monitor; `sentinel_password=` in the query
                when the Sentinels ask for one), or `unix:///path/redis.sock?db=0` (a
                server's Unix socket). The query may carry `key_prefix`, `ttl`,
                `refresh_on_read` and `retry_timeout`.
            **options: The constructor's keyword arguments (they win over the URL's).

        Raises:
            ConfigError: The URL or an option is invalid.
        """
        plain, from_query = saver_options(url)
        return cls(sync_client(plain), close_client=True, **{**from_query, **options})

    @classmethod
    @contextmanager
    def from_conn_string(cls, url: str, **options: Any) -> Iterator[RedisSaver]:
        """`from_url` as a context manager that closes the saver on exit."""
        saver = cls.from_url(url, **options)
        try:
            yield saver
        finally:
            saver.close()


class AsyncRedisSaver(CheckpointSaver):
    """The asyncio flavor of `RedisSaver`, on `redis.asyncio` clients.

        async with AsyncRedisSaver.from_conn_string("redis://localhost:6379/0") as saver:
            await saver.asetup()
            graph = builder.compile(checkpointer=saver)

    Args:
        client: A `redis.asyncio.Redis` (one from `redis.asyncio.sentinel.Sentinel.master_for`
            too) or a `redis.asyncio.cluster.RedisCluster`, with `decode_responses=False`.
        key_prefix: Namespace of every key.
        ttl: Seconds (or a timedelta) every key of a thread lives after the thread's last write.
        refresh_on_read: With `ttl`, reading a thread renews its time to live.
        retry_timeout: Seconds to keep retrying after a lost connection or during a failover.
        serde: The serializer.
        close_client: Close `client` when the saver closes.

    Raises:
        ConfigError: The client decodes responses, or an option is invalid.
    """

    def __init__(
        self,
        client: AsyncClient,
        *,
        key_prefix: str = DEFAULT_PREFIX,
        ttl: float | datetime.timedelta | None = None,
        refresh_on_read: bool = False,
        retry_timeout: float | None = None,
        serde: SerializerProtocol | None = None,
        close_client: bool = False,
    ) -> None:
        cluster = isinstance(client, AsyncRedisCluster)
        backend = _backend(client, cluster, key_prefix, ttl, refresh_on_read)
        executor = AsyncRedisExecutor(
            client, owned=close_client, retry=_retry(client, cluster, retry_timeout)
        )
        backend.read_hints = executor.cheap_transactions
        super().__init__(backend, aexecutor=executor, serde=serde)
        self._redis = executor
        self._ttl = ttl is not None

    @property
    def client(self) -> AsyncClient:
        """The client the saver runs on (the saver's own is replaced on another loop)."""
        return self._redis.client

    async def asetup(self) -> None:
        """`RedisSaver.setup`."""
        await super().asetup()
        await acheck_eviction(self.client, self._ttl)
        await acheck_replicas(self.client)

    @classmethod
    def from_url(cls, url: str, **options: Any) -> AsyncRedisSaver:
        """A saver on a new asyncio client for `url` (see `RedisSaver.from_url`)."""
        plain, from_query = saver_options(url)
        saver = cls(async_client(plain), close_client=True, **{**from_query, **options})
        saver._redis.reopen = lambda: async_client(plain)  # a client for another loop
        return saver

    @classmethod
    @asynccontextmanager
    async def from_conn_string(cls, url: str, **options: Any) -> AsyncIterator[AsyncRedisSaver]:
        """`from_url` as an async context manager that closes the saver on exit."""
        saver = cls.from_url(url, **options)
        try:
            yield saver
        finally:
            await saver.aclose()

"""Fixtures of the Redis-only tests: real servers, a fresh key prefix per saver, raw clients."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import pytest
import redis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

from checkpoint_base.testing import servers
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._urls import sync_client

KINDS = ["single", "cluster", "valkey"]


def server_url(kind: str) -> str:
    """URL of the test server of this kind (started on first use)."""
    if kind == "valkey":
        return servers.valkey_url()
    return servers.redis_url() if kind == "single" else servers.redis_cluster_url()


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def url(kind: str) -> str:
    return server_url(kind)


@pytest.fixture
def raw(url: str) -> Iterator[Any]:
    """A plain redis-py client on the same server, to look at the keys a saver wrote."""
    client = sync_client(url)
    try:
        yield client
    finally:
        client.close()


@contextmanager
def user_without(kind: str, url: str, raw: Any, command: str) -> Iterator[str]:
    """The URL of a new ACL user that may run every command but `command`; deleted after.

    A cluster is skipped: the user would have to be created on every node."""
    if kind == "cluster":
        pytest.skip("an ACL user would have to be created on every node")
    user, password = f"no{command}-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    raw.acl_setuser(
        user, enabled=True, passwords=[f"+{password}"], keys=["*"], channels=["*"],
        commands=["+@all", f"-{command}"],
    )  # fmt: skip
    try:
        yield url.replace("redis://", f"redis://{user}:{password}@", 1)
    finally:
        raw.acl_deluser(user)


@pytest.fixture
def open_saver(url: str) -> Iterator[Any]:
    """Open savers on fresh prefixes; all of them are closed and dropped at the end."""
    opened: list[tuple[RedisSaver, str]] = []

    def make(**options: Any) -> RedisSaver:
        prefix = options.pop("key_prefix", None) or fresh_prefix()
        saver = RedisSaver.from_url(url, key_prefix=prefix, **options)
        saver.setup()
        opened.append((saver, prefix))
        return saver

    try:
        yield make
    finally:
        for saver, prefix in opened:
            saver.close()
            drop_prefix(url, prefix)


def keys_under(client: Any, prefix: str) -> set[bytes]:
    """Every key under `prefix`, by SCAN on each master (the test's own generated prefix)."""
    pattern = prefix + ":*"
    if isinstance(client, RedisCluster):
        found: set[bytes] = set()
        for node in client.get_primaries():
            found.update(client.scan_iter(match=pattern, count=1000, target_nodes=node))
        return found
    assert isinstance(client, redis.Redis)
    return set(client.scan_iter(match=pattern, count=1000))


@contextmanager
def inspected_cluster(
    *, revive: bool = False, tls: bool = False
) -> Iterator[tuple[str, str, RedisSaver]]:
    """The test cluster (the one on TLS, with `tls`), once its slots are all served: its URL,
    a fresh key prefix, and a sync saver on that prefix to read what the test's savers wrote;
    the prefix is dropped at the end (after the killed masters come back, with `revive`)."""
    url = servers.redis_cluster_url(tls=tls)
    servers.wait_redis_cluster_ok(tls=tls)
    prefix = fresh_prefix()
    inspector = RedisSaver.from_url(url, key_prefix=prefix)
    try:
        yield url, prefix, inspector
    finally:
        inspector.close()
        if revive:  # later tests get the whole cluster
            servers.wait_redis_cluster_ok(revive=True, tls=tls)
        drop_prefix(servers.redis_cluster_url(tls=tls), prefix)


OWNERS = ["from-url", "passed-in"]  # the saver's own client (lanes) or the user's (redis-py)


def _node_url(url: str) -> str:
    """A redis:// URL of a cluster URL's first node, for a client the user makes; rediss://
    with the CA of a cluster's `ssl_ca_certs`."""
    hosts, _, query = url.partition("?")
    first = hosts.split(",")[0]
    if "ssl_ca_certs=" not in query:
        return first.replace("redis+cluster://", "redis://")
    return f"{first.replace('redis+cluster://', 'rediss://')}?{query}"


@contextmanager
def cluster_saver(url: str, prefix: str, owner: str, **options: Any) -> Iterator[RedisSaver]:
    """A RedisSaver on the cluster at `url`: its own client, or one passed in (`OWNERS`)."""
    if owner == "from-url":
        with RedisSaver.from_conn_string(url, key_prefix=prefix, **options) as saver:
            yield saver
        return
    client = RedisCluster.from_url(_node_url(url))
    try:
        yield RedisSaver(client, key_prefix=prefix, **options)
    finally:
        client.close()


@asynccontextmanager
async def async_cluster_saver(
    url: str, prefix: str, owner: str, **options: Any
) -> AsyncIterator[AsyncRedisSaver]:
    """`cluster_saver` for AsyncRedisSaver."""
    if owner == "from-url":
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix, **options) as saver:
            yield saver
        return
    client = AsyncRedisCluster.from_url(_node_url(url))
    try:
        yield AsyncRedisSaver(client, key_prefix=prefix, **options)
    finally:
        await client.aclose()

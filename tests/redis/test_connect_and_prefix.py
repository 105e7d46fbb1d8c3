"""URLs, clients, prefixes, schema versions and unreachable servers."""

from __future__ import annotations

import re
import socket
import time
from typing import Any

import pytest
import redis

from checkpoint_base import (
    ConfigError,
    SchemaVersionError,
    StorageUnavailableError,
    aconnect,
    connect,
)
from checkpoint_redis import MIGRATIONS, AsyncRedisSaver, RedisSaver
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._urls import async_client, sync_client

from .conftest import keys_under, server_url
from .test_hash_tags import _put_chain


def test_connect_url_carries_saver_options(url: str, raw: Any) -> None:
    prefix = fresh_prefix()
    sep = "&" if "?" in url else "?"
    try:
        with connect(f"{url}{sep}key_prefix={prefix}&ttl=30") as saver:
            assert isinstance(saver, RedisSaver)
            _put_chain(saver, "t", 2)
            assert len(list(saver.list(None))) == 2
        keys = keys_under(raw, prefix)
        assert keys and any(raw.pttl(k) > 0 for k in keys)
    finally:
        drop_prefix(url, prefix)


async def test_aconnect(url: str) -> None:
    prefix = fresh_prefix()
    try:
        async with aconnect(url, key_prefix=prefix) as saver:
            assert isinstance(saver, AsyncRedisSaver)
            assert await saver.aget_tuple({"configurable": {"thread_id": "x"}}) is None
            assert saver.backend.capabilities.cluster == url.startswith("redis+cluster")
    finally:
        drop_prefix(url, prefix)


def test_saver_on_a_client_it_does_not_own(url: str) -> None:
    client = sync_client(url)
    prefix = fresh_prefix()
    try:
        saver = RedisSaver(client, key_prefix=prefix)
        saver.setup()
        _put_chain(saver, "t", 1)
        saver.close()
        assert client.ping()  # still open: the saver did not create it
    finally:
        client.close()
        drop_prefix(url, prefix)


async def test_async_saver_on_a_client_it_does_not_own(url: str) -> None:
    client = async_client(url)
    prefix = fresh_prefix()
    try:
        async with AsyncRedisSaver(client, key_prefix=prefix) as saver:
            await saver.asetup()
            assert [t async for t in saver.alist(None)] == []
        assert await client.ping()
    finally:
        await client.aclose()
        drop_prefix(url, prefix)


def test_prefixes_isolate_applications(open_saver: Any, raw: Any, url: str) -> None:
    a, b = open_saver(), open_saver()
    _put_chain(a, "same-thread", 3)
    _put_chain(b, "same-thread", 1)
    assert len(list(a.list(None))) == 3
    assert len(list(b.list(None))) == 1
    a.delete_thread("same-thread")
    assert len(list(b.list({"configurable": {"thread_id": "same-thread"}}))) == 1
    b_prefix = b.backend.layout.prefix.decode()
    b_keys = keys_under(raw, b_prefix)
    _put_chain(a, "other", 2)
    a.delete_for_runs(["same-thread"])  # b's checkpoints carry that run id too
    assert keys_under(raw, b_prefix) == b_keys
    assert drop_prefix(url, b_prefix) == 1
    assert keys_under(raw, b_prefix) == set()
    assert len(list(a.list(None))) == 2


@pytest.mark.parametrize("prefix", ["a{b", "x}", ""])
def test_prefix_may_not_move_the_hash_tag(url: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match="key_prefix"):
        RedisSaver.from_url(url, key_prefix=prefix)


def test_client_must_return_bytes() -> None:
    client = redis.Redis.from_url(server_url("single"), decode_responses=True)
    with pytest.raises(ConfigError, match="decode_responses"):
        RedisSaver(client)
    client.close()


def test_newer_layout_is_refused(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    raw.set(saver.backend.layout.schema_key, len(MIGRATIONS) + 1)
    with pytest.raises(SchemaVersionError, match="upgrade"):
        saver.setup()


def test_setup_records_the_layout_version(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    saver.setup()  # idempotent
    assert int(raw.get(saver.backend.layout.schema_key)) == len(MIGRATIONS)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
def test_unreachable_server_fails_fast(scheme: str) -> None:
    port = _closed_port()
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError) as info:
        connect(f"{scheme}://127.0.0.1:{port}")
    assert time.monotonic() - started < 5
    assert info.value.__cause__ is not None


@pytest.mark.parametrize("scheme", ["redis", "redis+cluster"])
async def test_unreachable_server_fails_fast_async(scheme: str) -> None:
    """Default budgets: a server that never answered gets 1 s, not the failover budget."""
    port = _closed_port()
    saver = AsyncRedisSaver.from_url(f"{scheme}://127.0.0.1:{port}")
    started = time.monotonic()
    with pytest.raises(StorageUnavailableError):
        await saver.aget_tuple({"configurable": {"thread_id": "x"}})
    assert time.monotonic() - started < 5
    await saver.aclose()


def _flush_scripts(client: Any) -> None:
    if isinstance(client, redis.Redis):
        client.script_flush()
    else:
        client.execute_command("SCRIPT FLUSH", target_nodes=client.get_primaries())


def test_scripts_flushed_from_the_server(open_saver: Any, raw: Any) -> None:
    """After a restart or failover a node lacks the scripts: EVALSHA falls back to EVAL."""
    saver = open_saver()
    for n in range(4):
        _put_chain(saver, f"t{n}", 2)
    _flush_scripts(raw)
    assert len(list(saver.list(None))) == 8  # a batch across buckets on a cluster
    _flush_scripts(raw)
    saver.delete_for_runs(["t0", "t1"])
    _flush_scripts(raw)
    assert saver.get_tuple({"configurable": {"thread_id": "t2"}}) is not None
    assert [i.thread_id for i in saver.list_threads()] == ["t2", "t3"]


async def test_scripts_flushed_async(url: str, raw: Any) -> None:
    prefix = fresh_prefix()
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            await saver.asetup()
            for n in range(3):
                config = {"configurable": {"thread_id": f"a{n}", "checkpoint_ns": ""}}
                await saver.aput(config, _checkpoint(n), {"step": n}, {})
            _flush_scripts(raw)
            assert len([t async for t in saver.alist(None)]) == 3
            _flush_scripts(raw)
            await saver.adelete_thread("a0")
            assert len([t async for t in saver.alist(None)]) == 2
    finally:
        drop_prefix(url, prefix)


def _checkpoint(n: int) -> Any:
    from langgraph.checkpoint.base import empty_checkpoint
    from langgraph.checkpoint.base.id import uuid6

    cp = empty_checkpoint()
    cp["id"] = str(uuid6(clock_seq=n))
    return cp


def test_tls_urls_make_tls_clients() -> None:
    """`rediss://` and `redis+cluster://...?ssl=true` connect over TLS (no TLS server here)."""
    from redis.connection import SSLConnection

    client = sync_client("rediss://user:secret@127.0.0.1:6390/2")
    pool = client.connection_pool
    assert issubclass(pool.connection_class, SSLConnection)
    assert pool.connection_kwargs["password"] == "secret"
    assert pool.connection_kwargs["db"] == 2
    client.close()
    aclient = async_client("rediss://127.0.0.1:6390/0")
    assert "SSL" in aclient.connection_pool.connection_class.__name__


def test_cluster_url_parts() -> None:
    from checkpoint_redis._urls import _cluster_parts, saver_options

    nodes, kwargs = _cluster_parts("redis+cluster://u:p%40ss@h1:7000,[::1]:7001/0?ssl=true")
    assert nodes == [("h1", 7000), ("::1", 7001)]
    assert kwargs == {"username": "u", "password": "p@ss", "ssl": True}
    with pytest.raises(ConfigError, match="host:port"):
        _cluster_parts("redis+cluster://h1,h2:7000")
    with pytest.raises(ConfigError, match="database 0"):
        _cluster_parts("redis+cluster://h1:7000/3")
    # the options a Sentinel URL takes for its master's connections, and TLS: any implies ssl
    _, tls = _cluster_parts(
        "redis+cluster://h1:7000?ssl_ca_certs=/ca.pem&ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
        "&ssl_cert_reqs=required&socket_timeout=4&socket_connect_timeout=1&max_connections=20"
    )
    assert tls == {
        "ssl": True,
        "ssl_ca_certs": "/ca.pem",
        "ssl_certfile": "/c.pem",
        "ssl_keyfile": "/k.pem",
        "ssl_cert_reqs": "required",
        "socket_timeout": 4.0,
        "socket_connect_timeout": 1.0,
        "max_connections": 20,
    }
    assert _cluster_parts("redis+cluster://h1:7000?tls=yes")[1] == {"ssl": True}  # older spelling
    no_check = _cluster_parts("redis+cluster://h1:7000?ssl_check_hostname=off")[1]
    assert no_check == {"ssl": True, "ssl_check_hostname": False}
    for query, says in [
        ("ssl=false&ssl_ca_certs=/ca.pem", "ssl=false with TLS"),
        ("socket_timeout=soon", "bad value for 'socket_timeout'"),
        ("max_connections=many", "bad value for 'max_connections'"),
        ("ssl_check_hostname=maybe", "bad value for 'ssl_check_hostname'"),
        # redis-py refused it only when connecting, as if no node answered
        ("ssl_cert_reqs=REQUIRED", "'REQUIRED' (ssl_cert_reqs takes none, optional, required)"),
        ("colour=blue", "unknown option 'colour' in a redis+cluster URL"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(says)):
            _cluster_parts(f"redis+cluster://h1:7000?{query}")
    with pytest.raises(ConfigError, match=re.escape("'bogus' (ssl_cert_reqs takes none, opt")):
        saver_options("rediss://h1:6380/0?ssl_cert_reqs=bogus")
    plain, options = saver_options(
        "redis://h:1/0?key_prefix=app&ttl=60&refresh_on_read=yes&socket_keepalive=true"
    )
    assert plain == "redis://h:1/0?socket_keepalive=true"  # redis-py's own option, passed on
    assert options == {"key_prefix": "app", "ttl": 60.0, "refresh_on_read": True}
    # One that neither the saver nor redis-py takes is refused here, not at the first command.
    for unknown in ("x", "schema"):
        with pytest.raises(ConfigError, match=f"unknown option '{unknown}' in a Redis URL"):
            saver_options(f"redis://h:1/0?key_prefix=app&{unknown}=1")


def test_ttl_goes_to_redis_itself_and_nothing_sweeps(url: str, raw: Any) -> None:
    prefix = fresh_prefix()
    try:
        with connect(url, key_prefix=prefix, ttl=30) as saver:
            assert isinstance(saver, RedisSaver)
            assert saver._sweepers == []  # Redis expires the keys; no sweeper runs
            _put_chain(saver, "t", 2)
        keys = keys_under(raw, prefix)
        assert keys and any(0 < raw.pttl(k) <= 30_000 for k in keys)
        with pytest.raises(ConfigError, match="expire a thread's data by themselves"):
            connect(url, key_prefix=prefix, ttl=30, sweep_every=5)
    finally:
        drop_prefix(url, prefix)


def test_keep_latest_on_redis_is_swept_not_expired(url: str, raw: Any) -> None:
    prefix = fresh_prefix()
    try:
        with connect(url, key_prefix=prefix, ttl=30, ttl_strategy="keep_latest") as saver:
            (sweeper,) = saver._sweepers  # key expiry can only delete: a sweeper prunes
            assert sweeper.strategy == "keep_latest" and sweeper.idle == 30
            _put_chain(saver, "t", 2)
        keys = keys_under(raw, prefix)
        # The sweepers' turns (`Backend.claim`), if still there, end with the last lease.
        leases = f"{prefix}:{{#}}:leases".encode()
        assert all(0 < raw.pttl(k) <= 3_000 for k in keys if k == leases)  # every: 3 s
        data = keys - {leases}
        assert data and all(raw.pttl(k) == -1 for k in data)  # no key of the threads expires
    finally:
        drop_prefix(url, prefix)

"""Redis over TLS: `rediss://` against a real server that takes TLS connections only, and
`redis+cluster://...?ssl_ca_certs=` against a cluster whose nodes do (their bus and
replication too; a failover over TLS: `test_cluster_failover.py`).

The servers' certificates come from a throwaway CA (`checkpoint_base/testing/_tls.py`); they
check a client certificate when one is presented, and a test makes them require one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import closing
from typing import Any
from urllib.parse import quote

import pytest
import redis
import redis.asyncio as aredis
from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import SSLConnection
from redis.sentinel import Sentinel

from checkpoint_base import StorageError, StorageUnavailableError, aconnect, connect
from checkpoint_base.testing import servers
from checkpoint_base.testing._redis import command
from checkpoint_base.testing._tls import client_context
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._errors import retryable, translate
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._tls import ClientTls, client_tls
from checkpoint_redis._urls import async_client, sync_client
from tests.conformance.builders import checkpoint, config

from .failover import STEPS, counting_graph

DEPLOYMENTS = ["single", "cluster"]


@pytest.fixture(params=DEPLOYMENTS)
def deployment(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def _base_url(deployment: str) -> str:
    if deployment == "cluster":
        return servers.redis_cluster_url(tls=True)
    return servers.redis_tls_url()


@pytest.fixture
def url(deployment: str) -> Iterator[str]:
    """The TLS deployment's URL (trusting its CA) with a fresh key prefix, dropped after."""
    base, prefix = _base_url(deployment), fresh_prefix()
    try:
        yield f"{base}&key_prefix={prefix}"
    finally:
        drop_prefix(base, prefix)


def _ports(url: str) -> list[int]:
    hosts = url.split("://", 1)[1].split("/", 1)[0].split("?", 1)[0]
    return [int(item.rsplit(":", 1)[1]) for item in hosts.split(",")]


def _without_ca(url: str) -> str:
    """`url` trusting no CA of its own; TLS stays on (the cluster's `ssl_ca_certs` said so)."""
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if not part.startswith("ssl_ca_certs=")]
    if base.startswith("redis+cluster://"):
        kept.append("ssl=true")
    return f"{base}?{'&'.join(kept)}"


def _stores_a_checkpoint(saver: RedisSaver) -> None:
    stored = saver.put(config("t"), checkpoint({}), {}, {})
    assert saver.get_tuple(stored) is not None


def _kept_connections(executor: Any) -> list[Any]:
    """The connections a saver's executor keeps: its lane's, or its cluster lanes'."""
    lanes = [executor._lane] if executor._lanes is None else list(executor._lanes._lanes.values())
    assert lanes and all(lane is not None and lane._idle for lane in lanes)
    return [conn for lane in lanes for conn in lane._idle]


def test_graph_runs_over_tls(url: str) -> None:
    with connect(url) as saver:
        assert isinstance(saver, RedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"tls-{uuid.uuid4()}"}}
        final = graph.invoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert len(list(graph.get_state_history(config))) == STEPS + 2
        kept = _kept_connections(saver._executor)  # the saver's kept connections speak TLS too
        assert all(isinstance(conn, SSLConnection) for conn in kept)


async def test_async_graph_runs_over_tls(url: str) -> None:
    async with aconnect(url) as saver:
        assert isinstance(saver, AsyncRedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"tls-{uuid.uuid4()}"}}
        final = await graph.ainvoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert (await graph.aget_state(config)).values == final
        kept = _kept_connections(saver._aexecutor)
        assert all(isinstance(conn, AsyncSSLConnection) for conn in kept)


def test_an_untrusted_certificate_fails_at_once_and_names_the_fix(url: str) -> None:
    with (
        pytest.raises(StorageError) as caught,
        RedisSaver.from_conn_string(_without_ca(url)) as saver,
    ):
        saver.setup()  # (a cluster's client fails as it is made: it reads the slot map)
    assert not isinstance(caught.value, StorageUnavailableError)  # not retried: it cannot pass
    assert "certificate" in str(caught.value) and "ssl_ca_certs=" in str(caught.value)


async def test_async_an_untrusted_certificate_fails_at_once_and_names_the_fix(url: str) -> None:
    async with AsyncRedisSaver.from_conn_string(_without_ca(url)) as saver:
        with pytest.raises(StorageError) as caught:
            await saver.asetup()
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "ssl_ca_certs=" in str(caught.value)


def test_a_certificate_for_another_host_names_ssl_check_hostname(url: str) -> None:
    """The test certificates name the address 127.0.0.1 only; `127.1`, its short spelling,
    reaches the same address under another name (redis-py's cluster client would turn
    `localhost` into 127.0.0.1 itself)."""
    by_name = url.replace("127.0.0.1:", "127.1:")
    with pytest.raises(StorageError) as caught, RedisSaver.from_conn_string(by_name) as saver:
        saver.setup()
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "Hostname mismatch" in str(caught.value)
    assert "ssl_check_hostname=false" in str(caught.value)
    with RedisSaver.from_conn_string(f"{by_name}&ssl_check_hostname=false") as saver:
        _stores_a_checkpoint(saver)


def test_a_plain_connection_to_a_tls_server_points_at_rediss(url: str, deployment: str) -> None:
    port = _ports(url)[0]
    if deployment == "cluster":
        plain, fix = f"redis+cluster://127.0.0.1:{port}", "ssl=true in the query of a redis+"
    else:
        plain, fix = f"redis://127.0.0.1:{port}/0", "rediss://"
    with (
        pytest.raises(StorageUnavailableError) as caught,
        RedisSaver.from_conn_string(f"{plain}?key_prefix={fresh_prefix()}") as saver,
    ):
        saver.setup()  # (a cluster's client fails as it is made: it reads the slot map)
    assert fix in str(caught.value)


@pytest.mark.parametrize("scheme", ["rediss+cluster", "valkeys+cluster"])
def test_a_tls_cluster_scheme_speaks_tls(scheme: str) -> None:
    """`rediss+cluster://` is `redis+cluster://` with `ssl=true`, as `rediss://` is for one
    server: with the CA in the query it stores; with no query at all it speaks TLS still,
    and fails on the certificate (a plain connection fails saying the server takes TLS)."""
    tls_url = servers.redis_cluster_url(tls=True)
    assert tls_url.startswith("redis+cluster://")
    hosts, _, query = tls_url.partition("?")
    prefix = fresh_prefix()
    spelled = scheme + hosts.removeprefix("redis+cluster")
    try:
        with connect(f"{spelled}?{query}&key_prefix={prefix}") as saver:
            _stores_a_checkpoint(saver)
    finally:
        drop_prefix(tls_url, prefix)
    with pytest.raises(StorageError) as caught:
        connect(spelled)
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "certificate" in str(caught.value) and "ssl_ca_certs=" in str(caught.value)


async def test_async_a_plain_connection_to_a_tls_cluster_points_at_ssl() -> None:
    port = _ports(servers.redis_cluster_url(tls=True))[0]
    plain = f"redis+cluster://127.0.0.1:{port}?key_prefix={fresh_prefix()}"
    async with AsyncRedisSaver.from_conn_string(plain) as saver:
        with pytest.raises(StorageUnavailableError) as caught:
            await saver.asetup()
    assert "ssl=true in the query of a redis+cluster://" in str(caught.value)
    assert "rediss+cluster://" in str(caught.value)


def _tls_nodes(deployment: str) -> tuple[Any, list[int]]:
    """The certificates of the TLS deployment we started, and the ports of its nodes."""
    if deployment == "cluster":
        cluster = servers.redis_cluster(tls=True)
        return cluster.certificates, [node.port for node in cluster.nodes]
    server = servers.redis_tls()
    return server.certificates, [server.port]


def test_a_client_certificate_when_the_server_asks_one(url: str, deployment: str) -> None:
    files, ports = _tls_nodes(deployment)
    assert files is not None
    context = client_context(files)
    for port in ports:
        command(port, "CONFIG", "SET", "tls-auth-clients", "yes", tls=context)
    try:
        with pytest.raises(StorageError) as caught, RedisSaver.from_conn_string(url) as saver:
            saver.setup()  # (a cluster's client fails as it is made: it reads the slot map)
        # TLS 1.3: the client's handshake ends before the server checks for a certificate, so
        # the refusal reaches the client as an alert naming it (not retried), or, when the
        # client writes first, as the connection closed (retried, as a dropped one is).
        if "CERTIFICATE" in str(caught.value):
            assert not isinstance(caught.value, StorageUnavailableError)
        assert "ssl_certfile=" in str(caught.value)
        cert, key = quote(str(files.client_cert), safe="/"), quote(str(files.client_key), safe="/")
        with RedisSaver.from_conn_string(f"{url}&ssl_certfile={cert}&ssl_keyfile={key}") as saver:
            saver.setup()
            _stores_a_checkpoint(saver)
    finally:
        for port in ports:
            command(port, "CONFIG", "SET", "tls-auth-clients", "optional", tls=context)


def test_a_tls_connection_closed_by_the_server_names_the_client_certificate() -> None:
    """What the client meets when it wrote before the server's refusal arrived (seen in CI)."""
    closed = rx.ConnectionError(
        "Error 8 while writing to socket. EOF occurred in violation of protocol (_ssl.c:2427)."
    )
    assert retryable(closed)  # a dropped connection looks the same: it is retried
    assert "ssl_certfile=" in str(translate(closed))


# How a TLS connection meets a refusal for want of a client certificate, once it wrote: the
# sync client on Python 3.11, on 3.13 (CPython gh-115627: the socket's own error), asyncio.
_CLOSED_WORDS = [
    "Error 8 while writing to socket. EOF occurred in violation of protocol (_ssl.c:2427).",
    "Error 104 while writing to socket. Connection reset by peer.",
    "Connection closed by the server before write",
]


@pytest.mark.parametrize("words", _CLOSED_WORDS, ids=["eof", "reset", "closed"])
def test_a_closed_tls_connection_names_the_client_certificate_whatever_the_words(
    words: str,
) -> None:
    """The client's settings tell, not the words: on 3.13 a TLS connection the server closed
    reads as a plain one refused by a TLS server did, and was told to use rediss://."""
    unreachable = f"Redis Cluster cannot be connected. Please provide at least one node: {words}"
    # redis-py 8.2 raises its own class for a cluster that no node answers; before, the base
    unreachable_error = getattr(rx, "RedisClusterUnreachableError", rx.RedisClusterException)
    for closed in (rx.ConnectionError(words), unreachable_error(unreachable)):
        bare = str(translate(closed, tls=ClientTls(on=True, certificate=False)))
        assert "ssl_certfile=" in bare and "rediss://" not in bare
        given = str(translate(closed, tls=ClientTls(on=True, certificate=True)))
        assert "ssl_certfile=" not in given and "rediss://" not in given
    plain = str(translate(rx.ConnectionError(words), tls=ClientTls(on=False, certificate=False)))
    assert "rediss://" in plain and "ssl_certfile=" not in plain


def test_the_tls_settings_are_read_from_each_kind_of_client() -> None:
    bare, given, plain = ClientTls(True, False), ClientTls(True, True), ClientTls(False, False)
    cert = "ssl_certfile=/c.pem&ssl_keyfile=/k.pem"
    assert client_tls(redis.Redis.from_url("redis://127.0.0.1:1/0")) == plain
    assert client_tls(redis.Redis.from_url("rediss://127.0.0.1:1/0")) == bare
    assert client_tls(aredis.Redis.from_url(f"rediss://127.0.0.1:1/0?{cert}")) == given
    assert client_tls(AsyncRedisCluster(host="127.0.0.1", port=1, ssl=True)) == bare
    sentinel = Sentinel([("127.0.0.1", 1)], ssl=True, ssl_certfile="/c.pem", ssl_keyfile="/k.pem")
    assert client_tls(sentinel.master_for("service")) == given
    tls_url = servers.redis_cluster_url(tls=True)
    assert client_tls(async_client(tls_url)) == bare  # (connects at its first command)
    with closing(sync_client(tls_url)) as tls_cluster:  # (reads the slot map at once)
        assert client_tls(tls_cluster) == bare
    with closing(sync_client(servers.redis_cluster_url())) as plain_cluster:
        assert client_tls(plain_cluster) == plain

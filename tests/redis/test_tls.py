"""Redis over TLS: `rediss://` against a real server that takes TLS connections only.

The server's certificate comes from a throwaway CA (`checkpoint_base/testing/_tls.py`); it
checks a client certificate when one is presented, and a test makes it require one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import quote

import pytest
from redis.asyncio.connection import SSLConnection as AsyncSSLConnection
from redis.connection import SSLConnection

from checkpoint_base import StorageError, StorageUnavailableError, aconnect, connect
from checkpoint_base.testing import servers
from checkpoint_base.testing._redis import command
from checkpoint_base.testing._tls import client_context
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._testing import drop_prefix, fresh_prefix

from .failover import STEPS, counting_graph


@pytest.fixture
def url() -> Iterator[str]:
    """The TLS server's URL (trusting its CA) with a fresh key prefix, dropped after."""
    base, prefix = servers.redis_tls_url(), fresh_prefix()
    try:
        yield f"{base}&key_prefix={prefix}"
    finally:
        drop_prefix(base, prefix)


def _port(url: str) -> int:
    return int(url.split("://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


def _without_ca(url: str) -> str:
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if not part.startswith("ssl_ca_certs=")]
    return f"{base}?{'&'.join(kept)}"


def test_graph_runs_over_tls(url: str) -> None:
    with connect(url) as saver:
        assert isinstance(saver, RedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"tls-{uuid.uuid4()}"}}
        final = graph.invoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert len(list(graph.get_state_history(config))) == STEPS + 2
        lane = saver._executor._lane  # the saver's kept connections speak TLS too
        assert lane is not None and lane._idle
        assert all(isinstance(conn, SSLConnection) for conn in lane._idle)


async def test_async_graph_runs_over_tls(url: str) -> None:
    async with aconnect(url) as saver:
        assert isinstance(saver, AsyncRedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"tls-{uuid.uuid4()}"}}
        final = await graph.ainvoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert (await graph.aget_state(config)).values == final
        lane = saver._aexecutor._lane
        assert lane is not None and lane._idle
        assert all(isinstance(conn, AsyncSSLConnection) for conn in lane._idle)


def test_an_untrusted_certificate_fails_at_once_and_names_the_fix(url: str) -> None:
    with (
        RedisSaver.from_conn_string(_without_ca(url)) as saver,
        pytest.raises(StorageError) as caught,
    ):
        saver.setup()
    assert not isinstance(caught.value, StorageUnavailableError)  # not retried: it cannot pass
    assert "certificate" in str(caught.value) and "ssl_ca_certs=" in str(caught.value)


async def test_async_an_untrusted_certificate_fails_at_once_and_names_the_fix(url: str) -> None:
    async with AsyncRedisSaver.from_conn_string(_without_ca(url)) as saver:
        with pytest.raises(StorageError) as caught:
            await saver.asetup()
    assert not isinstance(caught.value, StorageUnavailableError)
    assert "ssl_ca_certs=" in str(caught.value)


def test_a_plain_connection_to_a_tls_server_points_at_rediss(url: str) -> None:
    plain = f"redis://127.0.0.1:{_port(url)}/0?key_prefix={fresh_prefix()}"
    with (
        RedisSaver.from_conn_string(plain) as saver,
        pytest.raises(StorageUnavailableError) as caught,
    ):
        saver.setup()
    assert "rediss://" in str(caught.value)


def test_a_client_certificate_when_the_server_asks_one(url: str) -> None:
    server = servers.redis_tls()
    files = server.certificates
    assert files is not None
    context = client_context(files)
    command(server.port, "CONFIG", "SET", "tls-auth-clients", "yes", tls=context)
    try:
        with RedisSaver.from_conn_string(url) as saver, pytest.raises(StorageError) as caught:
            saver.setup()
        # TLS 1.3: the client's handshake ends before the server checks for a certificate, so
        # the refusal reaches the client as an alert naming it (not retried), or, when the
        # client writes first, as the connection closed (retried, as a dropped one is).
        if "CERTIFICATE" in str(caught.value):
            assert not isinstance(caught.value, StorageUnavailableError)
        assert "ssl_certfile=" in str(caught.value)
        cert, key = quote(str(files.client_cert), safe="/"), quote(str(files.client_key), safe="/")
        with RedisSaver.from_conn_string(f"{url}&ssl_certfile={cert}&ssl_keyfile={key}") as saver:
            saver.setup()
            stored = saver.put(
                {"configurable": {"thread_id": "t", "checkpoint_ns": ""}},
                {"v": 4, "id": str(uuid.uuid4()), "ts": "", "channel_values": {},
                 "channel_versions": {}, "versions_seen": {}, "updated_channels": None},
                {},
                {},
            )  # fmt: skip
            assert saver.get_tuple(stored) is not None
    finally:
        command(server.port, "CONFIG", "SET", "tls-auth-clients", "optional", tls=context)


def test_a_tls_connection_closed_by_the_server_names_the_client_certificate() -> None:
    """What the client meets when it wrote before the server's refusal arrived (seen in CI)."""
    from redis import exceptions as rx

    from checkpoint_redis._errors import retryable, translate

    closed = rx.ConnectionError(
        "Error 8 while writing to socket. EOF occurred in violation of protocol (_ssl.c:2427)."
    )
    assert retryable(closed)  # a dropped connection looks the same: it is retried
    assert "ssl_certfile=" in str(translate(closed))

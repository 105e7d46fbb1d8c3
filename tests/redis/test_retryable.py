"""What the Redis executors send again: errors of a connection lost, never those of a request."""

from __future__ import annotations

import pytest
import redis.asyncio.connection
from redis import exceptions as rx

from checkpoint_redis._errors import retryable


async def _write_on_a_closed_connection() -> BaseException:
    conn = redis.asyncio.connection.Connection(host="127.0.0.1", port=1)  # never connected
    with pytest.raises(Exception) as raised:
        await conn._send_packed_command([b"*1\r\n$4\r\nPING\r\n"])
    return raised.value


async def test_a_write_on_a_connection_closed_under_it_is_sent_again() -> None:
    """Another task of a shared cluster client dropped the connection just before this one
    wrote on it: redis-py 8.2 raises ConnectionError, 8.1 (the last for Python 3.10) let
    "'NoneType' object has no attribute 'writelines'" out, which failed a graph's run as a
    permanent "Redis error" (test_cluster_reshard, passed-in client, on Python 3.10)."""
    exc = await _write_on_a_closed_connection()
    assert isinstance(exc, (rx.ConnectionError, AttributeError)), exc
    assert retryable(exc)


def test_errors_of_our_own_code_are_not_sent_again() -> None:
    with pytest.raises(AttributeError) as raised:
        None.writelines([])  # type: ignore[attr-defined]
    assert not retryable(raised.value)
    assert not retryable(TypeError("a bad argument"))
    assert not retryable(rx.ResponseError("WRONGTYPE Operation against a key"))

"""A connection the server (or a proxy) closed is replaced; the operation runs once more only
when that is safe."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from checkpoint_base import StorageUnavailableError
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from tests.conformance.builders import chain, checkpoint, cid, config

from .conftest import CONN_KWARGS, Opened, terminate_others, unique


async def test_terminated_connections_are_replaced(
    opened: Opened, admin: psycopg.Connection[Any]
) -> None:
    h = opened.h
    thread = unique()
    configs = await chain(h, thread, 3)
    assert terminate_others(admin) >= 1  # the saver's connections (or PgBouncer's) are gone

    latest = await h.get_tuple(config(thread))  # a read on a dead connection
    assert latest is not None
    assert latest.config["configurable"]["checkpoint_id"] == cid(configs[-1])

    terminate_others(admin)
    stored = await h.put(  # a write on a dead connection
        config(thread, checkpoint_id=cid(configs[-1])),
        checkpoint({"step": 3}, {"step": 4}),
        {"source": "loop", "step": 3},
        {"step": 4},
    )
    terminate_others(admin)
    await h.put_writes(stored, [("step", 99)], "task-a")

    terminate_others(admin)
    listed = await h.list(config(thread))
    assert [cid(t.config) for t in listed] == [cid(stored)] + [cid(c) for c in configs[::-1]]
    assert listed[0].checkpoint["channel_values"] == {"step": 3}
    assert listed[0].pending_writes == [("task-a", "step", 99)]
    # The recovery happened in the saver, not by luck: the lost connections were replaced.
    source: Any = opened.saver.conn  # type: ignore[attr-defined]
    if opened.kind == "conn":
        assert source.closed  # the saver closed the dead one and works on its own
    elif opened.kind == "pool":
        assert source.get_stats().get("connections_lost", 0) >= 1


async def test_many_dead_pooled_connections(admin: psycopg.Connection[Any], schema: str) -> None:
    """After a restart every idle connection of a pool is dead, not just the first one."""
    from checkpoint_base.testing import servers

    url = servers.postgres_url()
    with PostgresSaver(url, schema=schema, pool_options={"min_size": 4, "max_size": 4}) as saver:
        saver.setup()
        saver.conn.wait()  # type: ignore[union-attr]
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        assert terminate_others(admin) >= 4
        for _ in range(6):  # more operations than connections: each would find a dead one
            assert saver.get_tuple(config(thread)) is not None


def test_not_retried_inside_the_callers_transaction(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """Running on in a new connection would split the caller's transaction: fail instead."""
    with psycopg.connect(pg_url, autocommit=True) as setup_conn:
        PostgresSaver(setup_conn, schema=schema).setup()
    conn = psycopg.connect(pg_url, autocommit=False, prepare_threshold=None)
    try:
        saver = PostgresSaver(conn, schema=schema)
        conn.execute("SELECT 1")  # the caller opened a transaction
        terminate_others(admin)
        with pytest.raises(StorageUnavailableError) as raised:
            saver.put(config(unique()), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        assert isinstance(raised.value.__cause__, psycopg.OperationalError)
        # The next call starts outside any transaction: the saver reconnects and succeeds.
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        assert saver.get_tuple(config(thread)) is not None
        saver.close()
    finally:
        conn.close()


async def test_async_connection_reopened_after_close(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """A connection the saver was given and that was closed under it is replaced too."""
    conn = await psycopg.AsyncConnection.connect(pg_url, **CONN_KWARGS)
    async with AsyncPostgresSaver(conn, schema=schema) as saver:
        await saver.asetup()
        thread = unique()
        await saver.aput(config(thread), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
        await conn.close()
        got = await saver.aget_tuple(config(thread))
        assert got is not None
        assert got.checkpoint["channel_values"] == {"a": 1}


def test_a_socket_error_while_waiting_is_a_lost_connection(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """psycopg turns an OSError of its wait on the socket into "connection socket closed"
    without libpq marking the connection bad (a terminated backend met this way made a
    `get_tuple` fail once in CI): the read is retried on another connection."""
    from psycopg import waiting
    from psycopg_pool import ConnectionPool

    from checkpoint_postgres._errors import connection_lost

    lost = psycopg.OperationalError("connection socket closed")
    lost.__cause__ = ConnectionResetError(104, "Connection reset by peer")
    assert connection_lost(lost, None)
    assert not connection_lost(psycopg.OperationalError("something else"), None)

    with ConnectionPool(pg_url, min_size=2, max_size=2, kwargs=CONN_KWARGS) as pool:
        saver = PostgresSaver(pool, schema=schema)
        saver.setup()
        stored = saver.put(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
        real = waiting.wait
        failures = [ConnectionResetError(104, "Connection reset by peer")]

        def flaky(*args: Any, **kwargs: Any) -> Any:
            if failures:  # what psycopg's waits raise when the socket fails under them
                try:
                    raise failures.pop()
                except OSError as ex:
                    raise psycopg.OperationalError("connection socket closed") from ex
            return real(*args, **kwargs)

        monkeypatch.setattr(waiting, "wait", flaky)
        got = saver.get_tuple(config("t"))
        assert not failures  # the failure happened, and the read still answered
        assert got is not None and cid(got.config) == cid(stored)

"""Opening PostgreSQL savers: from a URL (a pool with limits), a connection or a pool;
prepared statements only when asked for."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_base import ConfigError, aconnect, connect
from checkpoint_postgres import POOL_DEFAULTS, AsyncPostgresSaver, PostgresSaver
from tests.conformance.builders import checkpoint, config

from .conftest import unique


def test_connect_builds_a_bounded_pool(pg_url: str, schema: str) -> None:
    with connect(pg_url, schema=schema) as saver:
        pool = saver.conn  # type: ignore[attr-defined]
        assert isinstance(pool, ConnectionPool)
        assert (pool.min_size, pool.max_size) == (
            POOL_DEFAULTS["min_size"],
            POOL_DEFAULTS["max_size"],
        )
        assert pool.timeout == POOL_DEFAULTS["timeout"]
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        assert saver.get_tuple(config(thread)) is not None
    assert pool.closed  # the saver owned it


def test_connect_takes_pool_limits_and_the_short_scheme(pg_url: str, schema: str) -> None:
    url = "postgres://" + pg_url.split("://", 1)[1]
    with connect(url, schema=schema, max_size=3, timeout=5.0) as saver:
        pool = saver.conn  # type: ignore[attr-defined]
        assert (pool.max_size, pool.timeout) == (3, 5.0)


async def test_aconnect_opens_its_pool_in_the_loop(pg_url: str, schema: str) -> None:
    async with aconnect(pg_url, schema=schema) as saver:
        pool = saver.conn  # type: ignore[attr-defined]
        assert isinstance(pool, AsyncConnectionPool)
        thread = unique()
        await saver.aput(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        assert await saver.aget_tuple(config(thread)) is not None
    assert pool.closed


def _prepared(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_prepared_statements", prepare=False).fetchone()
    return int(row[0]) if row else 0


@pytest.mark.parametrize(("threshold", "expect_prepared"), [(None, False), (0, True)])
def test_prepared_statements_only_when_configured(
    pg_url: str, schema: str, threshold: int | None, expect_prepared: bool
) -> None:
    # The connection's own threshold would prepare; the saver's default must not.
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=0) as conn:
        saver = PostgresSaver(conn, schema=schema, prepare_threshold=threshold)
        saver.setup()
        thread = unique()
        for step in range(3):
            saver.put(config(thread), checkpoint({"a": step}), {}, {"a": step + 1})
            saver.get_tuple(config(thread))
        before = _prepared(conn)
        assert (before > 0) == expect_prepared


def test_bad_arguments_are_config_errors(pg_url: str) -> None:
    with pytest.raises(ConfigError, match="prepare_threshold"):
        PostgresSaver(pg_url, prepare_threshold=-1)
    with pytest.raises(ConfigError, match="schema"):
        PostgresSaver(pg_url, schema="")
    with pytest.raises(ConfigError, match="ConnectionPool"):
        PostgresSaver(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="AsyncConnectionPool"):
        AsyncPostgresSaver(object())  # type: ignore[arg-type]

"""`prepare_threshold="auto"` (the default): prepared statements on a direct server only.

A direct server's sessions keep what a connection prepared; PgBouncer in transaction mode
(1.18 here: no prepared statement support at all) sends each statement to any session.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from checkpoint_base import ConfigError
from checkpoint_base.testing import servers
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from tests.conformance.builders import checkpoint, config

RUNS = 12  # more than psycopg's default threshold (5) for every statement


def _checkpoint(thread_id: str, step: int) -> tuple[Any, ...]:
    """A put's arguments: one channel, `owner`, naming the thread and the step."""
    cp = checkpoint({"owner": f"{thread_id} at {step}"}, {"owner": step})
    return config(thread_id), cp, {"step": step}, {"owner": step}


def _owner(tup: Any) -> str:
    assert tup is not None
    return str(tup.checkpoint["channel_values"]["owner"])


def _work(saver: Any, thread_id: str, runs: int = RUNS) -> None:
    """Puts, writes and reads, each more often than the threshold; checks every answer."""
    for step in range(1, runs + 1):
        stored = saver.put(*_checkpoint(thread_id, step))
        saver.put_writes(stored, [("owner", step)], f"task-{step}")
        assert _owner(saver.get_tuple(config(thread_id))) == f"{thread_id} at {step}"
        assert len(list(saver.list(config(thread_id), limit=3))) == min(step, 3)


async def _awork(saver: Any, thread_id: str, runs: int = RUNS) -> None:
    for step in range(1, runs + 1):
        stored = await saver.aput(*_checkpoint(thread_id, step))
        await saver.aput_writes(stored, [("owner", step)], f"task-{step}")
        assert _owner(await saver.aget_tuple(config(thread_id))) == f"{thread_id} at {step}"


def _prepared(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute("SELECT count(*) FROM pg_prepared_statements").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def test_a_direct_server_gets_prepared_statements(conn: Any, schema: str) -> None:
    saver = PostgresSaver(conn, schema=schema)
    saver.setup()
    _work(saver, "direct")
    assert saver._executor._preparing.prepare is None  # psycopg prepares by its threshold
    assert saver.backend.plan_cached_gets is False  # the plain statements, prepared
    assert _prepared(conn) > 0


def test_none_never_prepares(conn: Any, schema: str) -> None:
    saver = PostgresSaver(conn, schema=schema, prepare_threshold=None)
    saver.setup()
    _work(saver, "never")
    assert saver.backend.plan_cached_gets is True
    assert _prepared(conn) == 0


def test_a_connection_that_never_prepares_keeps_the_schema_functions(
    pg_url: str, schema: str
) -> None:
    with psycopg.connect(pg_url, autocommit=True, prepare_threshold=None) as c:
        saver = PostgresSaver(c, schema=schema)
        saver.setup()
        _work(saver, "yours")
        assert saver.backend.plan_cached_gets is True
        assert _prepared(c) == 0


def test_the_saver_s_own_pool_on_a_direct_server_prepares(pg_url: str, schema: str) -> None:
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        saver.setup()
        _work(saver, "pooled")
        assert saver._executor._preparing.prepare is None
        assert saver.backend.plan_cached_gets is False


def test_behind_pgbouncer_nothing_is_prepared(schema: str) -> None:
    # PgBouncer 1.18 in transaction mode: a statement prepared on one server session and
    # run on another fails, so everything below would break if "auto" prepared here.
    with PostgresSaver.from_conn_string(
        servers.pgbouncer_url(), schema=schema, pool_options={"max_size": 4}
    ) as saver:
        saver.setup()
        # Settled by the first connection, before anything could be prepared and refused.
        assert saver._executor._preparing.prepare is False
        _work(saver, "bounced")
        assert saver._executor._preparing.prepare is False
        assert saver.backend.plan_cached_gets is True


def test_a_prepared_statement_that_went_missing_stops_preparing(conn: Any, schema: str) -> None:
    saver = PostgresSaver(conn, schema=schema)
    saver.setup()
    _work(saver, "lost")
    assert _prepared(conn) > 0
    # As a pooler that hid itself would: the session no longer has what psycopg prepared
    # (sent through libpq, so psycopg's own cache still believes in its statements).
    conn.pgconn.exec_(b"DEALLOCATE ALL")
    assert _owner(saver.get_tuple(config("lost"))) == f"lost at {RUNS}"
    assert saver._executor._preparing.prepare is False
    assert saver.backend.plan_cached_gets is True
    _work(saver, "after")  # unprepared from now on, and right


def test_never_probes_inside_your_transaction(pg_url: str, schema: str) -> None:
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as other:
        other.setup()
    with psycopg.connect(pg_url) as c:  # not autocommit
        saver = PostgresSaver(c, schema=schema)
        with c.transaction():
            saver.put(*_checkpoint("tx", 1))
            assert saver._executor._preparing.pending  # not a statement of ours in there
        assert _owner(saver.get_tuple(config("tx"))) == "tx at 1"
        assert not saver._executor._preparing.pending


def _flagged(url: str, flag: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}pgbouncer={flag}"


@pytest.mark.parametrize(
    "option", ["pgbouncer=true", "prepared_statement_cache_size=0", "statement_cache_size=0"]
)
def test_a_url_that_says_pgbouncer_never_prepares(pg_url: str, schema: str, option: str) -> None:
    """Prisma's `pgbouncer=true`, which the pooled URLs of Supabase and Neon carry, and
    asyncpg's statement cache sizes of 0 (SQLAlchemy's way through PgBouncer): libpq refused
    the URL; the saver takes them as prepare_threshold=None, so a pooler that does not show
    itself to "auto" never sees a prepared statement. `pgbouncer=false` leaves "auto"."""
    flagged = f"{pg_url}{'&' if '?' in pg_url else '?'}{option}"
    with PostgresSaver.from_conn_string(
        flagged, schema=schema, pool_options={"min_size": 1, "max_size": 1}
    ) as saver:
        saver.setup()
        _work(saver, "flagged")
        assert saver.backend.plan_cached_gets is True
        with saver.conn.connection() as used:  # the one connection that did all the work
            assert _prepared(used) == 0
    with PostgresSaver.from_conn_string(_flagged(pg_url, "false"), schema=schema) as direct:
        direct.setup()
        _work(direct, "unflagged")
        assert direct.backend.plan_cached_gets is False


async def test_pgbouncer_true_through_pgbouncer(schema: str) -> None:
    flagged = _flagged(servers.pgbouncer_url(), "true")
    async with AsyncPostgresSaver.from_conn_string(flagged, schema=schema) as saver:
        await saver.asetup()
        await _awork(saver, "aflagged")
        assert saver.backend.plan_cached_gets is True


@pytest.mark.parametrize(
    ("flag", "threshold", "needle"),
    [
        ("true", 5, "pgbouncer=true.*prepare_threshold=5 asks to prepare them"),
        ("true", 0, "prepare_threshold=0 asks to prepare them"),
        ("maybe", "auto", "pgbouncer=maybe in the PostgreSQL URL: give true or false"),
    ],
)
def test_pgbouncer_flag_conflicts_are_refused(
    pg_url: str, flag: str, threshold: Any, needle: str
) -> None:
    with pytest.raises(ConfigError, match=needle):
        PostgresSaver(_flagged(pg_url, flag), prepare_threshold=threshold)


@pytest.mark.parametrize("bad", ["always", -1, True, 1.5])
def test_a_bad_threshold_is_refused(pg_url: str, bad: Any) -> None:
    with pytest.raises(ConfigError, match="prepare_threshold"):
        PostgresSaver(pg_url, prepare_threshold=bad)


async def test_async_direct_and_behind_pgbouncer(pg_url: str, schema: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        await saver.asetup()
        await _awork(saver, "adirect")
        assert saver._aexecutor._preparing.prepare is None
        assert saver.backend.plan_cached_gets is False
    async with AsyncPostgresSaver.from_conn_string(
        servers.pgbouncer_url(), schema=schema, pool_options={"max_size": 4}
    ) as saver:
        assert await saver.aget_tuple(config("abounced")) is None
        assert saver._aexecutor._preparing.prepare is False
        await _awork(saver, "abounced")
        assert saver._aexecutor._preparing.prepare is False
        assert saver.backend.plan_cached_gets is True

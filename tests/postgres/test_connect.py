"""Opening PostgreSQL savers: from a URL (a pool with limits), a connection or a pool;
prepared statements only when asked for."""

from __future__ import annotations

import gc
import os
import socket
import subprocess
import sys
import time
import urllib.parse
from typing import Any

import psycopg
import psycopg.conninfo
import pytest
from psycopg_pool import AsyncConnectionPool, ConnectionPool

from checkpoint_base import ConfigError, StorageUnavailableError, aconnect, connect
from checkpoint_postgres import (
    CONNECTION_DEFAULTS,
    POOL_DEFAULTS,
    AsyncPostgresSaver,
    PostgresSaver,
)
from checkpoint_postgres._errors import FIRST_WAIT
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


def _tcp_options(conn: psycopg.Connection[Any]) -> dict[str, int]:
    """The kernel's keepalive and user-timeout settings of the connection's socket."""
    with socket.socket(fileno=os.dup(conn.pgconn.socket)) as sock:
        return {
            "SO_KEEPALIVE": sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE),
            "TCP_KEEPIDLE": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPIDLE),
            "TCP_KEEPINTVL": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPINTVL),
            "TCP_KEEPCNT": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_KEEPCNT),
            "TCP_USER_TIMEOUT": sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_USER_TIMEOUT),
        }


def _option(conn: psycopg.Connection[Any], name: str) -> str | None:
    """The value libpq used for conninfo option `name`."""
    for option in conn.pgconn.info:
        if option.keyword == name.encode():
            return None if option.val is None else option.val.decode()
    raise AssertionError(f"libpq has no option {name}")


def test_connections_of_a_url_find_a_silent_server(pg_url: str, schema: str) -> None:
    # Over TCP: keepalives mean nothing on a Unix socket.
    assert psycopg.conninfo.conninfo_to_dict(pg_url)["host"] == "127.0.0.1"
    with (
        connect(pg_url, schema=schema) as saver,
        saver.conn.connection() as conn,  # type: ignore[attr-defined]
    ):
        assert _tcp_options(conn) == {
            "SO_KEEPALIVE": 1,
            "TCP_KEEPIDLE": CONNECTION_DEFAULTS["keepalives_idle"],
            "TCP_KEEPINTVL": CONNECTION_DEFAULTS["keepalives_interval"],
            "TCP_KEEPCNT": CONNECTION_DEFAULTS["keepalives_count"],
            "TCP_USER_TIMEOUT": CONNECTION_DEFAULTS["tcp_user_timeout"],
        }
        assert _option(conn, "connect_timeout") == str(CONNECTION_DEFAULTS["connect_timeout"])


async def test_async_connections_of_a_url_find_a_silent_server(pg_url: str, schema: str) -> None:
    async with aconnect(pg_url, schema=schema) as saver:
        await saver.asetup()
        async with saver.conn.connection() as conn:  # type: ignore[attr-defined]
            options = _tcp_options(conn)  # type: ignore[arg-type]
    assert options["TCP_KEEPIDLE"] == CONNECTION_DEFAULTS["keepalives_idle"]
    assert options["TCP_USER_TIMEOUT"] == CONNECTION_DEFAULTS["tcp_user_timeout"]


def test_the_conninfo_and_pool_kwargs_win_over_connection_defaults(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = pg_url + ("&" if "?" in pg_url else "?") + "keepalives_idle=7&keepalives=1"
    kwargs = {"tcp_user_timeout": 4321}
    monkeypatch.setenv("PGCONNECT_TIMEOUT", "4")
    with (
        connect(url, schema=schema, pool_options={"kwargs": kwargs}) as saver,
        saver.conn.connection() as conn,  # type: ignore[attr-defined]
    ):
        options = _tcp_options(conn)
        assert options["TCP_KEEPIDLE"] == 7
        assert options["TCP_USER_TIMEOUT"] == 4321
        assert options["TCP_KEEPCNT"] == CONNECTION_DEFAULTS["keepalives_count"]
        assert _option(conn, "connect_timeout") == "4"  # the environment's, not ours


def test_a_malformed_conninfo_names_itself(schema: str) -> None:
    with pytest.raises(ConfigError, match="malformed PostgreSQL conninfo"):
        PostgresSaver("host=127.0.0.1 port", schema=schema)


def test_a_saver_dropped_unclosed_closes_its_own_pool(pg_url: str, schema: str) -> None:
    saver = connect(pg_url, schema=schema)
    pool = saver.conn  # type: ignore[attr-defined]
    thread = unique()
    saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
    del saver
    gc.collect()
    assert pool.closed  # here, in this thread: not later in one of the pool's workers
    given = ConnectionPool(pg_url, min_size=1, open=True)
    try:
        other = PostgresSaver(given, schema=schema)
        assert other.get_tuple(config(thread)) is not None
        del other
        gc.collect()
        assert not given.closed  # a pool passed in is the caller's
    finally:
        given.close()


_UNCLOSED_ASYNC = """
import asyncio, logging, sys
from checkpoint_base import aconnect
from tests.conformance.builders import checkpoint, config

logging.getLogger("psycopg.pool").setLevel(logging.ERROR)  # cancelled attempts are logged


async def main():
    saver = await aconnect(sys.argv[1], schema=sys.argv[2], min_size=8)  # still opening 7
    await saver.aput(config("t"), checkpoint({"v": 1}, {"v": "1"}), {}, {"v": "1"})
    return saver  # never closed


kept = asyncio.run(main())
print("done", flush=True)
"""


def test_asyncio_run_ends_with_an_unclosed_saver_still_opening_its_pool(
    pg_url: str, schema: str
) -> None:
    """asyncio.run cancels every task at its end and waits for them; psycopg_pool's tasks
    took a cancelled connection attempt for a failed one and tried again, so the wait never
    ended (4 runs of 5 hung before the saver closed its own pool at the loop's shutdown)."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
    for _ in range(3):
        done = subprocess.run(
            [sys.executable, "-c", _UNCLOSED_ASYNC, pg_url, schema],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=root,
            env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
        )
        assert (done.returncode, done.stdout, done.stderr) == (0, "done\n", "")


def test_a_url_names_the_schema(pg_url: str, schema: str, admin: psycopg.Connection[Any]) -> None:
    url = pg_url + ("&" if "?" in pg_url else "?") + f"schema={schema}&application_name=x%20y"
    with connect(url) as saver:
        assert saver.backend.schema == schema  # type: ignore[attr-defined]
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        with saver.conn.connection() as conn:  # type: ignore[attr-defined]
            assert conn.info.parameter_status("application_name") == "x y"
    found = admin.execute(
        "SELECT count(*) FROM pg_tables WHERE schemaname = %s AND tablename = 'checkpoints'",
        (schema,),
    ).fetchone()
    assert found == (1,)
    with pytest.raises(ConfigError, match="give one of them"):
        connect(url, schema=schema + "_other")
    with pytest.raises(ConfigError, match="malformed PostgreSQL conninfo"):
        connect(pg_url + ("&" if "?" in pg_url else "?") + "shema=typo")


def _elsewhere(pg_url: str, **change: str) -> str:
    parts = urllib.parse.urlsplit(pg_url)
    user, at, host = parts.netloc.rpartition("@")
    if "user" in change:
        user, at = change["user"], "@"
    if "port" in change:
        host = f"{host.rpartition(':')[0]}:{change['port']}"
    netloc = f"{user}{at}{host}"
    path = f"/{change['db']}" if "db" in change else parts.path
    return urllib.parse.urlunsplit(parts._replace(netloc=netloc, path=path))


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"db": "no_such_database_here"}, 'database "no_such_database_here" does not exist'),
        ({"user": "no_such_role_here"}, 'role "no_such_role_here" does not exist'),
        ({"port": "1"}, "Connection refused"),
    ],
)
async def test_a_server_that_will_not_connect_fails_at_once_saying_why(
    pg_url: str, change: dict[str, str], reason: str
) -> None:
    """The pool retried for its whole timeout (30 s) and said only that it had no
    connection; now the first connection is waited for FIRST_WAIT seconds, then one
    direct connection tells why."""
    url = _elsewhere(pg_url, **change)

    async def open_async() -> None:
        async with aconnect(url):
            pass

    start = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="cannot connect to PostgreSQL") as sync:
        connect(url).close()
    middle = time.monotonic()
    with pytest.raises(StorageUnavailableError, match="cannot connect to PostgreSQL") as asyn:
        await open_async()
    end = time.monotonic()
    assert reason in str(sync.value) and reason in str(asyn.value)
    assert middle - start < FIRST_WAIT + 8 and end - middle < FIRST_WAIT + 8


def test_a_busy_pool_says_every_connection_is_in_use(pg_url: str, schema: str) -> None:
    with ConnectionPool(
        pg_url, min_size=1, max_size=1, timeout=1.0, kwargs={"autocommit": True}
    ) as pool:
        saver = PostgresSaver(pool, schema=schema)
        saver.setup()
        held = pool.getconn()  # the pool's only connection, busy elsewhere
        try:
            with pytest.raises(StorageUnavailableError, match="every connection was in use"):
                saver.get_tuple(config("t"))
        finally:
            pool.putconn(held)
        assert saver.get_tuple(config("t")) is None

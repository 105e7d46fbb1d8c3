"""PostgreSQL over TLS: a real server that takes TLS connections only over TCP (`hostssl`;
`hostnossl` is rejected), with certificates of a throwaway CA
(`checkpoint_base/testing/_tls.py`), and a role that must present a client certificate
(`clientcert=verify-ca`).

What must hold: a graph runs on connections that speak TLS; a connection TLS refuses (a
server certificate not trusted, a client certificate missing, a plain connection to a TLS-only
server, TLS asked of a server without it) fails the call as a StorageError that names the
conninfo option to set, not as a StorageUnavailableError an application would retry.
"""

from __future__ import annotations

import asyncio
import operator
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import quote

import psycopg
import pytest
from langgraph.graph import START, StateGraph
from psycopg import sql

from checkpoint_base import StorageError, StorageUnavailableError, aconnect, connect
from checkpoint_base._cli import main
from checkpoint_base.testing import servers
from checkpoint_base.testing._pg import CERT_USER, SCRAM_USER
from checkpoint_base.testing._tls import make_certificates
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._testing import drop_schema, fresh_schema
from tests.conformance.builders import checkpoint, config
from tests.postgres.conftest import terminate_others


class _State(TypedDict):
    log: Annotated[list[int], operator.add]


def _graph() -> Any:
    builder = StateGraph(_State)
    builder.add_node("step", lambda state: {"log": [len(state["log"]) + 1]})
    builder.add_edge(START, "step")
    return builder


@pytest.fixture
def tls_url() -> str:
    return servers.postgres_tls_url()


@pytest.fixture
def url(tls_url: str) -> Iterator[str]:
    """The TLS server's URL (verify-full, trusting its CA) with a fresh schema, dropped after."""
    schema = fresh_schema("pgtls")
    try:
        yield f"{tls_url}&schema={schema}"
    finally:
        drop_schema(tls_url, schema)


def _with(url: str, **options: str) -> str:
    """`url` with `options` in its query instead of any of the same name."""
    base, _, query = url.partition("?")
    kept = [part for part in query.split("&") if part and part.split("=")[0] not in options]
    kept += [f"{name}={quote(value, safe='/')}" for name, value in options.items()]
    return f"{base}?{'&'.join(kept)}"


def _ssl(conn: psycopg.Connection[Any]) -> bool:
    row = conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").fetchone()
    return bool(conn.pgconn.ssl_in_use) and row is not None and bool(row[0])


_THREAD = {"configurable": {"thread_id": "tls"}}


def test_graph_runs_over_tls(url: str) -> None:
    with connect(url) as saver:
        assert isinstance(saver, PostgresSaver)
        graph = _graph().compile(checkpointer=saver)
        for _ in range(3):
            graph.invoke({"log": []}, _THREAD)
        assert graph.get_state(_THREAD).values == {"log": [1, 2, 3]}
        pool = saver._executor._pool  # type: ignore[union-attr]
        assert pool is not None
        with pool.connection() as conn:  # the saver's own connections speak TLS
            assert _ssl(conn)


async def test_async_graph_runs_over_tls(url: str) -> None:
    async with aconnect(url) as saver:
        assert isinstance(saver, AsyncPostgresSaver)
        graph = _graph().compile(checkpointer=saver)
        for _ in range(3):
            await graph.ainvoke({"log": []}, _THREAD)
        assert (await graph.aget_state(_THREAD)).values == {"log": [1, 2, 3]}
        pool = saver._aexecutor._pool  # type: ignore[union-attr]
        assert pool is not None
        async with pool.connection() as conn:
            row = await (
                await conn.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).fetchone()
            assert conn.pgconn.ssl_in_use and row == (True,)


def test_a_tls_connection_the_server_closed_is_replaced(tls_url: str, url: str) -> None:
    """What Cloud SQL's idle timeout or a failover does to pooled connections over TLS
    ("SSL connection has been closed unexpectedly"): the next call takes a new one."""
    with connect(url) as saver, psycopg.connect(tls_url, autocommit=True) as admin:
        graph = _graph().compile(checkpointer=saver)
        graph.invoke({"log": []}, _THREAD)
        assert terminate_others(admin) >= 1  # the saver's pooled connection among them
        graph.invoke({"log": []}, _THREAD)
        assert graph.get_state(_THREAD).values == {"log": [1, 2]}
        assert len(list(graph.get_state_history(_THREAD))) == 6


async def test_async_a_tls_connection_the_server_closed_is_replaced(tls_url: str, url: str) -> None:
    async with aconnect(url) as saver:
        graph = _graph().compile(checkpointer=saver)
        await graph.ainvoke({"log": []}, _THREAD)
        with psycopg.connect(tls_url, autocommit=True) as admin:
            assert terminate_others(admin) >= 1
        await graph.ainvoke({"log": []}, _THREAD)
        assert (await graph.aget_state(_THREAD)).values == {"log": [1, 2]}


def _refused(url: str, flavor: str) -> StorageError:
    """The error of opening a saver on `url` (`connect` runs setup(), the first call)."""
    if flavor == "sync":
        with pytest.raises(StorageError) as caught, connect(url):
            pass
        return caught.value

    async def opened() -> None:
        async with aconnect(url):
            pass

    with pytest.raises(StorageError) as acaught:
        asyncio.run(opened())
    return acaught.value


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_an_untrusted_server_certificate_fails_and_names_sslrootcert(
    url: str, tmp_path: Path, flavor: str
) -> None:
    other = make_certificates(tmp_path)  # a CA that did not sign the server's certificate
    error = _refused(_with(url, sslrootcert=str(other.ca)), flavor)
    assert not isinstance(error, StorageUnavailableError)  # sending it again fails again
    assert "certificate verify failed" in str(error) and "sslrootcert=" in str(error)


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_a_plain_connection_to_a_tls_only_server_names_sslmode(url: str, flavor: str) -> None:
    error = _refused(_with(url, sslmode="disable"), flavor)
    assert not isinstance(error, StorageUnavailableError)
    assert "no encryption" in str(error) and "sslmode=require" in str(error)


def test_tls_asked_of_a_server_without_it_names_the_fix() -> None:
    plain = servers.postgres_url()
    error = _refused(_with(plain, sslmode="require", schema=fresh_schema("pgtls")), "sync")
    assert not isinstance(error, StorageUnavailableError)
    assert "does not speak TLS" in str(error)


@pytest.fixture
def cert_user(tls_url: str) -> str:
    """CERT_USER exists, may use the schema's database, and is named in a copy of `tls_url`."""
    with psycopg.connect(tls_url, autocommit=True) as admin:
        exists = admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (CERT_USER,))
        if exists.fetchone() is None:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER").format(sql.Identifier(CERT_USER))
            )
    return tls_url.replace("postgresql://postgres@", f"postgresql://{CERT_USER}@", 1)


def test_a_client_certificate_when_the_server_asks_one(cert_user: str, url: str) -> None:
    schema = url.rsplit("schema=", 1)[1]
    as_cert_user = _with(cert_user, schema=schema)
    error = _refused(as_cert_user, "sync")
    assert not isinstance(error, StorageUnavailableError)
    assert "client certificate" in str(error) and "sslcert=" in str(error)
    files = servers.postgres_tls().certificates
    assert files is not None
    with_cert = _with(as_cert_user, sslcert=str(files.client_cert), sslkey=str(files.client_key))
    with connect(with_cert) as saver:
        stored = saver.put(config(f"t-{uuid.uuid4()}"), checkpoint({"a": 1}), {}, {"a": 1})
        got = saver.get_tuple(stored)
        assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


@pytest.mark.parametrize("flavor", ["sync", "async"])
def test_refused_credentials_fail_at_once_and_say_where_they_go(
    tls_url: str, url: str, flavor: str
) -> None:
    secret = uuid.uuid4().hex
    with psycopg.connect(tls_url, autocommit=True) as admin:
        role = sql.Identifier(SCRAM_USER)
        if admin.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (SCRAM_USER,)).fetchone():
            admin.execute(sql.SQL("ALTER ROLE {} PASSWORD {}").format(role, sql.Literal(secret)))
        else:
            admin.execute(
                sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(
                    role, sql.Literal(secret)
                )
            )
    as_role = url.replace("postgresql://postgres@", f"postgresql://{SCRAM_USER}@", 1)
    for given, says in [("", "no password supplied"), (":wrong", "password authentication failed")]:
        error = _refused(as_role.replace(f"{SCRAM_USER}@", f"{SCRAM_USER}{given}@", 1), flavor)
        assert not isinstance(error, StorageUnavailableError)  # not retried: it cannot pass
        assert says in str(error) and "postgresql://user:password@host" in str(error)
    right = as_role.replace(f"{SCRAM_USER}@", f"{SCRAM_USER}:{secret}@", 1)
    with connect(right) as saver:
        assert saver.get_tuple(config("nothing")) is None


def test_the_command_line_names_the_fix(
    url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = make_certificates(tmp_path)
    capsys.readouterr()
    assert main(["threads", _with(url, sslrootcert=str(other.ca))]) != 0
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert "sslrootcert=" in err and "is the server running" not in err

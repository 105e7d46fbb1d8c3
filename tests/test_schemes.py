"""URLs as applications already write them: SQLAlchemy's driver-qualified schemes
(`postgresql+asyncpg://`, `sqlite+aiosqlite://`) and Valkey's (`valkey://`), opened on real
servers by `connect`, `aconnect`, the saver classes and the command line."""

from __future__ import annotations

import importlib.metadata
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.base import empty_checkpoint

from checkpoint_base import (
    CheckpointSaver,
    ConfigError,
    StorageError,
    UnknownBackendError,
    aconnect,
    connect,
)
from checkpoint_base._cli import main
from checkpoint_base._connect import backend_url
from checkpoint_base._schemes import DRIVERS, RENAMED, TLS_RENAMED, canonical_url
from checkpoint_base.testing import servers
from checkpoint_postgres._urls import SSL_MODES, libpq_url, parse_url


def _with_scheme(url: str, scheme: str) -> str:
    return f"{scheme}://{url.split('://', 1)[1]}"


def _with_query(url: str, query: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}{query}"


def _config(thread_id: str) -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


def _put(saver: CheckpointSaver, thread_id: str) -> str:
    checkpoint = empty_checkpoint()
    saver.put(_config(thread_id), checkpoint, {"source": "input", "step": -1}, {})
    return str(checkpoint["id"])


def _stored_id(saver: CheckpointSaver, thread_id: str) -> str | None:
    found = saver.get_tuple(_config(thread_id))
    return None if found is None else str(found.config["configurable"]["checkpoint_id"])


# -- the table ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgresql+asyncpg://me:pw@db:5432/app?x=1", "postgresql://me:pw@db:5432/app?x=1"),
        ("postgresql+psycopg://db/app", "postgresql://db/app"),
        ("postgresql+psycopg_async://db/app", "postgresql://db/app"),
        ("postgresql+psycopg2://db/app", "postgresql://db/app"),
        ("postgresql+psycopg2cffi://db/app", "postgresql://db/app"),
        ("postgresql+pg8000://db/app", "postgresql://db/app"),
        ("postgres+asyncpg://db/app", "postgres://db/app"),
        ("PostgreSQL+AsyncPG://db/App", "postgresql://db/App"),
        ("sqlite+aiosqlite:///rel.db", "sqlite:///rel.db"),
        ("sqlite+pysqlite:////abs/x.db?timeout=5", "sqlite:////abs/x.db?timeout=5"),
        ("valkey://h:6379/2", "redis://h:6379/2"),
        ("valkeys://u:p@h:6380/0", "rediss://u:p@h:6380/0"),
        ("valkey+cluster://a:1,b:2", "redis+cluster://a:1,b:2"),
        ("valkey+sentinel://a:1/mymaster", "redis+sentinel://a:1/mymaster"),
        ("rediss+cluster://a:1,b:2", "redis+cluster://a:1,b:2?ssl=true"),
        (
            "rediss+cluster://a:1?ssl_ca_certs=/ca.pem",
            "redis+cluster://a:1?ssl_ca_certs=/ca.pem&ssl=true",
        ),
        ("valkeys+cluster://a:1?ssl=true", "redis+cluster://a:1?ssl=true"),
        ("rediss+sentinel://a:1/m?", "redis+sentinel://a:1/m?ssl=true"),
        ("valkeys+sentinel://a:1/m/2", "redis+sentinel://a:1/m/2?ssl=true"),
    ],
)
def test_aliases_name_the_registered_scheme(given: str, expected: str) -> None:
    assert canonical_url(given) == expected
    assert backend_url(given) == expected


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://db/app",
        "redis+cluster://a:1,b:2",
        "redis+sentinel://a:1/m",
        "postgresql+mystery://db/app",  # an unknown driver: left for the error below
        "sqlite+pysqlcipher:///x.db",
        "mysql+pymysql://db/app",
        "memory://",
        "not a url",
    ],
)
def test_other_urls_are_left_as_written(url: str) -> None:
    assert canonical_url(url) == url


def test_every_alias_names_an_installed_scheme() -> None:
    installed = {ep.name for ep in importlib.metadata.entry_points(group="checkpointers.backends")}
    assert set(RENAMED.values()) | set(TLS_RENAMED.values()) | set(DRIVERS) <= installed
    assert not (set(RENAMED) | set(TLS_RENAMED)) & installed  # else that backend would win


def test_a_tls_scheme_that_says_ssl_false_is_refused() -> None:
    with pytest.raises(ConfigError, match=r"rediss\+cluster:// speaks TLS.*ssl=false"):
        connect("rediss+cluster://127.0.0.1:1?ssl=false")


def test_a_single_server_url_asking_for_tls_in_its_query_names_rediss() -> None:
    for option in ("ssl", "tls"):
        with pytest.raises(ConfigError, match=f"unknown option '{option}'.*rediss://host"):
            connect(f"redis://127.0.0.1:1/0?{option}=true")


def test_a_registered_scheme_keeps_its_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    """A third-party backend registered for `valkey` gets `valkey://` URLs as written."""
    real = importlib.metadata.entry_points

    def with_valkey(**kwargs: object) -> Any:
        found = list(real(**kwargs))  # type: ignore[arg-type]
        if kwargs.get("group") == "checkpointers.backends":
            found.append(
                importlib.metadata.EntryPoint(
                    name="valkey", value="checkpoint_base._memory:BACKEND", group=kwargs["group"]
                )
            )
        return found

    monkeypatch.setattr(importlib.metadata, "entry_points", with_valkey)
    assert backend_url("valkey://h:6379/0") == "valkey://h:6379/0"
    assert backend_url("valkeys://h:6379/0") == "rediss://h:6379/0"


@pytest.mark.parametrize(
    ("url", "needles"),
    [
        (
            "postgresql+mystery://db/app",
            ["'postgresql+mystery'", "write postgresql://", "postgresql+asyncpg"],
        ),
        ("sqlite+pysqlcipher:///x.db", ["SQLCipher", "EncryptedSerializer"]),
        ("mysql+pymysql://me:secret@db/app", ["'mysql+pymysql'", "installed schemes"]),
    ],
)
async def test_an_unknown_driver_says_what_to_write(url: str, needles: list[str]) -> None:
    with pytest.raises(UnknownBackendError) as sync_error:
        connect(url)
    with pytest.raises(UnknownBackendError) as async_error:
        await aconnect(url)
    for caught in (sync_error, async_error):
        message = str(caught.value)
        for needle in needles:
            assert needle in message
        assert "secret" not in message


# -- what libpq takes -----------------------------------------------------------------------


@pytest.mark.parametrize("mode", SSL_MODES)
def test_asyncpg_ssl_is_libpq_sslmode(mode: str) -> None:
    url = f"postgresql+asyncpg://me@db/app?application_name=a%20b&ssl={mode}&connect_timeout=3"
    assert libpq_url(url) == (
        f"postgresql://me@db/app?application_name=a%20b&sslmode={mode}&connect_timeout=3"
    )
    same = f"postgresql+asyncpg://me@db/app?sslmode={mode}&ssl={mode.upper()}"
    assert libpq_url(same) == f"postgresql://me@db/app?sslmode={mode}"


@pytest.mark.parametrize(
    ("given", "expected", "pooled"),
    [
        ("postgresql://db/app?pgbouncer=true", "postgresql://db/app", True),
        (
            "postgresql+psycopg://db/app?sslmode=require&pgbouncer=true&connect_timeout=5",
            "postgresql://db/app?sslmode=require&connect_timeout=5",
            True,
        ),
        (
            "postgres://db/app?pgbouncer=false&ssl=require",
            "postgres://db/app?sslmode=require",
            False,
        ),
        ("postgresql://db/app?sslmode=require", "postgresql://db/app?sslmode=require", False),
        # SQLAlchemy's asyncpg driver through PgBouncer: no statement cache, never prepared
        (
            "postgresql+asyncpg://db/app?prepared_statement_cache_size=0&ssl=require",
            "postgresql://db/app?sslmode=require",
            True,
        ),
        ("postgresql://db/app?statement_cache_size=0", "postgresql://db/app", True),
    ],
)
def test_prismas_pgbouncer_flag_is_the_savers(given: str, expected: str, pooled: bool) -> None:
    assert parse_url(given) == (expected, pooled)


@pytest.mark.parametrize(
    "conninfo",
    [
        "host=db dbname=app sslmode=require",  # libpq's own key=value form
        "postgresql://me@db/app?sslmode=require&options=-c%20search_path%3Dx",
        "postgresql://me@db/app",
    ],
)
def test_libpq_urls_are_left_as_written(conninfo: str) -> None:
    assert libpq_url(conninfo) == conninfo


@pytest.mark.parametrize(
    ("query", "needles"),
    [
        ("ssl=true", ["ssl=true", "sslmode=", "verify-full"]),
        ("ssl=require&ssl=disable", ["sslmode="]),
        ("ssl=require&sslmode=disable", ["ssl=require and sslmode=disable", "give one"]),
        ("prepared_statement_cache_size=100", ["prepared_statement_cache_size=100", "0, as"]),
        ("statement_cache_size=5", ["statement_cache_size=5", "never prepare"]),
        ("pgbouncer=maybe", ["pgbouncer=maybe", "true or false"]),
        ("max_cached_statement_lifetime=60", ["max_cached_statement_lifetime=", "PgBouncer"]),
        ("command_timeout=60", ["command_timeout=", "statement_timeout"]),
    ],
)
def test_what_libpq_cannot_take_is_named(query: str, needles: list[str]) -> None:
    with pytest.raises(ConfigError) as caught:
        libpq_url(f"postgresql+asyncpg://me@db/app?{query}")
    for needle in needles:
        assert needle in str(caught.value)


# -- on real servers ------------------------------------------------------------------------


def test_sqlite_driver_urls_open_the_same_file(tmp_path: Path) -> None:
    from checkpoint_sqlite import SqliteSaver

    path = tmp_path / "app.db"
    with connect(f"sqlite+aiosqlite:///{path}") as saver:
        written = _put(saver, "t")
    with connect(f"sqlite:///{path}") as plain:
        assert _stored_id(plain, "t") == written
    with SqliteSaver.from_conn_string(f"sqlite+pysqlite:///{path}?timeout=5") as direct:
        assert _stored_id(direct, "t") == written


async def test_async_sqlite_driver_urls_open_the_same_file(tmp_path: Path) -> None:
    from checkpoint_sqlite import AsyncSqliteSaver

    path = tmp_path / "app.db"
    async with aconnect(f"sqlite+aiosqlite:///{path}") as saver:
        checkpoint = empty_checkpoint()
        await saver.aput(_config("t"), checkpoint, {}, {})
    async with AsyncSqliteSaver.from_conn_string(f"sqlite+aiosqlite:///{path}") as direct:
        found = await direct.aget_tuple(_config("t"))
        assert found is not None and found.checkpoint["id"] == checkpoint["id"]


@pytest.fixture
def pg_schema() -> Iterator[tuple[str, str]]:
    """The test server's URL and a schema of this test's, dropped after it."""
    from checkpoint_postgres._testing import drop_schema, fresh_schema

    url = servers.postgres_url()
    schema = fresh_schema("schemes")
    yield url, schema
    drop_schema(url, schema)


@pytest.mark.parametrize("driver", sorted(DRIVERS["postgresql"]))
def test_postgres_driver_urls_open_the_same_database(
    driver: str, pg_schema: tuple[str, str]
) -> None:
    url, schema = pg_schema
    qualified = _with_query(_with_scheme(url, f"postgresql+{driver}"), f"schema={schema}")
    with connect(_with_query(qualified, "ssl=disable")) as saver:
        written = _put(saver, driver)
    with connect(_with_query(url, f"schema={schema}")) as plain:
        assert _stored_id(plain, driver) == written


async def test_postgres_savers_take_driver_urls(pg_schema: tuple[str, str]) -> None:
    from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver

    url, schema = pg_schema
    qualified = _with_query(_with_scheme(url, "postgresql+asyncpg"), "ssl=prefer")
    with PostgresSaver.from_conn_string(qualified, schema=schema) as saver:
        saver.setup()
        written = _put(saver, "sync")
    async with AsyncPostgresSaver.from_conn_string(qualified, schema=schema) as asaver:
        found = await asaver.aget_tuple(_config("sync"))
        assert found is not None and found.checkpoint["id"] == written


async def test_asyncpg_ssl_reaches_a_tls_only_server() -> None:
    """`ssl=` decides the TLS mode as `sslmode=` would: on a server that refuses plain
    connections, `ssl=verify-full` (with the URL's CA) connects and `ssl=disable` cannot."""
    tls_url = servers.postgres_tls_url()
    assert "sslmode=verify-full" in tls_url
    asyncpg_form = _with_scheme(tls_url, "postgresql+asyncpg").replace("sslmode=", "ssl=")
    async with aconnect(asyncpg_form) as saver:
        assert await saver.aget_tuple(_config(f"none-{uuid.uuid4().hex}")) is None
    plain = asyncpg_form.replace("ssl=verify-full", "ssl=disable")
    with pytest.raises(StorageError):
        connect(plain)


@pytest.mark.parametrize("kind", ["valkey", "redis"])
async def test_valkey_urls_open_a_redis_saver(kind: str) -> None:
    from checkpoint_redis import AsyncRedisSaver, RedisSaver

    url = servers.valkey_url() if kind == "valkey" else servers.redis_url()
    prefix = f"schemes-{uuid.uuid4().hex[:8]}"
    aliased = _with_query(_with_scheme(url, "valkey"), f"key_prefix={prefix}")
    with connect(aliased) as saver:
        assert isinstance(saver, RedisSaver)
        written = _put(saver, "t")
    with RedisSaver.from_conn_string(_with_query(url, f"key_prefix={prefix}")) as plain:
        assert _stored_id(plain, "t") == written
    async with AsyncRedisSaver.from_conn_string(aliased) as asaver:
        found = await asaver.aget_tuple(_config("t"))
        assert found is not None and found.checkpoint["id"] == written
        await asaver.adelete_thread("t")


def test_a_valkey_cluster_url_opens_a_cluster_saver() -> None:
    from checkpoint_redis import RedisSaver

    url = servers.redis_cluster_url()
    prefix = f"schemes-{uuid.uuid4().hex[:8]}"
    with connect(_with_scheme(url, "valkey+cluster"), key_prefix=prefix) as saver:
        assert isinstance(saver, RedisSaver)
        written = _put(saver, "t")
        assert _stored_id(saver, "t") == written
        saver.delete_thread("t")


def test_the_command_line_takes_driver_urls(
    pg_schema: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url, schema = pg_schema
    source = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    with connect(source) as saver:
        written = _put(saver, "cli-thread")
    target = _with_query(_with_scheme(url, "postgresql+asyncpg"), f"ssl=disable&schema={schema}")
    assert main(["migrate", source, target]) == 0
    capsys.readouterr()
    assert main(["threads", target]) == 0
    assert "cli-thread" in capsys.readouterr().out
    with connect(_with_query(url, f"schema={schema}")) as plain:
        assert _stored_id(plain, "cli-thread") == written

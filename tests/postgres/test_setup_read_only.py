"""`setup()` of an up-to-date schema writes nothing: read replicas and least-privilege roles.

`connect(url)` and every command of `checkpointers` run `setup()`. It used to begin with
`CREATE TABLE IF NOT EXISTS` on the migrations table, which a read-only session refuses
(SQLSTATE 25006: a hot standby, `default_transaction_read_only`) and which needs the CREATE
privilege on the schema even when the table exists. So reading checkpoints from a read
replica failed, in Python and on the command line, and so did an application whose role may
only read and write the tables. Now `setup()` first reads the applied version, outside a
transaction, and only takes its lock and runs DDL when a migration is due.

A read-only session stands in for a standby here: PostgreSQL answers a write on either with
the same SQLSTATE, and a standby would need a second server kept in recovery.
"""

from __future__ import annotations

import urllib.parse
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import StorageError, StorageUnavailableError, connect
from checkpoint_base._cli import main
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from tests.conformance.builders import checkpoint, cid, config, new_thread


def _query(url: str, **params: str) -> str:
    """`url` with these query parameters added."""
    return f"{url}{'&' if '?' in url else '?'}{urllib.parse.urlencode(params, quote_via=urllib.parse.quote)}"


def _read_only(pg_url: str) -> str:
    """A URL whose sessions refuse every write, as a standby's do."""
    return _query(pg_url, options="-c default_transaction_read_only=on")


@pytest.fixture
def stored(pg_url: str, schema: str) -> tuple[str, str]:
    """A thread with one checkpoint in `schema`, set up by the server's superuser."""
    with connect(pg_url, schema=schema) as saver:
        tid = new_thread()
        stored = saver.put(config(tid), checkpoint({"a": 1}), {"step": 0}, {"a": 1})
    return tid, cid(stored)


@pytest.fixture
def app_role(pg_url: str, schema: str, admin: psycopg.Connection[Any]) -> Iterator[str]:
    """The URL of a role that may use `schema` and read and write its tables, no more."""
    role, password = "cp_app_" + uuid.uuid4().hex[:8], uuid.uuid4().hex
    names = {"s": sql.Identifier(schema), "r": sql.Identifier(role)}
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(names["r"], sql.Literal(password))
    )
    try:
        admin.execute(
            sql.SQL(
                "GRANT USAGE ON SCHEMA {s} TO {r}; "
                "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA {s} TO {r}; "
                "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {s} TO {r}"
            ).format(**names)
        )
        parts = urllib.parse.urlsplit(pg_url)
        netloc = f"{role}:{password}@{parts.netloc.rpartition('@')[2]}"
        yield urllib.parse.urlunsplit(parts._replace(netloc=netloc))
    finally:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(names["r"]))
        admin.execute(sql.SQL("DROP ROLE {}").format(names["r"]))


def test_a_read_only_session_sets_up_and_reads(
    pg_url: str, schema: str, stored: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    tid, checkpoint_id = stored
    url = _read_only(pg_url)
    with connect(url, schema=schema) as saver:  # runs setup()
        saver.setup()
        got = saver.get_tuple(config(tid))
        assert got is not None and cid(got.config) == checkpoint_id
        assert [cid(t.config) for t in saver.list(config(tid))] == [checkpoint_id]
        with pytest.raises(StorageError) as raised:
            saver.put(config(new_thread()), checkpoint({"a": 2}), {}, {"a": 1})
        message = str(raised.value)
        assert not isinstance(raised.value, StorageUnavailableError)  # retrying will not help
        assert message.startswith("PostgreSQL error 25006"), message
        assert "standby" in message and "target_session_attrs=read-write" in message, message
    capsys.readouterr()
    status = main(["threads", _query(url, schema=schema)])  # the command line runs setup()
    listed = capsys.readouterr()
    assert status == 0, listed.err
    assert tid in listed.out


async def test_a_read_only_session_sets_up_async(
    pg_url: str, schema: str, stored: tuple[str, str]
) -> None:
    tid, checkpoint_id = stored
    async with AsyncPostgresSaver.from_conn_string(_read_only(pg_url), schema=schema) as saver:
        await saver.asetup()
        got = await saver.aget_tuple(config(tid))
        assert got is not None and cid(got.config) == checkpoint_id


def test_a_schema_that_needs_a_migration_says_why_it_cannot(
    pg_url: str, schema: str, admin: psycopg.Connection[Any]
) -> None:
    with connect(pg_url, schema=schema):
        pass
    versions = sql.SQL("DELETE FROM {}.migrations WHERE v > 1").format(sql.Identifier(schema))
    admin.execute(versions)  # as if set up by an earlier version of the package
    with (
        PostgresSaver.from_conn_string(_read_only(pg_url), schema=schema) as saver,
        pytest.raises(StorageError, match=r"^PostgreSQL error 25006: .* standby"),
    ):
        saver.setup()


def test_a_role_that_may_only_read_and_write_the_tables(
    schema: str, stored: tuple[str, str], app_role: str
) -> None:
    tid, checkpoint_id = stored
    with connect(app_role, schema=schema) as saver:  # runs setup(): nothing to create
        got = saver.get_tuple(config(tid))
        assert got is not None and cid(got.config) == checkpoint_id
        second = saver.put(got.config, checkpoint({"a": 2}, {"a": 2}), {"step": 1}, {"a": 2})
        assert [cid(t.config) for t in saver.list(config(tid))] == [cid(second), checkpoint_id]
        saver.delete_thread(tid)
        assert saver.get_tuple(config(tid)) is None

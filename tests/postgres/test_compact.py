"""compact() on PostgreSQL: VACUUM outside any transaction, on any connection the saver was
given, and a clear refusal where PostgreSQL would skip the tables with a mere warning."""

from __future__ import annotations

import asyncio
import os
import threading
import time
import uuid
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import StorageError
from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from tests.conformance.builders import checkpoint, config

from .conftest import unique


def _fill(saver: PostgresSaver, threads: int) -> list[str]:
    ids = [unique() for _ in range(threads)]
    for tid in ids:
        values = {"blob": os.urandom(16_000)}  # no compression takes it smaller
        saver.put(config(tid), checkpoint(values), {}, {"blob": 1})
    return ids


def test_compact_on_a_connection_without_autocommit(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url) as conn:  # autocommit off, as psycopg opens it
        saver = PostgresSaver(conn, schema=schema)
        saver.setup()
        ids = _fill(saver, 8)
        for tid in ids[1:]:
            saver.delete_thread(tid)
        done = saver.compact(full=True)
        assert not conn.autocommit  # switched on for the VACUUM only
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        assert done.before.size is not None and done.after.size is not None
        assert done.after.size < done.before.size - 4 * 16_000, done
        got = saver.get_tuple(config(ids[0]))
        assert got is not None and len(got.checkpoint["channel_values"]["blob"]) == 16_000


def test_compact_inside_the_callers_transaction_says_why(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url) as conn:
        saver = PostgresSaver(conn, schema=schema)
        saver.setup()
        saver.put(config("gone"), checkpoint({"a": 1}), {}, {"a": 1})
        reader = _reader(pg_url, "cp-report-" + uuid.uuid4().hex[:8])
        saver.delete_thread("gone")
        ends = threading.Timer(0.3, reader.commit)
        ends.start()
        busy = pytest.raises(StorageError, match="VACUUM cannot run inside a transaction")
        start = time.monotonic()
        try:
            with conn.transaction(), busy:
                # The wait sees the reader end (not the transaction's first look), then
                # the VACUUM refuses.
                saver.compact(wait=60)
        finally:
            ends.join()
            reader.close()
        assert time.monotonic() - start < 30  # not the whole wait
        assert saver.get_tuple(config("gone")) is None


def test_async_compact_on_a_connection_without_autocommit(pg_url: str, schema: str) -> None:
    async def main() -> None:
        async with await psycopg.AsyncConnection.connect(pg_url) as conn:
            saver = AsyncPostgresSaver(conn, schema=schema)
            await saver.asetup()
            await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            done = await saver.acompact(full=True)
            assert not conn.autocommit
            assert done.after.size is not None
            assert (await saver.aget_tuple(config("t"))) is not None

    asyncio.run(main())


def test_compact_by_a_role_that_may_not_vacuum_is_refused(
    pg_url: str, schema: str, admin: psycopg.Connection[Any]
) -> None:
    """PostgreSQL would skip each table with a WARNING and succeed, giving back nothing."""
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as owner:
        owner.setup()
        _fill(owner, 2)
    role = "cp_reader_" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    try:
        admin.execute(
            sql.SQL("GRANT USAGE ON SCHEMA {s} TO {r}; GRANT ALL ON ALL TABLES IN SCHEMA {s} TO {r}")
            .format(s=sql.Identifier(schema), r=sql.Identifier(role))
        )  # fmt: skip
        info = psycopg.conninfo.conninfo_to_dict(pg_url)
        info.update(user=role, password=password)
        other_url = psycopg.conninfo.make_conninfo(**info)
        with PostgresSaver.from_conn_string(other_url, schema=schema) as saver:
            with pytest.raises(StorageError) as caught:
                saver.compact()
            text = str(caught.value)
            assert "VACUUM" in text and f"{schema}.checkpoints" in text and "owner" in text
            assert saver.get_tuple(config("missing")) is None  # the saver still works
    finally:
        admin.execute(sql.SQL("DROP OWNED BY {}").format(sql.Identifier(role)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def test_compact_by_the_databases_owner(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    """A database's owner may VACUUM every table in it, its own or not."""
    role = "cp_dbowner_" + uuid.uuid4().hex[:8]
    password = uuid.uuid4().hex
    dbname = "cp_compact_" + uuid.uuid4().hex[:8]
    admin.execute(
        sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
            sql.Identifier(role), sql.Literal(password)
        )
    )
    admin.execute(
        sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(dbname), sql.Identifier(role))
    )
    try:
        info = psycopg.conninfo.conninfo_to_dict(pg_url)
        info["dbname"] = dbname
        as_admin = psycopg.conninfo.make_conninfo(**info)
        with PostgresSaver.from_conn_string(as_admin) as saver:  # tables owned by the superuser
            saver.setup()
            ids = _fill(saver, 6)
            for tid in ids[1:]:
                saver.delete_thread(tid)
        with psycopg.connect(as_admin, autocommit=True) as conn:
            conn.execute(
                sql.SQL("GRANT USAGE ON SCHEMA checkpointers TO {r}; "
                        "GRANT ALL ON ALL TABLES IN SCHEMA checkpointers TO {r}")
                .format(r=sql.Identifier(role))
            )  # fmt: skip
        info.update(user=role, password=password)
        with PostgresSaver.from_conn_string(psycopg.conninfo.make_conninfo(**info)) as saver:
            done = saver.compact(full=True)
            assert done.before.size is not None and done.after.size is not None
            assert done.after.size < done.before.size - 4 * 16_000, done
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(dbname)))
        admin.execute(sql.SQL("DROP ROLE {}").format(sql.Identifier(role)))


def _reader(pg_url: str, name: str) -> psycopg.Connection[Any]:
    """A session idle in a transaction whose snapshot predates what the test deletes next."""
    conn = psycopg.connect(pg_url, application_name=name)
    conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    conn.execute("SELECT 1")  # the snapshot: every later delete stays visible to it
    return conn


def test_compact_waits_for_a_transaction_older_than_it(pg_url: str, schema: str) -> None:
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        saver.setup()
        ids = _fill(saver, 8)
        reader = _reader(pg_url, "cp-report-" + uuid.uuid4().hex[:8])
        for tid in ids[1:]:
            saver.delete_thread(tid)
        ends = threading.Timer(0.5, reader.commit)
        ends.start()
        try:
            done = saver.compact(full=True, wait=30)
        finally:
            ends.join()
            reader.close()
        assert done.held == () and done.seconds >= 0.5, done
        assert done.before.size is not None and done.after.size is not None
        assert done.after.size < done.before.size - 6 * 16_000, done
        assert saver.get_tuple(config(ids[0])) is not None


def test_compact_names_the_transaction_that_outlasted_its_wait(pg_url: str, schema: str) -> None:
    name = "cp-report-" + uuid.uuid4().hex[:8]
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        saver.setup()
        ids = _fill(saver, 8)
        reader = _reader(pg_url, name)
        try:
            for tid in ids[1:]:
                saver.delete_thread(tid)
            held = saver.compact(full=True, wait=0.3)
            pid = reader.info.backend_pid
            ours = [line for line in held.held if line.startswith(f"session {pid} (")]
            assert len(ours) == 1, held.held
            assert f"application '{name}'" in ours[0] and "idle in transaction" in ours[0]
            assert "since " in ours[0] and held.seconds >= 0.3
            assert held.before.size is not None and held.after.size is not None
            assert held.after.size > held.before.size - 7 * 16_000 // 2, held  # rows kept
            reader.commit()
            done = saver.compact(full=True)
        finally:
            reader.close()
        assert not any(line.startswith(f"session {pid} ") for line in done.held), done
        assert done.after.size is not None
        assert done.after.size < held.after.size - 6 * 16_000, (held, done)


async def test_acompact_waits_for_a_transaction_older_than_it(pg_url: str, schema: str) -> None:
    async with AsyncPostgresSaver.from_conn_string(pg_url, schema=schema) as saver:
        await saver.asetup()
        await saver.aput(config("kept"), checkpoint({"blob": os.urandom(16_000)}), {}, {"blob": 1})
        await saver.aput(config("gone"), checkpoint({"blob": os.urandom(16_000)}), {}, {"blob": 1})
        reader = _reader(pg_url, "cp-report-" + uuid.uuid4().hex[:8])
        try:
            await saver.adelete_thread("gone")
            asyncio.get_running_loop().call_later(0.3, reader.commit)
            done = await saver.acompact(full=True)
        finally:
            reader.close()
        assert done.held == () and done.seconds >= 0.3, done
        assert done.before.size is not None and done.after.size is not None
        assert done.after.size < done.before.size - 16_000 // 2, done

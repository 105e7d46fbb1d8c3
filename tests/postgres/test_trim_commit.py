"""A `keep_last` trim commits without waiting for the WAL's sync, in its own transaction only:
never a caller's transaction, whose other writes must stay as durable as they were."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from checkpoint_postgres import AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._aexecutor import AsyncPostgresExecutor
from checkpoint_postgres._executor import PostgresExecutor
from tests.conformance.builders import checkpoint, cid, config

from .conftest import CONN_KWARGS, unique


def _spy(monkeypatch: pytest.MonkeyPatch, executor: Any) -> list[bytes]:
    """The statements `executor` sends, in order."""
    sent: list[bytes] = []
    perform = executor._perform

    def recording(conn: Any, query: Any) -> Any:
        sent.append(query.sql)
        return perform(conn, query)

    async def arecording(conn: Any, query: Any) -> Any:
        sent.append(query.sql)
        return await perform(conn, query)

    is_async = isinstance(executor, AsyncPostgresExecutor)
    monkeypatch.setattr(executor, "_perform", arecording if is_async else recording)
    return sent


def _trims(sent: list[bytes]) -> tuple[int, int]:
    """(trims sent unsynced, trims sent plain)."""
    prunes = [s for s in sent if b"prune_thread(" in s]
    unsynced = [s for s in prunes if b"synchronous_commit" in s]
    return len(unsynced), len(prunes) - len(unsynced)


def _puts(saver: PostgresSaver, thread: str, n: int) -> Any:
    stored = saver.put(config(thread), checkpoint({"a": 0}), {}, {"a": 0})
    for step in range(1, n):
        stored = saver.put(stored, checkpoint({"a": step}, {"a": step}), {}, {"a": step})
    return stored


def _trimming_saver(
    conn: Any, schema: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[PostgresSaver, list[bytes]]:
    """A saver on `conn` with `keep_last=1`, and the statements it sends from now on."""
    saver = PostgresSaver(conn, schema=schema)
    saver.keep_last = 1
    saver.setup()
    assert isinstance(saver._executor, PostgresExecutor)
    sent = _spy(monkeypatch, saver._executor)
    conn.execute("SET synchronous_commit TO on")  # the test server runs with off
    return saver, sent


def test_a_trim_of_its_own_commits_unsynced_and_the_setting_ends_with_it(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = unique()
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        saver, sent = _trimming_saver(conn, schema, monkeypatch)
        last = _puts(saver, thread, 4)
        assert [cid(t.config) for t in saver.list(config(thread))] == [cid(last)]
        assert _trims(sent) == (3, 0)
        assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        saver.prune([thread])  # an explicit prune: durable as any write
        assert _trims(sent)[1] == 1


def test_a_trim_in_a_callers_transaction_stays_synced(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = unique()
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        saver, sent = _trimming_saver(conn, schema, monkeypatch)
        with conn.transaction():
            last = _puts(saver, thread, 3)
            assert conn.execute("SHOW synchronous_commit").fetchone() == ("on",)
        assert _trims(sent) == (0, 2)
        assert [cid(t.config) for t in saver.list(config(thread))] == [cid(last)]


async def test_an_async_trim_of_its_own_commits_unsynced(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = unique()
    conn: Any = await psycopg.AsyncConnection.connect(pg_url, **CONN_KWARGS)
    async with conn:
        saver = AsyncPostgresSaver(conn, schema=schema)
        saver.keep_last = 1
        await saver.asetup()
        sent = _spy(monkeypatch, saver._aexecutor)
        await conn.execute("SET synchronous_commit TO on")  # the test server runs with off
        stored = await saver.aput(config(thread), checkpoint({"a": 0}), {}, {"a": 0})
        stored = await saver.aput(stored, checkpoint({"a": 1}, {"a": 1}), {}, {"a": 1})
        assert [cid(t.config) async for t in saver.alist(config(thread))] == [cid(stored)]
        assert _trims(sent) == (1, 0)
        assert await (await conn.execute("SHOW synchronous_commit")).fetchone() == ("on",)

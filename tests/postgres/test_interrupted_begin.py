"""Ctrl-C while a sync saver's BEGIN is on its way leaves no transaction open behind it.

psycopg before 3.3.7 did not undo a `conn.transaction()` entry interrupted once its BEGIN had
reached the server: the connection stayed in that transaction, which psycopg still counted as
entered. The saver then took it for the caller's own transaction, ran every later statement
inside it, and nothing it wrote was ever committed. The tests interrupt the entry right after
its BEGIN (a KeyboardInterrupt, as Ctrl-C raises it) and then check that the next write
commits: another connection reads it.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from psycopg import pq

from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, config

from .conftest import unique


class _Interrupt:
    """Raises KeyboardInterrupt once, after the next transaction entry's BEGIN completed."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.armed = False
        self.fired = 0
        real = psycopg.Connection.wait

        def wait(conn: psycopg.Connection[Any], gen: Any, *args: Any, **kwargs: Any) -> Any:
            result = real(conn, gen, *args, **kwargs)
            if self.armed and getattr(gen, "__name__", "") == "_enter_gen":
                self.armed = False
                self.fired += 1
                assert conn.pgconn.transaction_status == pq.TransactionStatus.INTRANS
                raise KeyboardInterrupt
            return result

        monkeypatch.setattr(psycopg.Connection, "wait", wait)


@pytest.fixture
def interrupt(monkeypatch: pytest.MonkeyPatch) -> _Interrupt:
    return _Interrupt(monkeypatch)


def _committed(pg_url: str, schema: str, thread: str, value: int) -> bool:
    """Whether another connection reads `value` as the thread's latest checkpoint."""
    with PostgresSaver.from_conn_string(pg_url, schema=schema) as other:
        tup = other.get_tuple(config(thread))
    return tup is not None and tup.checkpoint["channel_values"]["a"] == value


def test_callers_connection_not_in_autocommit(
    pg_url: str, schema: str, interrupt: _Interrupt
) -> None:
    """Each statement on a connection not in autocommit runs in a transaction of its own."""
    conn = psycopg.connect(pg_url, autocommit=False, prepare_threshold=None)
    try:
        saver = PostgresSaver(conn, schema=schema)
        saver.setup()
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}, {"a": 1}), {"step": 0}, {"a": 1})
        interrupt.armed = True
        with pytest.raises(KeyboardInterrupt):
            saver.put(config(thread), checkpoint({"a": 2}, {"a": 2}), {"step": 1}, {"a": 2})
        assert interrupt.fired == 1
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        saver.put(config(thread), checkpoint({"a": 3}, {"a": 3}), {"step": 2}, {"a": 3})
        assert _committed(pg_url, schema, thread, 3)
    finally:
        conn.close()


def test_setup_transaction(pg_url: str, schema: str, interrupt: _Interrupt) -> None:
    """`setup` runs in a transaction the saver begins."""
    conn = psycopg.connect(pg_url, autocommit=True, prepare_threshold=None)
    try:
        saver = PostgresSaver(conn, schema=schema)
        interrupt.armed = True
        with pytest.raises(KeyboardInterrupt):
            saver.setup()
        assert interrupt.fired == 1
        assert conn.pgconn.transaction_status == pq.TransactionStatus.IDLE
        saver.setup()
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}, {"a": 1}), {"step": 0}, {"a": 1})
        assert _committed(pg_url, schema, thread, 1)
    finally:
        conn.close()

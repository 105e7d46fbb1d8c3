"""Order does not depend on the database's locale: keys sort by code point, as the saver's
keyset cursors compare them, even in a database whose default collation is ICU English."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import ListQuery
from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, config

THREADS = ["b", "a", "_c", "B", "\u00e9", "a b"]


@pytest.fixture
def icu_url(pg_url: str) -> Iterator[str]:
    name = f"cp_icu_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_url, autocommit=True) as conn:
        try:
            conn.execute(
                sql.SQL(
                    "CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8' "
                    "LOCALE_PROVIDER icu ICU_LOCALE 'en' LOCALE 'C.UTF-8'"
                ).format(sql.Identifier(name))
            )
        except psycopg.Error as exc:  # a server built without ICU, or before PostgreSQL 15
            pytest.skip(f"cannot create an ICU database here: {exc}")
        parts = urlsplit(pg_url)
        try:
            yield urlunsplit(parts._replace(path="/" + name))
        finally:
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


def test_order_is_by_code_point_in_an_icu_database(icu_url: str) -> None:
    with psycopg.connect(icu_url, autocommit=True) as conn:
        collation = conn.execute("SELECT 'B' < 'a'").fetchone()
        assert collation == (False,), "the database should not sort by code point"
        saver = PostgresSaver(conn, schema="cp")
        saver.setup()
        shared = checkpoint({"v": 1})  # one checkpoint id in every thread: ties on the id
        for thread in THREADS:
            saver.put(config(thread), dict(shared), {"thread": thread}, {"v": 1})

        listed = [t.config["configurable"]["thread_id"] for t in saver.list(None)]
        assert listed == sorted(THREADS, reverse=True)

        # Keyset pages of one row follow the same order.
        paged: list[str] = []
        cursor = None
        while True:
            page = saver._run(saver.backend.list_page(ListQuery(cursor=cursor, limit=1)))
            if not page:
                break
            last = page[-1].checkpoint
            paged.append(last.thread_id)
            cursor = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)
        assert paged == sorted(THREADS, reverse=True)

        threads = [t.thread_id for t in saver.list_threads(after="B")]
        assert threads == sorted(t for t in THREADS if t > "B")

"""Tables live in the schema the saver names, whatever the search_path; schemas are isolated."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import StorageError
from checkpoint_postgres import DEFAULT_SCHEMA, MIGRATIONS, PostgresSaver
from checkpoint_postgres._testing import drop_schema, fresh_schema
from tests.conformance.builders import checkpoint, config

from .conftest import CONN_KWARGS, table_names, unique

TABLES = {"checkpoints", "blobs", "writes", "leases", "migrations"}


@pytest.fixture
def two_schemas(pg_url: str) -> Iterator[tuple[str, str]]:
    names = (fresh_schema("iso"), 'we"ird; DROP TABLE x --' + fresh_schema(""))
    yield names
    for name in names:
        drop_schema(pg_url, name)


def test_schemas_do_not_see_each_other(
    pg_url: str, admin: psycopg.Connection[Any], two_schemas: tuple[str, str]
) -> None:
    first, second = two_schemas
    thread = unique()
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        a = PostgresSaver(conn, schema=first)
        b = PostgresSaver(conn, schema=second)  # a hostile name is only ever an identifier
        a.setup()
        b.setup()
        a.put(config(thread), checkpoint({"who": "a"}), {"source": "a"}, {"who": 1})
        b.put(config(thread), checkpoint({"who": "b"}), {"source": "b"}, {"who": 1})
        b.put(config(thread), checkpoint({"who": "b2"}, {"who": 2}), {"source": "b"}, {"who": 2})

        got_a, got_b = a.get_tuple(config(thread)), b.get_tuple(config(thread))
        assert got_a is not None and got_b is not None
        assert got_a.checkpoint["channel_values"] == {"who": "a"}
        assert got_b.checkpoint["channel_values"] == {"who": "b2"}
        assert len(list(a.list(None))) == 1
        assert len(list(b.list(None))) == 2
        a.delete_thread(thread)
        assert a.get_tuple(config(thread)) is None
        assert b.get_tuple(config(thread)) is not None
    assert table_names(admin, first) == TABLES
    assert table_names(admin, second) == TABLES


def test_search_path_does_not_matter(pg_url: str, schema: str) -> None:
    """Nothing assumes `public` or a search_path: even one naming a schema with look-alike
    tables, or no schema at all."""
    decoy = fresh_schema("decoy")
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(decoy)))
        for table in ("checkpoints", "blobs", "writes", "migrations"):
            conn.execute(
                sql.SQL("CREATE TABLE {}.{} (nonsense int)").format(
                    sql.Identifier(decoy), sql.Identifier(table)
                )
            )
    try:
        for path in (decoy, "no_such_schema"):
            options = f"-c search_path={path}"
            with psycopg.connect(pg_url, options=options, **CONN_KWARGS) as conn:
                saver = PostgresSaver(conn, schema=schema)
                saver.setup()
                thread = unique()
                saver.put(config(thread), checkpoint({"a": 1}), {"tag": thread}, {"a": 1})
                got = saver.get_tuple(config(thread))
                assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
                found = [t.metadata["tag"] for t in saver.list(None, filter={"tag": thread})]
                assert found == [thread]
    finally:
        drop_schema(pg_url, decoy)


def test_default_schema_is_not_public(pg_url: str, admin: psycopg.Connection[Any]) -> None:
    saver = PostgresSaver(pg_url)
    try:
        assert saver.backend.schema == DEFAULT_SCHEMA != "public"  # type: ignore[attr-defined]
    finally:
        saver.close()


def test_missing_setup_says_so(pg_url: str, schema: str) -> None:
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        saver = PostgresSaver(conn, schema=schema)
        with pytest.raises(StorageError, match=r"setup\(\)") as raised:
            saver.get_tuple(config(unique()))
        assert isinstance(raised.value.__cause__, psycopg.Error)


def test_setup_records_every_migration_once(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    with psycopg.connect(pg_url, **CONN_KWARGS) as conn:
        saver = PostgresSaver(conn, schema=schema)
        for _ in range(3):
            saver.setup()
    rows = admin.execute(
        sql.SQL("SELECT v FROM {}.migrations ORDER BY v").format(sql.Identifier(schema))
    ).fetchall()
    assert [r[0] for r in rows] == list(range(1, len(MIGRATIONS) + 1))


@pytest.mark.parametrize(
    "tag",
    [
        "get_page",
        "list_page",
        "put_checkpoint",
        "lock_parent",
        "put_child",
        "lock_threads",
        "delete_threads",
        "delete_runs",
    ],
)
def test_a_schema_name_holding_a_function_bodys_quote_tag(
    pg_url: str, admin: psycopg.Connection[Any], tag: str
) -> None:
    """The functions' bodies are dollar-quoted with the schema name inside: a name holding
    the tag gets another tag, so setup works and nothing of the name runs as SQL."""
    canary = fresh_schema("canary")
    admin.execute(sql.SQL("CREATE TABLE {} (x int)").format(sql.Identifier(canary)))
    name = f"s${tag}$; DROP TABLE {canary} --"
    assert len(name.encode()) <= 63
    thread = unique()
    try:
        with PostgresSaver(pg_url, schema=name, prepare_threshold=None) as saver:  # functions
            saver.setup()
            first = saver.put(config(thread), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
            second = saver.put(first, checkpoint({"a": 2}, {"a": 2}), {"step": 2}, {"a": 2})
            got = saver.get_tuple(config(thread))
            assert got is not None and got.config == second
            assert got.checkpoint["channel_values"] == {"a": 2}
            assert [t.config for t in saver.list(config(thread))] == [second, first]
            values = {"a": 2, "b": 3}  # a child: `a` stays the parent's blob
            third = saver.put(second, checkpoint(values, {"a": 2, "b": 3}), {"step": 3}, {"b": 3})
            got = saver.get_tuple(third)
            assert got is not None and got.checkpoint["channel_values"] == values
            saver.delete_for_runs(["no-such-run"])
            saver.delete_thread(thread)
            assert list(saver.list(config(thread))) == []
        assert table_names(admin, name) == TABLES
        assert admin.execute(
            "SELECT 1 FROM information_schema.tables WHERE table_name = %s", [canary]
        ).fetchone()
    finally:
        drop_schema(pg_url, name)
        admin.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(canary)))

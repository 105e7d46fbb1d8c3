"""`setup()` inside or outside the caller's transaction, and from several processes at once."""

from __future__ import annotations

import multiprocessing
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import SchemaVersionError, StorageError, connect
from checkpoint_postgres import MIGRATIONS, AsyncPostgresSaver, PostgresSaver
from checkpoint_postgres._testing import drop_schema, fresh_schema
from tests.conformance.builders import checkpoint, config

from .conftest import schema_exists, table_names, unique


def _versions(admin: psycopg.Connection[Any], schema: str) -> list[int]:
    query = sql.SQL("SELECT v FROM {}.migrations ORDER BY v").format(sql.Identifier(schema))
    return [r[0] for r in admin.execute(query).fetchall()]


def test_setup_inside_the_callers_transaction(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """The migrations join the caller's transaction: its rollback undoes them."""
    with psycopg.connect(pg_url, autocommit=False, prepare_threshold=None) as conn:
        saver = PostgresSaver(conn, schema=schema)
        conn.execute("SELECT 1")  # the caller's transaction is open
        saver.setup()
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.INTRANS
        assert not schema_exists(admin, schema)  # not visible outside: not committed
        conn.rollback()
        assert not schema_exists(admin, schema)

        with conn.transaction():
            saver.setup()
        assert _versions(admin, schema) == list(range(1, len(MIGRATIONS) + 1))
        thread = unique()
        saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})  # committed by us
        conn.rollback()
        assert admin.execute(
            sql.SQL("SELECT count(*) FROM {}.checkpoints").format(sql.Identifier(schema))
        ).fetchone() == (1,)


def test_setup_outside_a_transaction(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    with psycopg.connect(pg_url, autocommit=False, prepare_threshold=None) as conn:
        PostgresSaver(conn, schema=schema).setup()  # idle, not autocommit: commits itself
        assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert table_names(admin, schema) == {"checkpoints", "blobs", "writes", "leases", "migrations"}


async def test_async_setup_through_pgbouncer(admin: psycopg.Connection[Any], schema: str) -> None:
    from checkpoint_base.testing import servers

    async with AsyncPostgresSaver.from_conn_string(servers.pgbouncer_url(), schema=schema) as s:
        await s.asetup()
        await s.asetup()
    assert _versions(admin, schema) == list(range(1, len(MIGRATIONS) + 1))


def test_newer_schema_is_refused(pg_url: str, admin: psycopg.Connection[Any], schema: str) -> None:
    with connect(pg_url, schema=schema) as saver:  # the URL entry point runs setup()
        assert saver.backend.schema == schema  # type: ignore[attr-defined]
    admin.execute(
        sql.SQL("INSERT INTO {}.migrations (v) VALUES (%s)").format(sql.Identifier(schema)),
        (len(MIGRATIONS) + 1,),
    )
    with pytest.raises(SchemaVersionError, match="upgrade"), connect(pg_url, schema=schema):
        pass


def _setup_in_process(url: str, schemas: list[str], barrier: Any, errors: Any) -> None:
    try:
        for name in schemas:
            barrier.wait(timeout=60)  # both processes start each setup at the same moment
            with PostgresSaver(url, schema=name, pool_options={"max_size": 1}) as saver:
                saver.setup()
    except BaseException as exc:
        errors.put(repr(exc))
        raise


@pytest.mark.parametrize("processes", [2, 4])
def test_concurrent_setup_from_processes(
    pg_url: str, admin: psycopg.Connection[Any], processes: int
) -> None:
    names = [fresh_schema("race") for _ in range(3)]
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(processes)
    errors = ctx.Queue()
    workers = [
        ctx.Process(target=_setup_in_process, args=(pg_url, names, barrier, errors))
        for _ in range(processes)
    ]
    try:
        for w in workers:
            w.start()
        for w in workers:
            w.join(timeout=120)
        found = []
        while not errors.empty():
            found.append(errors.get())
        assert not found, found
        assert [w.exitcode for w in workers] == [0] * processes
        for name in names:
            assert table_names(admin, name) == {
                "checkpoints",
                "blobs",
                "writes",
                "leases",
                "migrations",
            }
            assert _versions(admin, name) == list(range(1, len(MIGRATIONS) + 1))
    finally:
        for w in workers:
            if w.is_alive():
                w.kill()
        for name in names:
            drop_schema(pg_url, name)


def test_a_schema_of_an_earlier_version_is_upgraded_by_setup(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """Version 3 had none of the functions (get_page, list_page, put_checkpoint): reads and
    puts say to run setup(), which adds them, and nothing is written meanwhile."""
    thread = unique()
    with PostgresSaver(pg_url, schema=schema, prepare_threshold=None) as saver:  # get_page
        saver.setup()
        stored = saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        # Back to version 3, as an earlier release left it.
        name = sql.Identifier(schema)
        admin.execute(sql.SQL("DROP FUNCTION {}.get_page").format(name))
        admin.execute(sql.SQL("DROP FUNCTION {}.list_page").format(name))
        admin.execute(sql.SQL("DROP FUNCTION {}.put_checkpoint").format(name))
        admin.execute(sql.SQL("DELETE FROM {}.migrations WHERE v > 3").format(name))
        with pytest.raises(StorageError, match=r"earlier version .* run saver\.setup\(\)"):
            saver.get_tuple(config(thread))
        with pytest.raises(StorageError, match=r"earlier version .* run saver\.setup\(\)"):
            list(saver.list(config(thread)))
        with pytest.raises(StorageError, match=r"earlier version .* run saver\.setup\(\)"):
            saver.put(stored, checkpoint({"a": 2}, {"a": 2}), {}, {"a": 2})
        count = sql.SQL("SELECT count(*) FROM {}.checkpoints").format(name)
        assert admin.execute(count).fetchone() == (1,)
        saver.setup()
        assert _versions(admin, schema) == list(range(1, len(MIGRATIONS) + 1))
        got = saver.get_tuple(config(thread))
        assert got is not None and got.config == stored
        assert got.checkpoint["channel_values"] == {"a": 1}
        assert [t.config for t in saver.list(config(thread))] == [stored]


def test_gets_read_the_same_rows_with_and_without_the_function(pg_url: str, schema: str) -> None:
    """The function (no prepared statements) and the plain statement (prepared) agree."""
    thread = unique()
    with PostgresSaver(pg_url, schema=schema) as plain_saver:
        plain_saver.setup()
        first = plain_saver.put(config(thread), checkpoint({"a": 1}), {}, {"a": 1})
        cfg = dict(first["configurable"])
        second = plain_saver.put({"configurable": cfg}, checkpoint({"a": 2}), {}, {"a": 2})
        plain_saver.put_writes(second, [("a", 3), ("b", b"x")], "task")
    with (
        PostgresSaver(pg_url, schema=schema, prepare_threshold=None) as by_function,
        PostgresSaver(pg_url, schema=schema, prepare_threshold=0) as prepared,
    ):
        assert by_function.backend.plan_cached_gets  # type: ignore[attr-defined]
        assert not prepared.backend.plan_cached_gets  # type: ignore[attr-defined]
        for target in (config(thread), first, second):
            a, b = by_function.get_tuple(target), prepared.get_tuple(target)
            assert a is not None and b is not None
            assert (a.config, a.checkpoint, a.metadata, a.parent_config) == (
                b.config,
                b.checkpoint,
                b.metadata,
                b.parent_config,
            )
            assert a.pending_writes == b.pending_writes
        latest = by_function.get_tuple(config(thread))
        assert latest is not None and latest.config == second
        assert latest.pending_writes == [("task", "a", 3), ("task", "b", b"x")]
        assert by_function.get_tuple({"configurable": {**cfg, "checkpoint_id": "nope"}}) is None


def test_lists_read_the_same_pages_with_and_without_the_function(
    pg_url: str, schema: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`list_page` (no prepared statements) and the plain statements (prepared) return the
    same checkpoints for every bound, filter and namespace choice, also across pages."""
    monkeypatch.setattr("checkpoint_base._operations._FIRST_PAGE", 2)  # cursors on every page
    thread, other = unique(), unique()
    ids: dict[str, list[str]] = {"": [], "sub": []}
    with PostgresSaver(pg_url, schema=schema) as saver:
        saver.setup()
        for step in range(7):
            for ns in ("", "sub"):
                cfg = config(thread, ns, ids[ns][-1] if ids[ns] else None)
                meta = {"step": step, "source": "loop" if step % 2 else "input"}
                stored = saver.put(cfg, checkpoint({"a": step}), meta, {"a": step})
                saver.put_writes(stored, [("a", step)], f"task-{step}")
                ids[ns].append(stored["configurable"]["checkpoint_id"])
        saver.put(config(other), checkpoint({"a": 0}), {"step": 0}, {"a": 0})
    with (
        PostgresSaver(pg_url, schema=schema, prepare_threshold=None) as by_function,
        PostgresSaver(pg_url, schema=schema, prepare_threshold=0) as prepared,
    ):
        assert by_function.backend.plan_cached_gets  # type: ignore[attr-defined]

        def listed(saver: PostgresSaver, cfg: Any, **kw: Any) -> list[Any]:
            return [
                (t.config, t.metadata, t.parent_config, t.checkpoint, t.pending_writes)
                for t in saver.list(cfg, **kw)
            ]

        whole = {"configurable": {"thread_id": thread}}
        cases: list[tuple[Any, dict[str, Any]]] = [
            (whole, {}),
            (whole, {"limit": 5}),
            (config(thread), {}),
            (config(thread, "sub"), {"limit": 3}),
            (whole, {"before": config(thread, "", ids[""][4])}),
            (whole, {"before": config(thread, "sub", ids["sub"][4]), "limit": 3}),
            (config(thread), {"before": config(thread, "", ids[""][5])}),
            (whole, {"filter": {"source": "loop"}}),
            (config(thread, "sub"), {"filter": {"step": 3}}),
            (whole, {"filter": {"source": "input"}, "before": config(thread, "", ids[""][6])}),
        ]
        for cfg, kw in cases:
            got = listed(by_function, cfg, **kw)
            assert got == listed(prepared, cfg, **kw), (cfg, kw)
            assert got, (cfg, kw)
            assert all(t[0]["configurable"]["thread_id"] == thread for t in got)
        # Exact counts, not only agreement: 14 in all, 7 per namespace, 4 odd steps each.
        assert len(listed(by_function, whole)) == 14
        assert len(listed(by_function, config(thread, "sub"))) == 7
        assert len(listed(by_function, whole, filter={"source": "loop"})) == 6
        assert listed(by_function, config(thread), filter={"step": 99}) == []
        before = listed(by_function, config(thread), before=config(thread, "", ids[""][5]))
        assert [t[0]["configurable"]["checkpoint_id"] for t in before] == ids[""][4::-1]


def test_puts_store_the_same_rows_with_and_without_the_function(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """A put through `put_checkpoint` (no prepared statements) stores exactly the rows the
    plain statement (prepared) stores, blobs of no value left out by both."""
    threads = {"function": unique(), "statement": unique()}
    with (
        PostgresSaver(pg_url, schema=schema, prepare_threshold=None) as by_function,
        PostgresSaver(pg_url, schema=schema, prepare_threshold=0) as prepared,
    ):
        by_function.setup()
        for saver, thread in ((by_function, threads["function"]), (prepared, threads["statement"])):
            cfg = config(thread)
            for step in range(3):
                values = {"a": [step] * 3, "b": f"s{step}"} if step != 1 else {"a": [1]}
                versions = {"a": step + 1, "b": step + 1, "c": 1}
                cfg = saver.put(cfg, checkpoint(values, versions), {"step": step}, versions)
            # Again, as a retry would: nothing changes.
            saver.put(config(thread), checkpoint({"a": [9]}, {"a": 9}), {"step": 9}, {"a": 9})
    name = sql.Identifier(schema)
    stored = {}
    for kind, thread in threads.items():
        blobs = admin.execute(
            sql.SQL(
                "SELECT channel, version, type, data FROM {}.blobs WHERE thread_id = %s "
                "ORDER BY channel, version"
            ).format(name),
            [thread],
        ).fetchall()
        checkpoints = admin.execute(
            sql.SQL(
                "SELECT metadata, metadata_index, channel_versions, parent_checkpoint_id IS NULL "
                "FROM {}.checkpoints WHERE thread_id = %s ORDER BY checkpoint_id"
            ).format(name),
            [thread],
        ).fetchall()
        stored[kind] = (blobs, checkpoints)
    assert stored["function"] == stored["statement"]
    blobs, checkpoints = stored["function"]
    assert len(checkpoints) == 4
    assert [(b[0], b[1]) for b in blobs] == [
        ("a", "1"),
        ("a", "2"),
        ("a", "3"),
        ("a", "9"),
        ("b", "1"),
        ("b", "3"),  # "b" at version 2 holds no value: no blob
    ]

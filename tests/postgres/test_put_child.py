"""`put_child` and the deletes on PostgreSQL wait for each other, thread by thread.

tests/conformance/test_thread_races.py races a writer against deletes; here one side is
held open in a transaction of a second connection, to show the order each way: a put of a
child waits for a delete of its thread in flight, then finds the parent gone and stores the
checkpoint whole; a delete waits for a put in flight, then deletes the child too. Without
the locks (migration 8) neither side waits: the child reads blobs that are gone.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest

from checkpoint_postgres import PostgresSaver
from tests.conformance.builders import checkpoint, cid, config

from .conftest import unique

LOCK_CLASS = 1668314112
"""The first key of the threads' advisory locks (see migration 8)."""

# How a put of a child reaches the server: the function (statements not prepared), the
# single statement (prepared), and the statement again past the function's four blobs.
PATHS = [
    pytest.param(None, 1, id="function"),
    pytest.param(0, 1, id="statement"),
    pytest.param(None, 6, id="many-blobs"),
]


def _waits(admin: psycopg.Connection[Any], pid: int) -> bool:
    """Whether the session `pid` comes to wait for a thread's advisory lock (10 s at most)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        row = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
            "AND classid = %s::oid AND objsubid = 2 AND pid = %s",
            (LOCK_CLASS, pid),
        ).fetchone()
        if row is not None and row[0]:
            return True
        time.sleep(0.01)
    return False


def _waits_then_finishes(
    admin: psycopg.Connection[Any],
    conn: psycopg.Connection[Any],
    held: psycopg.Connection[Any],
    action: Any,
    what: str,
) -> None:
    """Run `action` (on `conn`) in a thread: it must wait for a thread's lock while `held`
    keeps its transaction open, and finish once `held` commits."""
    running = threading.Thread(target=action, daemon=True)
    running.start()
    try:
        assert _waits(admin, conn.info.backend_pid), f"the {what} did not wait"
    finally:
        held.commit()
        running.join(10)
    assert not running.is_alive(), f"the {what} did not finish once the other side committed"


def _values(channels: list[str], n: int) -> dict[str, Any]:
    return {"const": "C", **dict.fromkeys(channels, n)}


def _first_step(
    saver: PostgresSaver, thread: str, channels: list[str], metadata: Any = None
) -> Any:
    """The thread's first checkpoint: `const` and every channel at version 1."""
    values = _values(channels, 0)
    versions = dict.fromkeys(values, 1)
    return saver.put(config(thread), checkpoint(values, versions), metadata or {}, versions)


def _in_open_transaction(
    held: psycopg.Connection[Any], schema: str, **options: Any
) -> PostgresSaver:
    """A saver on `held`, whose transaction (the caller's) is begun and left open."""
    held.execute("SELECT 1")
    return PostgresSaver(held, schema=schema, **options)


def _blob_count(admin: psycopg.Connection[Any], schema: str, thread: str) -> int:
    row = admin.execute(
        psycopg.sql.SQL("SELECT count(*) FROM {}.blobs WHERE thread_id = %s").format(
            psycopg.sql.Identifier(schema)
        ),
        (thread,),
    ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.parametrize("delete", ["thread", "runs"])
@pytest.mark.parametrize(("prepare", "changed"), PATHS)
def test_a_put_of_a_child_waits_for_a_delete_in_flight_then_stores_it_whole(
    pg_url: str,
    admin: psycopg.Connection[Any],
    schema: str,
    prepare: int | None,
    changed: int,
    delete: str,
) -> None:
    thread, run = unique(), unique("run")
    channels = [f"c{i}" for i in range(changed)]
    with (
        psycopg.connect(pg_url, autocommit=True, prepare_threshold=prepare) as conn,
        psycopg.connect(pg_url) as held,  # not autocommit: the delete runs in its transaction
    ):
        writer = PostgresSaver(conn, schema=schema, prepare_threshold=prepare)
        writer.setup()
        first = _first_step(writer, thread, channels, {"run_id": run})
        deleter = _in_open_transaction(held, schema)
        if delete == "thread":
            deleter.delete_thread(thread)
        else:
            deleter.delete_for_runs([run])

        values = _values(channels, 1)
        versions = {"const": 1, **dict.fromkeys(channels, 2)}
        stored: list[Any] = []

        def put() -> None:  # `const` is left to the parent's blob
            parent = config(thread, "", cid(first))
            meta = {"run_id": run}
            changed = dict.fromkeys(channels, 2)
            stored.append(writer.put(parent, checkpoint(values, versions), meta, changed))

        putting = threading.Thread(target=put, daemon=True)
        putting.start()
        try:
            assert _waits(admin, conn.info.backend_pid), "the put did not wait for the delete"
            assert not stored
        finally:
            held.commit()
            putting.join(10)
        assert stored, "the put did not finish once the delete committed"
        got = writer.get_tuple(stored[0])
        assert got is not None
        assert got.checkpoint["channel_values"] == values
        assert [t.config for t in writer.list(config(thread))] == [stored[0]]


@pytest.mark.parametrize(("prepare", "changed"), PATHS)
def test_a_delete_waits_for_a_put_of_a_child_in_flight_and_deletes_the_child_too(
    pg_url: str,
    admin: psycopg.Connection[Any],
    schema: str,
    prepare: int | None,
    changed: int,
) -> None:
    thread = unique()
    channels = [f"c{i}" for i in range(changed)]
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        psycopg.connect(pg_url, prepare_threshold=prepare) as held,  # the put's transaction
    ):
        deleter = PostgresSaver(conn, schema=schema)
        deleter.setup()
        first = _first_step(deleter, thread, channels)
        writer = _in_open_transaction(held, schema, prepare_threshold=prepare)
        versions = {"const": 1, **dict.fromkeys(channels, 2)}
        writer.put(
            config(thread, "", cid(first)),
            checkpoint(_values(channels, 1), versions),
            {},
            dict.fromkeys(channels, 2),
        )  # stored, not committed: the thread's lock is held shared until the commit

        _waits_then_finishes(admin, conn, held, lambda: deleter.delete_thread(thread), "delete")
        assert list(deleter.list(config(thread))) == []
        assert _blob_count(admin, schema, thread) == 0


def test_a_delete_of_many_threads_takes_a_bounded_number_of_locks(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """Each lock takes a slot of the server's shared lock table (max_locks_per_transaction
    times max_connections, 6,400 by default): threads share 1,024 keys, so deleting 5,000
    threads at once takes at most 1,024 slots instead of failing with 'out of shared memory'
    past the table's size."""
    threads = [unique() for _ in range(5000)]
    with psycopg.connect(pg_url) as held:
        saver = PostgresSaver(held, schema=schema)
        saver.setup()
        held.commit()
        held.execute("SELECT 1")
        saver.prune(threads, strategy="delete")
        row = admin.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = %s::oid "
            "AND objsubid = 2 AND pid = %s",
            (LOCK_CLASS, held.info.backend_pid),
        ).fetchone()
        held.rollback()
    assert row is not None
    assert 900 < row[0] <= 1024


@pytest.mark.parametrize(("prepare", "changed"), PATHS)
def test_a_delete_waits_for_a_whole_put_in_flight_and_deletes_it_too(
    pg_url: str,
    admin: psycopg.Connection[Any],
    schema: str,
    prepare: int | None,
    changed: int,
) -> None:
    """A whole put (a thread's first, one whose parent was gone, a migration's) finds the
    blob of an unchanged version stored and leaves it: a delete that did not wait for it
    removed that blob, and the put's checkpoint read back without it (migration 9)."""
    thread = unique()
    channels = [f"c{i}" for i in range(changed)]
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        psycopg.connect(pg_url, prepare_threshold=prepare) as held,  # the put's transaction
    ):
        deleter = PostgresSaver(conn, schema=schema)
        deleter.setup()
        _first_step(deleter, thread, channels)
        writer = _in_open_transaction(held, schema, prepare_threshold=prepare)
        versions = {"const": 1, **dict.fromkeys(channels, 2)}
        writer.put(config(thread), checkpoint(_values(channels, 1), versions), {}, versions)

        _waits_then_finishes(admin, conn, held, lambda: deleter.delete_thread(thread), "delete")
        assert list(deleter.list(config(thread))) == []
        assert _blob_count(admin, schema, thread) == 0


@pytest.mark.parametrize(("prepare", "changed"), PATHS)
def test_a_prune_waits_for_a_put_of_a_child_in_flight_and_keeps_what_it_reads(
    pg_url: str,
    admin: psycopg.Connection[Any],
    schema: str,
    prepare: int | None,
    changed: int,
) -> None:
    """A trim (keep_last) of the parent of a second writer's child in flight: the prune
    waits, then sees the child and keeps the blobs it reads (migration 9)."""
    thread = unique()
    channels = [f"c{i}" for i in range(changed)]
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        psycopg.connect(pg_url, prepare_threshold=prepare) as held,  # the put's transaction
    ):
        pruner = PostgresSaver(conn, schema=schema)
        pruner.setup()
        first = _first_step(pruner, thread, channels)
        writer = _in_open_transaction(held, schema, prepare_threshold=prepare)
        values = _values(channels, 1)
        versions = {"const": 1, **dict.fromkeys(channels, 2)}
        child = writer.put(
            config(thread, "", cid(first)),
            checkpoint(values, versions),
            {},
            dict.fromkeys(channels, 2),
        )  # `const` is left to the parent's blob

        def prune() -> None:  # what a trim does: the parent goes, the newer child stays
            pruner._run(pruner.backend.prune(thread, set(), {"": cid(first)}))

        _waits_then_finishes(admin, conn, held, prune, "prune")
        assert [t.config for t in pruner.list(config(thread))] == [child]
        got = pruner.get_tuple(child)
        assert got is not None and got.checkpoint["channel_values"] == values


def test_a_delete_waits_for_a_copy_into_its_thread_in_flight(
    pg_url: str, admin: psycopg.Connection[Any], schema: str
) -> None:
    """`copy_thread` into a thread being deleted takes the target's lock as a put does."""
    source, target = unique(), unique()
    with (
        psycopg.connect(pg_url, autocommit=True) as conn,
        psycopg.connect(pg_url) as held,  # the copy's transaction
    ):
        deleter = PostgresSaver(conn, schema=schema)
        deleter.setup()
        for thread in (source, target):  # the target holds the same blob: the copy keeps it
            deleter.put(config(thread), checkpoint({"const": "C"}), {}, {"const": 1})
        _in_open_transaction(held, schema).copy_thread(source, target)

        _waits_then_finishes(admin, conn, held, lambda: deleter.delete_thread(target), "delete")
        assert list(deleter.list(config(target))) == []
        assert _blob_count(admin, schema, target) == 0
        assert len(list(deleter.list(config(source)))) == 1

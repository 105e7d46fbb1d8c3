"""The PostgreSQL plans, driven without a server: the statements they yield, the rows they read."""

from __future__ import annotations

from typing import Any

import pytest

from checkpoint_base import (
    EMPTY,
    BlobRecord,
    CheckpointRecord,
    ListQuery,
    SchemaVersionError,
    WriteRecord,
    run,
)
from checkpoint_postgres import MIGRATIONS, PostgresBackend
from checkpoint_postgres._query import BEGIN, Fetch, Query
from checkpoint_postgres._rows import to_page
from checkpoint_postgres._sql import list_sql, page_cap, put_child_sql, put_sql, put_writes_sql

SCHEMA = "plans"


def record(cid: str = "c1", **changes: Any) -> CheckpointRecord:
    fields: dict[str, Any] = {
        "thread_id": "t",
        "checkpoint_ns": "",
        "checkpoint_id": cid,
        "parent_checkpoint_id": None,
        "type": "msgpack",
        "checkpoint": b"cp",
        "metadata": b'{"step":1}',
        "channel_versions": {"a": "1", "b": "2"},
        "run_id": None,
        "created_at": 1.5,
    }
    fields.update(changes)
    return CheckpointRecord(**fields)


def write(task: str, idx: int, value: bytes) -> WriteRecord:
    return WriteRecord("t", "", "c1", task, idx, "ch", "msgpack", value)


def collect(plan: Any, answers: dict[bytes, Any] | None = None) -> tuple[list[Any], Any]:
    """Run a plan, answering each query from `answers` (by SQL) or with None / []."""
    seen: list[Any] = []

    def execute(request: Any) -> Any:
        seen.append(request)
        if isinstance(request, Query) and answers and request.sql in answers:
            return answers[request.sql]
        if isinstance(request, Query) and request.fetch is Fetch.ALL:
            return []
        return None

    return seen, run(plan, execute)


def test_put_is_one_statement_with_deduplicated_writes() -> None:
    backend = PostgresBackend(SCHEMA, plan_cached_gets=False)
    blobs = [
        BlobRecord("t", "", "b", "2", "msgpack", b"B"),
        BlobRecord("t", "", "a", "1", "msgpack", b"A"),
    ]
    writes = [write("x", -1, b"first"), write("x", -1, b"last"), write("y", 0, b"kept")]
    writes.append(write("y", 0, b"ignored"))
    seen, _ = collect(backend.put_checkpoint(record(), blobs, writes))
    assert len(seen) == 1
    (query,) = seen
    assert query.sql == put_sql(SCHEMA, 2, 2)
    lock, *params = list(query.params)
    assert lock == "t"  # the thread whose lock the put takes
    assert params[0:6] == ["t", "", "a", "1", "msgpack", b"A"]  # blobs sorted by key
    assert params[6:12] == ["t", "", "b", "2", "msgpack", b"B"]
    write_rows = [params[12 + 9 * i : 21 + 9 * i] for i in range(2)]
    assert [(w[3], w[4], w[7]) for w in write_rows] == [("x", -1, b"last"), ("y", 0, b"kept")]
    checkpoint = params[30:]
    assert checkpoint[:7] == ["t", "", "c1", None, "msgpack", b"cp", b'{"step":1}']
    assert checkpoint[7:] == ['{"step":1}', '{"a": "1", "b": "2"}', None, 1.5]


def test_put_skips_blobs_that_hold_no_value() -> None:
    backend = PostgresBackend(SCHEMA, plan_cached_gets=False)
    blobs = [
        BlobRecord("t", "", "a", "1", "msgpack", b"A"),
        BlobRecord("t", "", "b", "2", EMPTY, b""),
    ]
    seen, _ = collect(backend.put_checkpoint(record(), blobs))
    (query,) = seen
    assert query.sql == put_sql(SCHEMA, 1, 0)
    assert list(query.params)[:7] == ["t", "t", "", "a", "1", "msgpack", b"A"]


def test_put_of_a_few_blobs_calls_the_function() -> None:
    """Without prepared statements a put of up to four blobs and no writes is a call of
    `put_checkpoint`: the checkpoint row, then the blobs sorted by key, NULL-padded."""
    backend = PostgresBackend(SCHEMA)
    blobs = [
        BlobRecord("t", "", "b", "2", "msgpack", b"B"),
        BlobRecord("t", "", "c", "3", EMPTY, b""),
        BlobRecord("t", "", "a", "1", "msgpack", b"A"),
    ]
    (query,), _ = collect(backend.put_checkpoint(record(), blobs))
    assert query.sql == backend.sql.put_checkpoint
    params = list(query.params)
    assert params[:7] == ["t", "", "c1", None, "msgpack", b"cp", b'{"step":1}']
    assert params[7:11] == ['{"step":1}', '{"a": "1", "b": "2"}', None, 1.5]
    assert params[11:] == ["a", "1", "msgpack", b"A", "b", "2", "msgpack", b"B"] + [None] * 8
    (query,), _ = collect(backend.put_checkpoint(record(), []))
    assert query.sql == backend.sql.put_checkpoint
    assert list(query.params)[11:] == [None] * 16


@pytest.mark.parametrize(
    ("blobs", "writes"),
    [
        ([BlobRecord("t", "", f"c{i}", "1", "msgpack", b"v") for i in range(5)], []),
        ([BlobRecord("t", "", "a", "1", "msgpack", b"A")], [write("x", 0, b"w")]),
        ([BlobRecord("other", "", "a", "1", "msgpack", b"A")], []),
        (
            [
                BlobRecord("t", "", "a", "1", "msgpack", b"A"),
                BlobRecord("t", "ns", "a", "1", "msgpack", b"A"),
            ],
            [],
        ),
    ],
    ids=["five blobs", "with writes", "another thread", "two namespaces"],
)
def test_puts_the_function_does_not_fit_use_the_statement(
    blobs: list[BlobRecord], writes: list[WriteRecord]
) -> None:
    backend = PostgresBackend(SCHEMA)
    (query,), _ = collect(backend.put_checkpoint(record(), blobs, writes))
    assert query.sql == put_sql(SCHEMA, len(blobs), len(writes))


@pytest.mark.parametrize("answer", [True, False])
def test_put_child_is_one_statement_that_says_whether_it_stored(answer: bool) -> None:
    """The function for up to four blobs unprepared, else the statement, whose first three
    parameters name the parent it locks and checks; both answer whether they stored."""
    child = record("c2", parent_checkpoint_id="c1")
    few = [
        BlobRecord("t", "", "a", "1", "msgpack", b"A"),
        BlobRecord("t", "", "b", "2", EMPTY, b""),
    ]
    many = [BlobRecord("t", "", f"c{i}", "1", "msgpack", b"v") for i in range(5)]
    unprepared, prepared = PostgresBackend(SCHEMA), PostgresBackend(SCHEMA, plan_cached_gets=False)
    cases = [
        (unprepared, few, unprepared.sql.put_child),
        (prepared, few, put_child_sql(SCHEMA, 1)),
        (unprepared, many, put_child_sql(SCHEMA, 5)),
    ]
    for backend, blobs, statement in cases:
        (query,), stored = collect(backend.put_child(child, blobs), {statement: (answer,)})
        assert (query.sql, query.fetch, stored) == (statement, Fetch.ONE, answer)
        params = list(query.params)
        if statement == unprepared.sql.put_child:
            assert params[:4] == ["t", "", "c2", "c1"]
            assert params[11:] == ["a", "1", "msgpack", b"A"] + [None] * 12
        else:
            assert params[:3] == ["t", "", "c1"]
            first = ("a", b"A") if blobs is few else ("c0", b"v")
            assert params[3:9] == ["t", "", first[0], "1", "msgpack", first[1]]
            assert params[-11:-7] == ["t", "", "c2", "c1"]


def test_put_writes_without_writes_does_nothing() -> None:
    backend = PostgresBackend(SCHEMA)
    seen, _ = collect(backend.put_writes([]))
    assert seen == []
    seen, _ = collect(backend.put_writes([write("x", 0, b"v")]))
    assert [q.sql for q in seen] == [put_writes_sql(SCHEMA, 1)]


def test_setup_on_an_empty_database() -> None:
    backend = PostgresBackend(SCHEMA)
    s = backend.sql
    answers = {s.schema_exists: None, s.applied: (0,)}
    for check in s.migration_checks:
        if check is not None:
            answers[check] = None  # this server lacks the feature: skip, but record
    seen, _ = collect(backend.setup(), answers)
    assert seen[0].sql == s.migrations_exist  # no migrations table: on to the work
    assert seen[1] is BEGIN
    assert b"pg_advisory_xact_lock" in seen[2].sql
    statements = [q.sql for q in seen[2:]]
    assert s.create_schema in statements
    recorded = [q.params["v"] for q in seen if isinstance(q, Query) and q.sql == s.record_migration]
    assert recorded == list(range(1, len(MIGRATIONS) + 1))
    for migration, check in zip(s.migrations, s.migration_checks, strict=True):
        ran = all(stmt in statements for stmt in migration)
        assert ran == (check is None)


def test_setup_up_to_date_and_newer() -> None:
    backend = PostgresBackend(SCHEMA)
    s = backend.sql
    # Up to date: two reads, no transaction, lock or DDL (a read replica takes this path).
    current = {s.migrations_exist: (1,), s.applied: (len(MIGRATIONS),)}
    seen, _ = collect(backend.setup(), current)
    assert [q.sql for q in seen] == [s.migrations_exist, s.applied]
    with pytest.raises(SchemaVersionError):
        collect(backend.setup(), {**current, s.applied: (len(MIGRATIONS) + 1,)})
    # Up to date by the time the lock is held (another process migrated meanwhile).
    locked = {s.migrations_exist: None, s.schema_exists: (1,), s.applied: (len(MIGRATIONS),)}
    seen, _ = collect(backend.setup(), locked)
    assert s.create_schema not in [getattr(q, "sql", None) for q in seen]
    assert not any(getattr(q, "sql", None) == s.record_migration for q in seen)
    with pytest.raises(SchemaVersionError):
        collect(backend.setup(), {**locked, s.applied: (len(MIGRATIONS) + 1,)})


def test_list_page_binds_every_condition() -> None:
    backend = PostgresBackend(SCHEMA, plan_cached_gets=False)
    query = ListQuery(
        thread_id="t\x00",
        checkpoint_ns="",
        before="c9",
        cursor=("c5", "t\x00", ""),
        filter={"k": "v"},
        limit=3,
    )
    seen, rows = collect(backend.list_page(query))
    (q,) = seen
    assert q.sql == list_sql(SCHEMA, (True, True, False, True, True, True), cap=4)  # 3 -> 4
    assert q.params == {
        "limit": 3,
        "thread": "t\x01\x01",
        "ns": "",
        "before": "c9",
        "c_id": "c5",
        "c_thread": "t\x01\x01",
        "c_ns": "",
        "filter": '{"k":"v"}',
    }
    assert rows == []
    # A filter JSONB cannot hold stays in Python.
    seen, _ = collect(backend.list_page(ListQuery(filter={"k": "\x00"})))
    assert "filter" not in seen[0].params


def test_list_pages_of_one_thread_go_through_the_function() -> None:
    """Without prepared statements a thread's page calls `list_page` with every bound set
    (None for the unused ones); a page of every thread or one checkpoint by id does not."""
    backend = PostgresBackend(SCHEMA)
    query = ListQuery(
        thread_id="t\x00", before="c9", cursor=("c5", "t\x00", "ns"), filter={"k": "v"}, limit=3
    )
    (q,), _ = collect(backend.list_page(query))
    assert q.sql == backend.sql.list_page
    assert q.params == {
        "limit": 3,
        "thread": "t\x01\x01",
        "ns": None,
        "before": "c9",
        "c_id": "c5",
        "c_ns": "ns",
        "filter": '{"k":"v"}',
    }
    (q,), _ = collect(backend.list_page(ListQuery(thread_id="t", checkpoint_ns="", limit=10)))
    assert q.sql == backend.sql.list_page
    assert q.params == {
        "limit": 10,
        "thread": "t",
        "ns": "",
        "before": None,
        "c_id": None,
        "c_ns": None,
        "filter": None,
    }
    (q,), _ = collect(backend.list_page(ListQuery(limit=10)))
    assert q.sql == list_sql(SCHEMA, (False,) * 6, cap=16)
    by_id = ListQuery(thread_id="t", checkpoint_ns="", checkpoint_id="c1", limit=10)
    (q,), _ = collect(backend.list_page(by_id))
    assert q.sql == list_sql(SCHEMA, (True, True, True, False, False, False), cap=16)


def test_page_caps_are_the_next_power_of_two() -> None:
    assert [page_cap(n) for n in (1, 2, 3, 4, 5, 10, 16, 17, 100)] == [
        1, 2, 4, 4, 8, 16, 16, 32, 128,
    ]  # fmt: skip
    assert page_cap(65_536) == 65_536 and page_cap(65_537) is None  # then the plain LIMIT
    assert b"LIMIT 128" in list_sql(SCHEMA, (True,) + (False,) * 5, cap=128)
    with pytest.raises(ValueError, match="PAGE_CAPS"):
        list_sql(SCHEMA, (True,) + (False,) * 5, cap=100)


def _checkpoint_row(cid: str, versions: dict[str, str], num: int | None = None) -> tuple[Any, ...]:
    return (0, "t", "", cid, None, "msgpack", None, None, num, b"cp", b"{}", versions, 1.0)


def test_page_rows_become_checkpoint_rows() -> None:
    rows = [
        _checkpoint_row("c1", {"a": "1"}),
        (1, "t", "", "a", "1", "msgpack", None, None, None, b"A1", None, None, None),
        _checkpoint_row("c2", {"a": "1", "b": "2"}),
        (1, "t", "", "b", "2", "msgpack", None, None, None, b"B2", None, None, None),
        (2, "t", "", "c2", "task", "ch", "msgpack", "path", -1, b"W", None, None, None),
    ]
    page = to_page(rows, by_position=False)
    assert [r.checkpoint.checkpoint_id for r in page] == ["c2", "c1"]  # newest first
    assert {(b.channel, b.data) for b in page[0].blobs} == {("a", b"A1"), ("b", b"B2")}
    assert [(b.channel, b.data) for b in page[1].blobs] == [("a", b"A1")]  # shared, sent once
    assert [(w.task_id, w.idx, w.task_path) for w in page[0].writes] == [("task", -1, "path")]
    assert page[1].writes == ()

    history = to_page(
        [_checkpoint_row("c1", {}, num=2), _checkpoint_row("c2", {}, num=1)], by_position=True
    )
    assert [r.checkpoint.checkpoint_id for r in history] == ["c2", "c1"]

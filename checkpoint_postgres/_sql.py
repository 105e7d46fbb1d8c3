"""SQL of the PostgreSQL backend: one statement per operation (migrations: `_migrations.py`).

Statements are templates whose holes are the schema (`{s}`, filled in with
`psycopg.sql.Identifier`) and named constant fragments; they are rendered to bytes once per
schema (and per row count, for inserts). Every value is a bound parameter. Key columns use the
"C" collation, so rows sort by code point, the order the saver's keyset cursors compare in,
whatever the database's locale.

Each write is a single statement (data-modifying CTEs), so in autocommit it is one round trip
and one atomic transaction, and running it twice stores the same thing (safe to retry). Inserts
bind one placeholder per value in `VALUES` rows rather than arrays: psycopg dumps a Python list
element by element in Python, which cost 12-22 us per array parameter here (7 arrays: ~100 us
of a ~600 us put), against under 1 us per scalar.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from psycopg import sql

from ._migrations import MIGRATIONS

__all__ = [
    "BLOB_COLUMNS",
    "MAX_VALUES_ROWS",
    "MIGRATIONS_EXIST",
    "PUT_FUNCTION_BLOBS",
    "WRITE_COLUMNS",
    "Statements",
    "list_sql",
    "put_child_sql",
    "put_sql",
    "put_writes_sql",
    "statements",
]


BLOB_COLUMNS = ("thread_id", "checkpoint_ns", "channel", "version", "type", "data")
WRITE_COLUMNS = (
    "thread_id",
    "checkpoint_ns",
    "checkpoint_id",
    "task_id",
    "idx",
    "channel",
    "type",
    "data",
    "task_path",
)

_CHECKPOINT_COLUMNS = """thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
    checkpoint, metadata, metadata_index, channel_versions, run_id, created_at"""

_UPSERT_CHECKPOINT = """ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata,
    metadata_index = EXCLUDED.metadata_index, channel_versions = EXCLUDED.channel_versions,
    run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at"""

# A write with idx < 0 (errors, interrupts, resumes) replaces the stored one; others never do.
_UPSERT_WRITE = """ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, data = EXCLUDED.data,
    task_path = EXCLUDED.task_path
    WHERE EXCLUDED.idx < 0"""

# Bytea values are bound in binary (%b): no hex encoding on either side.
_BLOB_ROW = "(%s, %s, %s, %s, %s, %b)"
_WRITE_ROW = "(%s, %s, %s, %s, %s, %s, %s, %b, %s)"
_CHECKPOINT_ROW = "(%s, %s, %s, %s, %s, %b, %b, %s::jsonb, %s::jsonb, %s, %s)"

# Past this many rows an insert binds one array per column instead (PostgreSQL takes at most
# 65535 parameters per statement: 7281 rows of writes).
MAX_VALUES_ROWS = 1000
_BLOB_ARRAYS = """SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],
    %s::text[], %b::bytea[])"""
_WRITE_ARRAYS = """SELECT * FROM unnest(%s::text[], %s::text[], %s::text[], %s::text[],
    %s::int4[], %s::text[], %s::text[], %b::bytea[], %s::text[])"""

_INSERT_BLOBS = """INSERT INTO {s}.blobs (thread_id, checkpoint_ns, channel, version, type, data)
    {rows} ON CONFLICT DO NOTHING"""
_INSERT_WRITES = """INSERT INTO {s}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
    channel, type, data, task_path) {rows} {upsert_write}"""
_INSERT_CHECKPOINT = """INSERT INTO {s}.checkpoints ({checkpoint_columns})
    VALUES {row} {upsert_checkpoint}"""

# A page of checkpoints comes back as the rows of three kinds (the `PageRow` columns):
#   0 checkpoint: k1 id, k2 parent id, k3 type, k4 run id, num position, d1 checkpoint,
#                 d2 metadata, j channel versions, f created at;
#   1 blob:       k1 channel, k2 version, k3 type, d1 data (once per page, however many
#                 of its checkpoints read it);
#   2 write:      k1 checkpoint id, k2 task id, k3 channel, k4 type, k5 task path, num idx,
#                 d1 data.
# One statement, one round trip, plain columns that psycopg loads in C. Measured on a
# 100-step thread (payload 512, p10 of 400 runs, statement and fetch only): arrays of records
# in columns of each checkpoint row took 0.49 ms for get_tuple and 1.67 ms for
# list(limit=10); these rows take 0.27 ms and 0.94 ms (a raw SELECT of the same bytes:
# 0.16 ms and 0.78 ms). Each blob is a LATERAL .. LIMIT 1 primary-key probe: as a plain join
# the planner hashed every blob of the thread before the tables had statistics.
_PAGE_ROWS = """SELECT 0::int2 AS kind, p.thread_id, p.checkpoint_ns, p.checkpoint_id AS k1,
        p.parent_checkpoint_id AS k2, p.type AS k3, p.run_id AS k4, NULL::text AS k5,
        p.pos AS num, p.checkpoint AS d1, p.metadata AS d2, p.channel_versions AS j,
        p.created_at AS f
    FROM page p
    UNION ALL
    SELECT 1::int2, v.thread_id, v.checkpoint_ns, v.channel, v.version, b.type, NULL, NULL,
        NULL, b.data, NULL, NULL, NULL
    FROM (
        SELECT DISTINCT p.thread_id, p.checkpoint_ns, e.key AS channel, e.value AS version
        FROM page p, jsonb_each_text(CASE jsonb_typeof(p.channel_versions)
            WHEN 'object' THEN p.channel_versions END) AS e  -- damaged: no blobs, named in Python
    ) AS v
    CROSS JOIN LATERAL (
        SELECT b.type, b.data FROM {s}.blobs b
        WHERE b.thread_id = v.thread_id AND b.checkpoint_ns = v.checkpoint_ns
            AND b.channel = v.channel COLLATE "C" AND b.version = v.version COLLATE "C"
        LIMIT 1
    ) AS b
    UNION ALL
    SELECT 2::int2, w.thread_id, w.checkpoint_ns, w.checkpoint_id, w.task_id, w.channel,
        w.type, w.task_path, w.idx, w.data, NULL, NULL, NULL
    FROM page p
    CROSS JOIN LATERAL (
        SELECT * FROM {s}.writes w
        WHERE w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns
            AND w.checkpoint_id = p.checkpoint_id
        OFFSET 0  -- keeps it a per-checkpoint index probe, never a hash of the thread
    ) AS w"""

_PAGE_COLUMNS = """thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
    checkpoint, metadata, channel_versions, run_id, created_at"""

_PAGE_ORDER = "ORDER BY checkpoint_id DESC, thread_id DESC, checkpoint_ns DESC"

# Each optional condition of a list page; `list_sql` picks the ones a query uses.
_CONDITIONS = (
    "thread_id = %(thread)s",
    "checkpoint_ns = %(ns)s",
    "checkpoint_id = %(id)s",
    "checkpoint_id < %(before)s",
    "(checkpoint_id, thread_id, checkpoint_ns) < (%(c_id)s, %(c_thread)s, %(c_ns)s)",
    "metadata_index @> %(filter)s::jsonb",
)

_LIST = """WITH page AS MATERIALIZED (
        SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
        {where} {page_order} LIMIT %(limit)s
    )
    {page_rows}"""
# The same under a constant cap (see `list_sql`): the outer LIMIT is the caller's.
_LIST_CAPPED = """WITH page AS MATERIALIZED (
        SELECT * FROM (
            SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
            {where} {page_order} LIMIT {cap}
        ) AS capped {page_order} LIMIT %(limit)s
    )
    {page_rows}"""

# Ancestors by parent links, newest first: one round trip for a whole page of history.
_HISTORY = """WITH RECURSIVE chain AS (
        SELECT c.checkpoint_id, c.parent_checkpoint_id, 1 AS depth
        FROM {s}.checkpoints c
        WHERE c.thread_id = %(thread)s AND c.checkpoint_ns = %(ns)s AND c.checkpoint_id = %(id)s
        UNION ALL
        SELECT c.checkpoint_id, c.parent_checkpoint_id, chain.depth + 1
        FROM chain JOIN {s}.checkpoints c ON c.thread_id = %(thread)s
            AND c.checkpoint_ns = %(ns)s AND c.checkpoint_id = chain.parent_checkpoint_id
        WHERE chain.depth < %(limit)s
    ), page AS MATERIALIZED (
        SELECT c.thread_id, c.checkpoint_ns, c.checkpoint_id, c.parent_checkpoint_id, c.type,
            c.checkpoint, c.metadata, c.channel_versions, c.run_id, c.created_at,
            chain.depth AS pos
        FROM chain JOIN {s}.checkpoints c ON c.thread_id = %(thread)s
            AND c.checkpoint_ns = %(ns)s AND c.checkpoint_id = chain.checkpoint_id
    )
    {page_rows}"""

_HEADS = """SELECT DISTINCT ON (checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, type, checkpoint, metadata, channel_versions, run_id, created_at
    FROM {s}.checkpoints WHERE thread_id = %(thread)s
    ORDER BY checkpoint_ns, checkpoint_id DESC"""

# A page of threads: those with checkpoints and those holding only writes (of checkpoints
# deleted while a graph still ran), merged in thread order. The ids come from skip scans of
# the two primary keys (one index probe per thread, however many rows it has); a thread's
# summary from its rows, a writes-only thread's (count 0: no time) from its writes. `{after}`
# is `true` or the bound (two statements: `$1 IS NULL OR thread_id > $1` kept a generic plan
# from using the index, 80 ms a page of 3,000 threads instead of 1).
_LIST_THREADS = """WITH RECURSIVE ct(thread_id) AS (
        (SELECT thread_id FROM {s}.checkpoints WHERE {after} ORDER BY thread_id LIMIT 1)
        UNION ALL
        SELECT (SELECT c.thread_id FROM {s}.checkpoints c WHERE c.thread_id > ct.thread_id
                ORDER BY c.thread_id LIMIT 1)
        FROM ct WHERE ct.thread_id IS NOT NULL
    ), wt(thread_id) AS (
        (SELECT thread_id FROM {s}.writes WHERE {after} ORDER BY thread_id LIMIT 1)
        UNION ALL
        SELECT (SELECT w.thread_id FROM {s}.writes w WHERE w.thread_id > wt.thread_id
                ORDER BY w.thread_id LIMIT 1)
        FROM wt WHERE wt.thread_id IS NOT NULL
    ), t AS (
        (SELECT thread_id FROM ct WHERE thread_id IS NOT NULL LIMIT %(limit)s)
        UNION
        (SELECT thread_id FROM wt WHERE thread_id IS NOT NULL LIMIT %(limit)s)
        ORDER BY thread_id LIMIT %(limit)s)
    SELECT t.thread_id, c.n, coalesce(c.last, w.last), c.updated, {size},
        coalesce(c.nss, w.nss)
    FROM t CROSS JOIN LATERAL (
        SELECT count(*) AS n, max(checkpoint_id) AS last, max(created_at) AS updated,
            {checkpoint_size} array_agg(DISTINCT checkpoint_ns) AS nss
        FROM {s}.checkpoints WHERE thread_id = t.thread_id) c {blob_size}
    LEFT JOIN LATERAL (
        SELECT max(checkpoint_id) AS last, {write_size} array_agg(DISTINCT checkpoint_ns) AS nss
        FROM {s}.writes WHERE thread_id = t.thread_id) w ON true
    ORDER BY t.thread_id"""

# The size columns of `_LIST_THREADS`; a sweep's listing (`list_thread_ages`) leaves them out,
# and with them the blob rows: 2,000 threads of 40 agent steps (543 MB of blobs), a whole
# sweep that found none idle took 101 ms, the listing with sizes 164 ms (tables analyzed).
_THREAD_SIZES = {
    "size": "CASE WHEN c.n > 0 THEN c.size + coalesce(b.size, 0) + coalesce(w.size, 0)"
    " ELSE w.size END",
    "checkpoint_size": "sum(pg_column_size(checkpoint) + pg_column_size(metadata)) AS size,",
    "blob_size": "LEFT JOIN LATERAL (SELECT sum(pg_column_size(data)) AS size"
    " FROM {s}.blobs WHERE thread_id = t.thread_id AND c.n > 0) b ON true",
    "write_size": "sum(pg_column_size(data)) AS size,",
}
_NO_THREAD_SIZES = {**dict.fromkeys(_THREAD_SIZES, ""), "size": "NULL::bigint"}


# The deletes are functions of migration 8: they lock the threads first (see there), then
# delete in a later statement. A blob is live while a remaining checkpoint of its (thread,
# namespace) reads it; `delete_runs` lists the live versions once and anti-joins them
# (hashed): a NOT EXISTS per blob scanned the thread's checkpoints for each of its blobs,
# 2.3 s to delete one run of a 2,000-step thread. A damaged row whose channel_versions is
# not an object names no live blob.
_DELETE_THREADS = "SELECT {s}.delete_threads(%(threads)s::text[])"
_DELETE_RUNS = "SELECT {s}.delete_runs(%(runs)s::text[])"

# The function of migration 9: it takes the thread's lock, then deletes. Only checkpoints up
# to their namespace's bound in `upto` go: one stored after the caller read the thread stays,
# and so do the blobs it reads. Every part of its statement sees the rows `gone` deletes.
_PRUNE = """SELECT {s}.prune_thread(%(thread)s, %(keep_ns)s::text[], %(keep_id)s::text[],
    %(upto_ns)s::text[], %(upto_id)s::text[])"""

# A keep_last trim that is a transaction of its own (`Query.unsynced`): the same, committed
# without waiting for the WAL to reach the disk (a setting of that transaction alone; the
# next synchronous commit of any session flushes it). A crash before then undoes the whole
# trim, which the next one does again. keep_last=1, a 200-step thread on the durable test
# server: 1.47 instead of 1.73 ms a put (median of 6 runs).
_TRIM = _PRUNE.replace("SELECT ", "SELECT set_config('synchronous_commit', 'off', true), ", 1)

# Copy as put_checkpoint would: checkpoints replaced, blobs kept, writes by the idx rule.
# The inserts wait for the target thread's lock, as a put's do (`_LOCK_THREAD`): a copy into
# a thread that a delete is removing leaves no checkpoint whose kept blob the delete took.
_COPY_THREAD = """WITH ok AS (SELECT {s}.lock_thread(%(target)s) AS ok), b AS (
        INSERT INTO {s}.blobs (thread_id, checkpoint_ns, channel, version, type, data)
        SELECT %(target)s, checkpoint_ns, channel, version, type, data
        FROM {s}.blobs WHERE thread_id = %(source)s AND (SELECT ok FROM ok)
        ON CONFLICT DO NOTHING
    ), w AS (
        INSERT INTO {s}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
            channel, type, data, task_path)
        SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, data,
            task_path
        FROM {s}.writes WHERE thread_id = %(source)s AND (SELECT ok FROM ok)
        {upsert_write}
    )
    INSERT INTO {s}.checkpoints ({checkpoint_columns})
    SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
        metadata, metadata_index, channel_versions, run_id, created_at
    FROM {s}.checkpoints WHERE thread_id = %(source)s AND (SELECT ok FROM ok)
    {upsert_checkpoint}"""

# One checkpoint (the latest of a namespace when id is NULL) by the function of migration 4.
_GET_PAGE = "SELECT * FROM {s}.get_page(%(thread)s, %(ns)s, %(id)s)"
# A put of up to `PUT_FUNCTION_BLOBS` blobs and no writes by the function of migration 6:
# the checkpoint row as `_CHECKPOINT_ROW` lays it out, then four (channel, version, type,
# data) slots.
PUT_FUNCTION_BLOBS = 4
_PUT_CHECKPOINT = """SELECT {s}.put_checkpoint(%s, %s, %s, %s, %s, %b, %b, %s::jsonb, %s::jsonb,
    %s, %s, %s, %s, %s, %b, %s, %s, %s, %b, %s, %s, %s, %b, %s, %s, %s, %b)"""
# `put_child` of up to `PUT_FUNCTION_BLOBS` blobs by the function of migration 8, laid out as
# `_PUT_CHECKPOINT`: True when it stored the checkpoint, False when the parent is gone.
_PUT_CHILD = """SELECT {s}.put_child(%s, %s, %s, %s, %s, %b, %b, %s::jsonb, %s::jsonb,
    %s, %s, %s, %s, %s, %b, %s, %s, %s, %b, %s, %s, %s, %b, %s, %s, %s, %b)"""
# A put as one statement (`put_sql`, `put_child_sql`): the thread's lock (`lock_thread` of
# migration 9, or `lock_parent` of 8, which also checks the parent) runs first, as every
# insert waits on its answer; an insert's ON CONFLICT sees rows committed after the statement
# began, so the statement's older snapshot does not matter.
_LOCK_THREAD = "ok AS (SELECT {s}.lock_thread(%s) AS ok)"
_LOCK_PARENT = "ok AS (SELECT {s}.lock_parent(%s, %s, %s) AS ok)"
_GATE = "WHERE (SELECT ok FROM ok)"
_INSERT_GATED = """INSERT INTO {s}.checkpoints ({checkpoint_columns})
    SELECT * FROM (VALUES {row}) AS r {gate} {upsert_checkpoint}"""
# A page of one thread by the function of migration 5.
_LIST_PAGE = """SELECT * FROM {s}.list_page(%(thread)s, %(ns)s, %(before)s, %(c_id)s, %(c_ns)s,
    %(filter)s::jsonb, %(limit)s::int8)"""
# A lease (`Backend.claim`, migration 10): taken when free, ended, or the holder's own.
_CLAIM = """INSERT INTO {s}.leases AS l (name, holder, until)
    VALUES (%(name)s, %(holder)s, clock_timestamp() + make_interval(secs => %(seconds)s))
    ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, until = excluded.until
    WHERE l.until <= clock_timestamp() OR l.holder = excluded.holder
    RETURNING true"""
_SCHEMA_EXISTS = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s"
# Whether the schema holds the migrations table (by name, bound: no error when it does not).
MIGRATIONS_EXIST = """SELECT 1 FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relname = 'migrations' AND c.relkind = 'r'"""
# The saver's three tables in the schema (bound by name): their bytes with indexes and TOAST,
# and whether the current role may VACUUM each (the table's owner, the database's owner, a
# superuser; PostgreSQL 17 also grants MAINTAIN, which `_MAY_MAINTAIN` asks on such servers).
_TABLES = """FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind = 'r'
        AND c.relname IN ('checkpoints', 'blobs', 'writes')"""
_SPACE = "SELECT coalesce(sum(pg_catalog.pg_total_relation_size(c.oid)), 0)::bigint " + _TABLES
_MAY_VACUUM_COLUMNS = """SELECT c.relname, pg_catalog.pg_has_role(c.relowner, 'USAGE')
        OR pg_catalog.pg_has_role((SELECT d.datdba FROM pg_catalog.pg_database d
            WHERE d.datname = pg_catalog.current_database()), 'USAGE'),
        pg_catalog.pg_get_userbyid(c.relowner) """
_MAY_VACUUM = _MAY_VACUUM_COLUMNS + _TABLES
_MAY_MAINTAIN = """SELECT c.relname FROM pg_catalog.pg_class c
    JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = %(schema)s AND c.relkind = 'r'
        AND c.relname = ANY(%(tables)s::text[])
        AND NOT pg_catalog.has_table_privilege(c.oid, 'MAINTAIN')"""
# VACUUM keeps a deleted row while a transaction that began before the delete may still
# read it. `_HORIZON`, taken as a compaction starts, is one past the newest transaction
# finished by then (its snapshot's xmax, 32 bits, as text): every delete before it is
# older. `_HOLDERS` are the sessions, prepared transactions and replication slots whose
# snapshot's xmin or own transaction id is older still, in this database (what PostgreSQL
# 14+ counts for its tables; 13 counts every database's, which go unnamed) or in none (a
# walsender). Autovacuum's pure VACUUMs hold nothing back and are left out. Without
# pg_read_all_stats, another role's session shows no state, time or query.
_HORIZON = """SELECT pg_catalog.mod(
    pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::numeric, 4294967296
)::bigint::text"""
_HOLDERS = """SELECT 'session ' || a.pid || coalesce(' (' || nullif(concat_ws(', ',
        nullif(a.backend_type, 'client backend'), nullif(a.usename::text, ''),
        'application ' || quote_literal(nullif(a.application_name, '')), a.state,
        'since ' || pg_catalog.to_char(a.xact_start, 'YYYY-MM-DD HH24:MI:SS TZ'),
        quote_literal(nullif(left(a.query, 60), ''))), '') || ')', '')
    FROM pg_catalog.pg_stat_activity a
    WHERE a.pid <> pg_catalog.pg_backend_pid()
        AND (a.datid IS NULL OR a.datname = pg_catalog.current_database())
        AND (pg_catalog.age(a.backend_xmin) > pg_catalog.age(%(start)s::xid)
            OR pg_catalog.age(a.backend_xid) > pg_catalog.age(%(start)s::xid))
        AND NOT (a.backend_type = 'autovacuum worker' AND a.query LIKE 'autovacuum: VACUUM %%'
            AND a.query NOT LIKE '%%ANALYZE%%')
    UNION ALL SELECT 'prepared transaction ' || quote_literal(p.gid) || ' (prepared '
        || pg_catalog.to_char(p.prepared, 'YYYY-MM-DD HH24:MI:SS TZ') || ')'
    FROM pg_catalog.pg_prepared_xacts p
    WHERE p.database = pg_catalog.current_database()
        AND pg_catalog.age(p.transaction) > pg_catalog.age(%(start)s::xid)
    UNION ALL SELECT 'replication slot ' || quote_literal(r.slot_name)
    FROM pg_catalog.pg_replication_slots r
    WHERE pg_catalog.age(r.xmin) > pg_catalog.age(%(start)s::xid)
    ORDER BY 1"""
_VACUUM = "VACUUM (ANALYZE) {s}.checkpoints, {s}.blobs, {s}.writes"
_VACUUM_FULL = "VACUUM (FULL, ANALYZE) {s}.checkpoints, {s}.blobs, {s}.writes"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {s}"
_CREATE_MIGRATIONS = """CREATE TABLE IF NOT EXISTS {s}.migrations (
    v integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now())"""
_CHECKPOINT_KEYS = """SELECT checkpoint_ns, checkpoint_id, parent_checkpoint_id
    FROM {s}.checkpoints WHERE thread_id = %(thread)s"""
_APPLIED = "SELECT coalesce(max(v), 0) FROM {s}.migrations"
_RECORD_MIGRATION = "INSERT INTO {s}.migrations (v) VALUES (%(v)s)"

# Named pieces that templates include as {name}; each may itself use {s} and other pieces.
_FRAGMENTS = {
    "checkpoint_columns": _CHECKPOINT_COLUMNS,
    "upsert_checkpoint": _UPSERT_CHECKPOINT,
    "upsert_write": _UPSERT_WRITE,
    "page_rows": _PAGE_ROWS,
    "page_columns": _PAGE_COLUMNS,
    "page_order": _PAGE_ORDER,
}


def _compose(template: str, schema: sql.Identifier, **extra: sql.Composable) -> sql.Composed:
    """`template` with {s} the quoted schema and each {fragment} expanded (constants only)."""
    pieces = {
        name: _compose(text, schema)
        for name, text in _FRAGMENTS.items()
        if "{" + name + "}" in template
    }
    return sql.SQL(template).format(s=schema, **pieces, **extra)


def _render(template: str, schema: str, **extra: sql.Composable) -> bytes:
    return _compose(template, sql.Identifier(schema), **extra).as_bytes(None)


_DOLLAR_TAG = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)\$")


def dollar_safe(template: str, schema: str) -> str:
    """`template` with each dollar-quote tag (`$get_page$`) renamed where the schema's name
    holds it: inside a function body the quoted identifier would otherwise end the body
    early (a schema named `x$get_page$; DROP ...` would run its tail as SQL). Quoting adds
    only `"` to the name, so a tag absent from the name is absent from the identifier."""

    def rename(match: re.Match[str]) -> str:
        tag, n = match.group(0), 0
        while tag in schema:
            n += 1
            tag = f"${match.group(1)}_{n}$"
        return tag

    return _DOLLAR_TAG.sub(rename, template) if "$" in schema else template


def _rows(row: str, arrays: str, count: int) -> sql.Composable:
    """`VALUES` with `count` rows, or the arrays form past `MAX_VALUES_ROWS`."""
    if count > MAX_VALUES_ROWS:
        return sql.SQL(arrays)
    return sql.SQL("VALUES ") + sql.SQL(", ").join([sql.SQL(row)] * count)


def _shape(rows: int) -> int:
    """Row counts that share a statement map to one cache entry (-1: the arrays form)."""
    return -1 if rows > MAX_VALUES_ROWS else rows


@dataclass(frozen=True, slots=True)
class Statements:
    """Every fixed statement of the backend, rendered for one schema."""

    schema: str
    migrations: tuple[tuple[bytes, ...], ...]
    migration_checks: tuple[bytes | None, ...]
    schema_exists: bytes
    migrations_exist: bytes
    space: bytes
    may_vacuum: bytes
    may_maintain: bytes
    horizon: bytes
    holders: bytes
    vacuum: bytes
    vacuum_full: bytes
    create_schema: bytes
    create_migrations: bytes
    applied: bytes
    record_migration: bytes
    history: bytes
    heads: bytes
    list_threads: bytes
    list_threads_after: bytes
    list_thread_ages: bytes
    list_thread_ages_after: bytes
    checkpoint_keys: bytes
    delete_threads: bytes
    delete_runs: bytes
    prune: bytes
    trim: bytes
    copy_thread: bytes
    get_page: bytes
    list_page: bytes
    put_checkpoint: bytes
    put_child: bytes
    claim: bytes


@functools.lru_cache(maxsize=64)
def statements(schema: str) -> Statements:
    """The statements for tables in `schema` (quoted as an identifier, never formatted)."""

    def r(template: str) -> bytes:
        return _render(template, schema)

    first, after = sql.SQL("true"), sql.SQL("thread_id > %(after)s::text")

    def threads(bound: sql.Composable, sizes: dict[str, str]) -> bytes:
        quoted = sql.Identifier(schema)
        parts = {name: _compose(text, quoted) for name, text in sizes.items()}
        return _render(_LIST_THREADS, schema, after=bound, **parts)

    return Statements(
        schema=schema,
        migrations=tuple(
            tuple(r(dollar_safe(stmt, schema)) for stmt in m.statements) for m in MIGRATIONS
        ),
        migration_checks=tuple(None if m.only_if is None else r(m.only_if) for m in MIGRATIONS),
        schema_exists=_SCHEMA_EXISTS.encode(),
        migrations_exist=MIGRATIONS_EXIST.encode(),
        space=_SPACE.encode(),
        may_vacuum=_MAY_VACUUM.encode(),
        may_maintain=_MAY_MAINTAIN.encode(),
        horizon=_HORIZON.encode(),
        holders=_HOLDERS.encode(),
        vacuum=r(_VACUUM),
        vacuum_full=r(_VACUUM_FULL),
        create_schema=r(_CREATE_SCHEMA),
        create_migrations=r(_CREATE_MIGRATIONS),
        applied=r(_APPLIED),
        record_migration=r(_RECORD_MIGRATION),
        history=r(_HISTORY),
        heads=r(_HEADS),
        list_threads=threads(first, _THREAD_SIZES),
        list_threads_after=threads(after, _THREAD_SIZES),
        list_thread_ages=threads(first, _NO_THREAD_SIZES),
        list_thread_ages_after=threads(after, _NO_THREAD_SIZES),
        checkpoint_keys=r(_CHECKPOINT_KEYS),
        delete_threads=r(_DELETE_THREADS),
        delete_runs=r(_DELETE_RUNS),
        prune=r(_PRUNE),
        trim=r(_TRIM),
        copy_thread=r(_COPY_THREAD),
        get_page=r(_GET_PAGE),
        list_page=r(_LIST_PAGE),
        put_checkpoint=r(_PUT_CHECKPOINT),
        put_child=r(_PUT_CHILD),
        claim=r(_CLAIM),
    )


def put_sql(schema: str, blob_rows: int, write_rows: int) -> bytes:
    """The put statement for this many blob and write rows (positional parameters).

    Parameters: the thread id (for `lock_thread`), the blobs (`BLOB_COLUMNS` per row, or
    one array per column past `MAX_VALUES_ROWS`), the writes (`WRITE_COLUMNS` likewise),
    then the checkpoint row (`_CHECKPOINT_COLUMNS`).
    """
    return _put_sql(schema, _shape(blob_rows), _shape(write_rows))


@functools.lru_cache(maxsize=256)
def _put_sql(schema: str, blob_rows: int, write_rows: int) -> bytes:
    return _guarded_put(schema, _LOCK_THREAD, blob_rows, write_rows)


def put_child_sql(schema: str, blob_rows: int) -> bytes:
    """`put_sql` without writes, storing nothing unless the parent is still stored; the
    statement returns one row, True when it stored the checkpoint.

    Parameters: (thread, namespace, parent id) for `lock_parent`, then as `put_sql`'s.
    """
    return _put_child_sql(schema, _shape(blob_rows))


@functools.lru_cache(maxsize=256)
def _put_child_sql(schema: str, blob_rows: int) -> bytes:
    return _guarded_put(schema, _LOCK_PARENT, blob_rows, 0)


def _guarded_put(schema: str, guard: str, blob_rows: int, write_rows: int) -> bytes:
    """A put statement whose inserts all wait for the `guard` CTE's answer (see `_GATE`)."""
    ident = sql.Identifier(schema)
    gate = sql.SQL(_GATE)
    ctes = [_compose(guard, ident)]
    if blob_rows:
        count = MAX_VALUES_ROWS + 1 if blob_rows < 0 else blob_rows
        rows = sql.SQL("SELECT * FROM ({}) AS r {}").format(
            _rows(_BLOB_ROW, _BLOB_ARRAYS, count), gate
        )
        ctes.append(sql.SQL("b AS ({})").format(_compose(_INSERT_BLOBS, ident, rows=rows)))
    if write_rows:
        count = MAX_VALUES_ROWS + 1 if write_rows < 0 else write_rows
        rows = sql.SQL("SELECT * FROM ({}) AS r {}").format(
            _rows(_WRITE_ROW, _WRITE_ARRAYS, count), gate
        )
        ctes.append(sql.SQL("w AS ({})").format(_compose(_INSERT_WRITES, ident, rows=rows)))
    checkpoint = _compose(_INSERT_GATED, ident, row=sql.SQL(_CHECKPOINT_ROW), gate=gate)
    ctes.append(sql.SQL("c AS ({})").format(checkpoint))
    return sql.SQL("WITH {} SELECT ok FROM ok").format(sql.SQL(", ").join(ctes)).as_bytes(None)


def put_writes_sql(schema: str, write_rows: int) -> bytes:
    """The writes insert for this many rows (as `put_sql` lays out writes)."""
    return _put_writes_sql(schema, _shape(write_rows))


@functools.lru_cache(maxsize=256)
def _put_writes_sql(schema: str, write_rows: int) -> bytes:
    count = MAX_VALUES_ROWS + 1 if write_rows < 0 else write_rows
    return _render(_INSERT_WRITES, schema, rows=_rows(_WRITE_ROW, _WRITE_ARRAYS, count))


PAGE_CAPS = tuple(1 << k for k in range(17))
"""The constant caps a list page's statement may carry (`list_sql`), 1 to 65,536."""


def page_cap(limit: int) -> int | None:
    """The cap of a page of `limit` checkpoints: the least of `PAGE_CAPS` not below it."""
    cap = 1 << max(0, limit - 1).bit_length()
    return cap if cap <= PAGE_CAPS[-1] else None


@functools.lru_cache(maxsize=256)
def list_sql(schema: str, conditions: tuple[bool, ...], cap: int | None = None) -> bytes:
    """A list page's statement with the conditions flagged in `conditions` (see `_CONDITIONS`);
    with `cap` (one of `PAGE_CAPS`, at least the page's limit) the rows are first capped by
    that constant, then limited by the `limit` parameter.

    A prepared statement's generic plan cannot know a parameter's LIMIT and estimates it at a
    tenth of the rows: once the tables have statistics, a page smaller than that looked
    cheaper with custom plans, and PostgreSQL planned the statement again at every call. A
    get (a page of one) paid 0.2 ms a call on a 100-step thread (430 -> 620-680 µs, as with
    `plan_cache_mode=force_custom_plan`), a `list(limit=3)` 0.25 ms; under a constant cap the
    generic plan's estimate stays within the cap, and it is kept.
    """
    chosen = [sql.SQL(c) for c, on in zip(_CONDITIONS, conditions, strict=True) if on]
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(chosen) if chosen else sql.SQL("")
    if cap is None:
        return _render(_LIST, schema, where=where)
    if cap not in PAGE_CAPS:
        raise ValueError(f"a page cap must be one of PAGE_CAPS, got {cap!r}")
    return _render(_LIST_CAPPED, schema, where=where, cap=sql.SQL(str(cap)))

"""SQL of the PostgreSQL backend: the migrations and one statement per operation.

Statements are templates whose only hole is the schema, filled in with
`psycopg.sql.Identifier` and rendered to bytes once per schema (`statements(schema)`).
Every value is a bound parameter. Key columns use the "C" collation, so rows sort by code
point, the order the saver's keyset cursors compare in, whatever the database's locale.

Each write is a single statement (data-modifying CTEs), so in autocommit it is one round trip
and one atomic transaction, and running it twice stores the same thing (safe to retry).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from psycopg import sql

__all__ = ["MIGRATIONS", "Statements", "list_sql", "statements"]

MIGRATIONS: tuple[tuple[str, ...], ...] = (
    # 1: the three tables. `metadata` is the exact JSON the saver wrote (NULs escaped);
    # `metadata_index` is a JSONB copy without what JSONB refuses, for containment filters.
    (
        """CREATE TABLE {s}.checkpoints (
        thread_id text COLLATE "C" NOT NULL,
        checkpoint_ns text COLLATE "C" NOT NULL,
        checkpoint_id text COLLATE "C" NOT NULL,
        parent_checkpoint_id text COLLATE "C",
        type text NOT NULL,
        checkpoint bytea NOT NULL,
        metadata bytea NOT NULL,
        metadata_index jsonb NOT NULL,
        channels text[] COLLATE "C" NOT NULL,
        versions text[] COLLATE "C" NOT NULL,
        run_id text COLLATE "C",
        created_at double precision NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
    )""",
        """CREATE TABLE {s}.blobs (
        thread_id text COLLATE "C" NOT NULL,
        checkpoint_ns text COLLATE "C" NOT NULL,
        channel text COLLATE "C" NOT NULL,
        version text COLLATE "C" NOT NULL,
        type text NOT NULL,
        data bytea NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
    )""",
        """CREATE TABLE {s}.writes (
        thread_id text COLLATE "C" NOT NULL,
        checkpoint_ns text COLLATE "C" NOT NULL,
        checkpoint_id text COLLATE "C" NOT NULL,
        task_id text COLLATE "C" NOT NULL,
        idx integer NOT NULL,
        channel text NOT NULL,
        type text NOT NULL,
        data bytea NOT NULL,
        task_path text NOT NULL,
        PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
    )""",
    ),
    # 2: delete_for_runs looks checkpoints up by run.
    ("CREATE INDEX checkpoints_run_id ON {s}.checkpoints (run_id) WHERE run_id IS NOT NULL",),
    # 3: metadata containment filters across threads.
    (
        """CREATE INDEX checkpoints_metadata ON {s}.checkpoints
        USING gin (metadata_index jsonb_path_ops)""",
    ),
)
"""Schema versions: the statements at position i bring the schema to version i + 1."""

_CHECKPOINT_COLUMNS = """thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
    checkpoint, metadata, metadata_index, channels, versions, run_id, created_at"""

_UPSERT_CHECKPOINT = """ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
    parent_checkpoint_id = EXCLUDED.parent_checkpoint_id, type = EXCLUDED.type,
    checkpoint = EXCLUDED.checkpoint, metadata = EXCLUDED.metadata,
    metadata_index = EXCLUDED.metadata_index, channels = EXCLUDED.channels,
    versions = EXCLUDED.versions, run_id = EXCLUDED.run_id, created_at = EXCLUDED.created_at"""

# A write with idx < 0 (errors, interrupts, resumes) replaces the stored one; others never do.
_UPSERT_WRITE = """ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
    channel = EXCLUDED.channel, type = EXCLUDED.type, data = EXCLUDED.data,
    task_path = EXCLUDED.task_path
    WHERE EXCLUDED.idx < 0"""

_INSERT_BLOBS = """INSERT INTO {s}.blobs (thread_id, checkpoint_ns, channel, version, type, data)
    SELECT * FROM unnest(%(b_thread)s::text[], %(b_ns)s::text[], %(b_channel)s::text[],
        %(b_version)s::text[], %(b_type)s::text[], %(b_data)b::bytea[])
    ON CONFLICT DO NOTHING"""

_INSERT_WRITES = """INSERT INTO {s}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
        channel, type, data, task_path)
    SELECT * FROM unnest(%(w_thread)s::text[], %(w_ns)s::text[], %(w_checkpoint)s::text[],
        %(w_task)s::text[], %(w_idx)s::int4[], %(w_channel)s::text[], %(w_type)s::text[],
        %(w_data)b::bytea[], %(w_path)s::text[])
    """

_INSERT_CHECKPOINT = """INSERT INTO {s}.checkpoints ({checkpoint_columns})
    VALUES (%(thread)s, %(ns)s, %(id)s, %(parent)s, %(type)s, %(checkpoint)b, %(metadata)b,
        %(index)s::jsonb, %(channels)s::text[], %(versions)s::text[], %(run_id)s,
        %(created_at)s)
    {upsert_checkpoint}"""

# Checkpoint, blobs (and writes, when migrating) in one statement: one round trip, atomic.
_PUT = "WITH blobs AS ({insert_blobs}) {insert_checkpoint}"
_PUT_WITH_WRITES = (
    "WITH blobs AS ({insert_blobs}), writes AS ({insert_writes} {upsert_write}) {insert_checkpoint}"
)
_PUT_WRITES = "{insert_writes} {upsert_write}"

_ROW_COLUMNS = """p.thread_id, p.checkpoint_ns, p.checkpoint_id, p.parent_checkpoint_id, p.type,
    p.checkpoint, p.metadata, p.channels, p.versions, p.run_id, p.created_at"""

# The blobs of each row's channel versions (aligned with `channels`, NULL where none was
# stored) and all its writes, fetched with the row: a page is one round trip.
_WITH_BLOBS_AND_WRITES = """SELECT {row_columns}, bl.types, bl.datas,
    wr.task_ids, wr.idxs, wr.channels, wr.types, wr.datas, wr.paths
    FROM page p
    LEFT JOIN LATERAL (
        SELECT array_agg(b.type ORDER BY v.n) AS types, array_agg(b.data ORDER BY v.n) AS datas
        FROM unnest(p.channels, p.versions) WITH ORDINALITY AS v(channel, version, n)
        LEFT JOIN {s}.blobs b ON b.thread_id = p.thread_id
            AND b.checkpoint_ns = p.checkpoint_ns AND b.channel = v.channel
            AND b.version = v.version
    ) bl ON true
    LEFT JOIN LATERAL (
        SELECT array_agg(w.task_id) AS task_ids, array_agg(w.idx) AS idxs,
            array_agg(w.channel) AS channels, array_agg(w.type) AS types,
            array_agg(w.data) AS datas, array_agg(w.task_path) AS paths
        FROM {s}.writes w
        WHERE w.thread_id = p.thread_id AND w.checkpoint_ns = p.checkpoint_ns
            AND w.checkpoint_id = p.checkpoint_id
    ) wr ON true"""

_PAGE_COLUMNS = """thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type,
    checkpoint, metadata, channels, versions, run_id, created_at"""

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
            c.checkpoint, c.metadata, c.channels, c.versions, c.run_id, c.created_at,
            chain.depth
        FROM chain JOIN {s}.checkpoints c
        ON c.thread_id = %(thread)s AND c.checkpoint_ns = %(ns)s
            AND c.checkpoint_id = chain.checkpoint_id
    )
    {with_blobs_and_writes}
    ORDER BY p.depth"""

_HEADS = """SELECT DISTINCT ON (checkpoint_ns) thread_id, checkpoint_ns, checkpoint_id,
        parent_checkpoint_id, type, checkpoint, metadata, channels, versions, run_id, created_at
    FROM {s}.checkpoints WHERE thread_id = %(thread)s
    ORDER BY checkpoint_ns, checkpoint_id DESC"""

_LIST_THREADS = """SELECT thread_id, count(*), max(checkpoint_id), max(created_at),
        sum(octet_length(checkpoint) + octet_length(metadata)),
        array_agg(DISTINCT checkpoint_ns)
    FROM {s}.checkpoints
    WHERE %(after)s::text IS NULL OR thread_id > %(after)s::text
    GROUP BY thread_id ORDER BY thread_id LIMIT %(limit)s"""

_DELETE_THREADS = """WITH c AS (DELETE FROM {s}.checkpoints WHERE thread_id = ANY(%(threads)s)),
        b AS (DELETE FROM {s}.blobs WHERE thread_id = ANY(%(threads)s))
    DELETE FROM {s}.writes WHERE thread_id = ANY(%(threads)s)"""

# A blob is live while a remaining checkpoint of its (thread, namespace) reads it. The CTEs
# see the table as it was before the deletes, so "remaining" is spelled as a condition.
_DELETE_RUNS = """WITH gone AS (
        DELETE FROM {s}.checkpoints WHERE run_id = ANY(%(runs)s)
        RETURNING thread_id, checkpoint_ns, checkpoint_id
    ), w AS (
        DELETE FROM {s}.writes w USING gone g WHERE w.thread_id = g.thread_id
            AND w.checkpoint_ns = g.checkpoint_ns AND w.checkpoint_id = g.checkpoint_id
    )
    DELETE FROM {s}.blobs b
    WHERE b.thread_id IN (SELECT thread_id FROM gone)
        AND NOT EXISTS (
            SELECT 1 FROM {s}.checkpoints c, unnest(c.channels, c.versions) AS v(channel, version)
            WHERE c.thread_id = b.thread_id AND c.checkpoint_ns = b.checkpoint_ns
                AND (c.run_id IS NULL OR NOT c.run_id = ANY(%(runs)s))
                AND v.channel = b.channel AND v.version = b.version)"""

_PRUNE = """WITH keep AS (
        SELECT * FROM unnest(%(keep_ns)s::text[], %(keep_id)s::text[]) AS k(ns, id)
    ), gone AS (
        DELETE FROM {s}.checkpoints c WHERE c.thread_id = %(thread)s AND NOT EXISTS (
            SELECT 1 FROM keep WHERE keep.ns = c.checkpoint_ns AND keep.id = c.checkpoint_id)
        RETURNING checkpoint_ns, checkpoint_id
    ), w AS (
        DELETE FROM {s}.writes w USING gone g WHERE w.thread_id = %(thread)s
            AND w.checkpoint_ns = g.checkpoint_ns AND w.checkpoint_id = g.checkpoint_id
    )
    DELETE FROM {s}.blobs b WHERE b.thread_id = %(thread)s AND NOT EXISTS (
        SELECT 1 FROM keep
        JOIN {s}.checkpoints c ON c.thread_id = %(thread)s AND c.checkpoint_ns = keep.ns
            AND c.checkpoint_id = keep.id
        CROSS JOIN unnest(c.channels, c.versions) AS v(channel, version)
        WHERE c.checkpoint_ns = b.checkpoint_ns AND v.channel = b.channel
            AND v.version = b.version)"""

# Copy as put_checkpoint would: checkpoints replaced, blobs kept, writes by the idx rule.
_COPY_THREAD = """WITH b AS (
        INSERT INTO {s}.blobs (thread_id, checkpoint_ns, channel, version, type, data)
        SELECT %(target)s, checkpoint_ns, channel, version, type, data
        FROM {s}.blobs WHERE thread_id = %(source)s
        ON CONFLICT DO NOTHING
    ), w AS (
        INSERT INTO {s}.writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
            channel, type, data, task_path)
        SELECT %(target)s, checkpoint_ns, checkpoint_id, task_id, idx, channel, type, data,
            task_path
        FROM {s}.writes WHERE thread_id = %(source)s
        {upsert_write}
    )
    INSERT INTO {s}.checkpoints ({checkpoint_columns})
    SELECT %(target)s, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,
        metadata, metadata_index, channels, versions, run_id, created_at
    FROM {s}.checkpoints WHERE thread_id = %(source)s
    {upsert_checkpoint}"""

_SCHEMA_EXISTS = "SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = %(schema)s"
_CREATE_SCHEMA = "CREATE SCHEMA IF NOT EXISTS {s}"
_CREATE_MIGRATIONS = """CREATE TABLE IF NOT EXISTS {s}.migrations (
    v integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now())"""
_APPLIED = "SELECT coalesce(max(v), 0) FROM {s}.migrations"
_RECORD_MIGRATION = "INSERT INTO {s}.migrations (v) VALUES (%(v)s)"


# Named pieces that templates include as {name}; each may itself use {s} and other pieces.
_FRAGMENTS = {
    "checkpoint_columns": _CHECKPOINT_COLUMNS,
    "upsert_checkpoint": _UPSERT_CHECKPOINT,
    "upsert_write": _UPSERT_WRITE,
    "insert_blobs": _INSERT_BLOBS,
    "insert_writes": _INSERT_WRITES,
    "insert_checkpoint": _INSERT_CHECKPOINT,
    "row_columns": _ROW_COLUMNS,
    "with_blobs_and_writes": _WITH_BLOBS_AND_WRITES,
    "page_columns": _PAGE_COLUMNS,
    "page_order": _PAGE_ORDER,
}


def _compose(template: str, schema: sql.Identifier, depth: int = 0) -> sql.Composed:
    """`template` with {s} the quoted schema and every {fragment} expanded (constants only)."""
    assert depth < 5, "fragments nest too deep"
    pieces = {
        name: _compose(text, schema, depth + 1)
        for name, text in _FRAGMENTS.items()
        if "{" + name + "}" in template
    }
    return sql.SQL(template).format(s=schema, **pieces)


def _render(template: str, schema: str) -> bytes:
    return _compose(template, sql.Identifier(schema)).as_bytes(None)


@dataclass(frozen=True, slots=True)
class Statements:
    """Every statement of the backend, rendered for one schema."""

    schema: str
    migrations: tuple[tuple[bytes, ...], ...]
    schema_exists: bytes
    create_schema: bytes
    create_migrations: bytes
    applied: bytes
    record_migration: bytes
    put: bytes
    put_with_writes: bytes
    put_writes: bytes
    history: bytes
    heads: bytes
    list_threads: bytes
    delete_threads: bytes
    delete_runs: bytes
    prune: bytes
    copy_thread: bytes


@functools.lru_cache(maxsize=64)
def statements(schema: str) -> Statements:
    """The statements for tables in `schema` (quoted as an identifier, never formatted)."""

    def r(template: str) -> bytes:
        return _render(template, schema)

    return Statements(
        schema=schema,
        migrations=tuple(tuple(r(stmt) for stmt in m) for m in MIGRATIONS),
        schema_exists=_SCHEMA_EXISTS.encode(),
        create_schema=r(_CREATE_SCHEMA),
        create_migrations=r(_CREATE_MIGRATIONS),
        applied=r(_APPLIED),
        record_migration=r(_RECORD_MIGRATION),
        put=r(_PUT),
        put_with_writes=r(_PUT_WITH_WRITES),
        put_writes=r(_PUT_WRITES),
        history=r(_HISTORY),
        heads=r(_HEADS),
        list_threads=r(_LIST_THREADS),
        delete_threads=r(_DELETE_THREADS),
        delete_runs=r(_DELETE_RUNS),
        prune=r(_PRUNE),
        copy_thread=r(_COPY_THREAD),
    )


_LIST = """WITH page AS MATERIALIZED (
        SELECT {page_columns} FROM {s}.checkpoints {where} {page_order} LIMIT %(limit)s)
    {with_blobs_and_writes}
    ORDER BY p.checkpoint_id DESC, p.thread_id DESC, p.checkpoint_ns DESC"""


@functools.lru_cache(maxsize=256)
def list_sql(schema: str, conditions: tuple[bool, ...]) -> bytes:
    """A list page's statement with the conditions flagged in `conditions` (see `_CONDITIONS`)."""
    chosen = [sql.SQL(c) for c, on in zip(_CONDITIONS, conditions, strict=True) if on]
    where = sql.SQL("WHERE ") + sql.SQL(" AND ").join(chosen) if chosen else sql.SQL("")
    ident = sql.Identifier(schema)
    pieces = {
        name: _compose(_FRAGMENTS[name], ident)
        for name in ("page_columns", "page_order", "with_blobs_and_writes")
    }
    return sql.SQL(_LIST).format(s=ident, where=where, **pieces).as_bytes(None)

"""The schema's versions: numbered migrations, recorded in `{schema}.migrations`.

Position in `MIGRATIONS` is the version. `setup()` runs the missing ones in one transaction
under an advisory lock, so processes starting together apply each exactly once. Never edit
a released migration: add one.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HAS_LZ4", "MIGRATIONS", "Migration"]


@dataclass(frozen=True, slots=True)
class Migration:
    """One schema version: statements run in order, in the setup transaction.

    Attributes:
        statements: The DDL, with `{s}` for the schema.
        only_if: A query that returns a row when the statements apply to this server; when
            it returns none the version is recorded without running them.
    """

    statements: tuple[str, ...]
    only_if: str | None = None


# The functions of migrations 4 and 5, created again by 7 (their `{page_rows}` changed).
HAS_LZ4 = """SELECT 1 FROM pg_catalog.pg_settings
    WHERE name = 'default_toast_compression' AND 'lz4' = ANY(enumvals)"""
"""A row when the server can compress TOASTed values with lz4 (PostgreSQL 14+ built with it)."""

_GET_PAGE = """CREATE OR REPLACE FUNCTION {s}.get_page(p_thread text, p_ns text, p_id text)
    RETURNS TABLE (kind int2, thread_id text, checkpoint_ns text, k1 text, k2 text,
        k3 text, k4 text, k5 text, num int4, d1 bytea, d2 bytea, j jsonb,
        f double precision)
    LANGUAGE plpgsql STABLE AS $get_page$
    #variable_conflict use_column
    BEGIN
        IF p_id IS NULL THEN
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread AND checkpoint_ns = p_ns
                {page_order} LIMIT 1
            )
            {page_rows};
        ELSE
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread AND checkpoint_ns = p_ns
                    AND checkpoint_id = p_id
            )
            {page_rows};
        END IF;
    END
    $get_page$"""

_LIST_PAGE = """CREATE OR REPLACE FUNCTION {s}.list_page(p_thread text, p_ns text,
        p_before text, p_c_id text, p_c_ns text, p_filter jsonb, p_limit int8)
    RETURNS TABLE (kind int2, thread_id text, checkpoint_ns text, k1 text, k2 text,
        k3 text, k4 text, k5 text, num int4, d1 bytea, d2 bytea, j jsonb,
        f double precision)
    LANGUAGE plpgsql STABLE AS $list_page$
    #variable_conflict use_column
    DECLARE
        u_id text COLLATE "C";
        u_ns text COLLATE "C";
    BEGIN
        IF p_c_id IS NOT NULL AND (p_before IS NULL
                OR (p_c_id COLLATE "C", p_c_ns COLLATE "C")
                    < (p_before COLLATE "C", '' COLLATE "C")) THEN
            u_id := p_c_id;
            u_ns := p_c_ns;
        ELSIF p_before IS NOT NULL THEN
            u_id := p_before;
            u_ns := '';
        END IF;
        IF p_ns IS NOT NULL AND u_id IS NULL THEN
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread AND checkpoint_ns = p_ns
                    AND (p_filter IS NULL OR metadata_index @> p_filter)
                {page_order} LIMIT p_limit
            )
            {page_rows};
        ELSIF p_ns IS NOT NULL THEN
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread AND checkpoint_ns = p_ns
                    AND checkpoint_id < u_id
                    AND (p_filter IS NULL OR metadata_index @> p_filter)
                {page_order} LIMIT p_limit
            )
            {page_rows};
        ELSIF u_id IS NULL THEN
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread
                    AND (p_filter IS NULL OR metadata_index @> p_filter)
                {page_order} LIMIT p_limit
            )
            {page_rows};
        ELSE
            RETURN QUERY WITH page AS MATERIALIZED (
                SELECT {page_columns}, NULL::int4 AS pos FROM {s}.checkpoints
                WHERE thread_id = p_thread
                    AND (checkpoint_id, checkpoint_ns) < (u_id, u_ns)
                    AND (p_filter IS NULL OR metadata_index @> p_filter)
                {page_order} LIMIT p_limit
            )
            {page_rows};
        END IF;
    END
    $list_page$"""

# The put function of migration 6, created again by 9 (which takes the thread's lock first).
_PUT_CHECKPOINT_HEAD = """CREATE OR REPLACE FUNCTION {s}.put_checkpoint(p_thread text, p_ns text,
                p_id text, p_parent text, p_type text, p_checkpoint bytea, p_metadata bytea,
                p_index jsonb, p_versions jsonb, p_run text, p_created double precision,
                c1 text, v1 text, t1 text, d1 bytea, c2 text, v2 text, t2 text, d2 bytea,
                c3 text, v3 text, t3 text, d3 bytea, c4 text, v4 text, t4 text, d4 bytea)
            RETURNS void LANGUAGE plpgsql VOLATILE AS $put_checkpoint$
"""
_PUT_CHECKPOINT_BODY = """                IF c1 IS NOT NULL THEN
                    INSERT INTO {s}.blobs (thread_id, checkpoint_ns, channel, version, type, data)
                    SELECT p_thread, p_ns, b.c, b.v, b.t, b.d
                    FROM (VALUES (1, c1, v1, t1, d1), (2, c2, v2, t2, d2), (3, c3, v3, t3, d3),
                        (4, c4, v4, t4, d4)) AS b(n, c, v, t, d)
                    WHERE b.c IS NOT NULL
                    ORDER BY b.n
                    ON CONFLICT DO NOTHING;
                END IF;
                INSERT INTO {s}.checkpoints ({checkpoint_columns})
                VALUES (p_thread, p_ns, p_id, p_parent, p_type, p_checkpoint, p_metadata,
                    p_index, p_versions, p_run, p_created)
                {upsert_checkpoint};
"""

MIGRATIONS: tuple[Migration, ...] = (
    # 1: the three tables. `metadata` is the exact JSON the saver wrote (NULs escaped);
    # `metadata_index` is a JSONB copy without what JSONB refuses, for containment filters.
    Migration(
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
            channel_versions jsonb NOT NULL,
            run_id text COLLATE "C",
            created_at double precision NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id))""",
            """CREATE TABLE {s}.blobs (
            thread_id text COLLATE "C" NOT NULL,
            checkpoint_ns text COLLATE "C" NOT NULL,
            channel text COLLATE "C" NOT NULL,
            version text COLLATE "C" NOT NULL,
            type text NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version))""",
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
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx))""",
        )
    ),
    # 2: delete_for_runs looks checkpoints up by run. (No index on metadata: a GIN index
    # cost 120 bytes per checkpoint; filters within a thread use the primary key.)
    Migration(
        ("CREATE INDEX checkpoints_run_id ON {s}.checkpoints (run_id) WHERE run_id IS NOT NULL",)
    ),
    # 3: LZ4 instead of pglz for large values, where the server has it (PostgreSQL 14+
    # built with lz4). A 200-step agent thread here: with 512-character messages, put
    # 1.29 -> 0.95 ms (median of the last 50 steps), stored size +4%; with 2048-character
    # messages 2.12 -> 1.16 MiB (pglz gives up on inputs it finds no match early in).
    Migration(
        (
            "ALTER TABLE {s}.blobs ALTER COLUMN data SET COMPRESSION lz4",
            "ALTER TABLE {s}.writes ALTER COLUMN data SET COMPRESSION lz4",
            "ALTER TABLE {s}.checkpoints ALTER COLUMN checkpoint SET COMPRESSION lz4",
        ),
        only_if=HAS_LZ4,
    ),
    # 4: get_tuple through a PL/pgSQL function, whose plans the server caches per connection.
    # The page statement takes 0.31 ms to plan and 0.13 ms to run (EXPLAIN ANALYZE, the
    # latest of the benchmarks' 100-step thread): without prepared statements -- the default,
    # and all that PgBouncer in transaction mode allows -- every get paid the planning.
    # `#variable_conflict use_column`: the result columns share names with table columns.
    Migration((_GET_PAGE,)),
    # 5: list pages of one thread through a function too (same reason as 4). Planning a
    # page statement cost ~0.5 ms without prepared statements, more than running it for a
    # short thread. The page's upper bound is the smaller of `before` and the previous
    # page's last row, as (checkpoint_id, checkpoint_ns): `before` is (before, ''), which
    # no row with checkpoint_id = before passes, as `checkpoint_id < before` says. Only the
    # bound is a static branch (as an `OR` the index scan could not start at it: each page
    # would read every row above it); the filter stays an `OR`, checked on the rows the scan
    # meets anyway.
    Migration((_LIST_PAGE,)),
    # 6: a put of up to four blobs (the agent graph stores one or two per step) through a
    # function too. Unprepared, planning the put statement cost ~0.1 ms of server time, a
    # fifth of a put. The blob rows come sorted by key, as the plain statement's do, so
    # concurrent puts lock rows in one order. Unused slots are NULL.
    Migration(
        (
            _PUT_CHECKPOINT_HEAD
            + """            BEGIN
"""
            + _PUT_CHECKPOINT_BODY
            + """            END
            $put_checkpoint$""",
        )
    ),
    # 7: get_page and list_page again, for their page rows' blob lookup: it read
    # `jsonb_each_text(channel_versions)`, which fails the whole statement when one row's
    # channel_versions is not an object (damaged by hand or a tool), so a get or a page of
    # any thread beside it failed with "cannot call jsonb_each_text on a non-object", naming
    # no checkpoint. Now such a row joins no blobs and the reader names it (DamagedDataError).
    Migration((_GET_PAGE, _LIST_PAGE)),
    # 8: a put that reads blobs its parent stored checks, atomically with the put, that the
    # parent is still stored (`Backend.put_child`); the deletes wait for such puts. In READ
    # COMMITTED neither a condition in the put nor a row lock on the parent would do: a
    # DELETE whose snapshot predates the child's commit never sees the child, which survives
    # its parent and the blobs it reads. So both sides take a transaction-level advisory lock
    # of the thread (key: the class 1668314112, 'cpt\0'; the thread's hash, cut to 1024
    # buckets so a delete of many threads takes at most 1024 locks of the server's shared
    # table), puts shared and deletes exclusive, and each looks at the rows in a statement
    # after the lock, which a VOLATILE function runs with a fresh snapshot: a delete sees
    # every child committed before it got the lock, and a put that waited finds the parent
    # gone. A hash collision only costs a wait. Deleters lock in key order, so two never
    # deadlock on each other.
    Migration(
        (
            """CREATE OR REPLACE FUNCTION {s}.lock_parent(p_thread text, p_ns text,
                p_parent text)
            RETURNS boolean LANGUAGE plpgsql VOLATILE AS $lock_parent$
            BEGIN
                PERFORM pg_advisory_xact_lock_shared(1668314112, hashtext(p_thread) & 1023);
                RETURN EXISTS (SELECT 1 FROM {s}.checkpoints WHERE thread_id = p_thread
                    AND checkpoint_ns = p_ns AND checkpoint_id = p_parent);
            END
            $lock_parent$""",
            """CREATE OR REPLACE FUNCTION {s}.put_child(p_thread text, p_ns text,
                p_id text, p_parent text, p_type text, p_checkpoint bytea, p_metadata bytea,
                p_index jsonb, p_versions jsonb, p_run text, p_created double precision,
                c1 text, v1 text, t1 text, d1 bytea, c2 text, v2 text, t2 text, d2 bytea,
                c3 text, v3 text, t3 text, d3 bytea, c4 text, v4 text, t4 text, d4 bytea)
            RETURNS boolean LANGUAGE plpgsql VOLATILE AS $put_child$
            BEGIN
                IF NOT {s}.lock_parent(p_thread, p_ns, p_parent) THEN
                    RETURN false;
                END IF;
                PERFORM {s}.put_checkpoint(p_thread, p_ns, p_id, p_parent, p_type,
                    p_checkpoint, p_metadata, p_index, p_versions, p_run, p_created,
                    c1, v1, t1, d1, c2, v2, t2, d2, c3, v3, t3, d3, c4, v4, t4, d4);
                RETURN true;
            END
            $put_child$""",
            """CREATE OR REPLACE FUNCTION {s}.lock_threads(p_threads text[])
            RETURNS void LANGUAGE plpgsql VOLATILE AS $lock_threads$
            DECLARE
                k int4;
            BEGIN
                FOR k IN SELECT DISTINCT hashtext(t) & 1023 FROM unnest(p_threads) AS t
                        ORDER BY 1 LOOP
                    PERFORM pg_advisory_xact_lock(1668314112, k);
                END LOOP;
            END
            $lock_threads$""",
            """CREATE OR REPLACE FUNCTION {s}.delete_threads(p_threads text[])
            RETURNS void LANGUAGE plpgsql VOLATILE AS $delete_threads$
            BEGIN
                PERFORM {s}.lock_threads(p_threads);
                DELETE FROM {s}.checkpoints WHERE thread_id = ANY(p_threads);
                DELETE FROM {s}.blobs WHERE thread_id = ANY(p_threads);
                DELETE FROM {s}.writes WHERE thread_id = ANY(p_threads);
            END
            $delete_threads$""",
            # The threads a run wrote are known only from its rows: each round locks the
            # threads found and deletes the run's rows of those threads alone, then looks
            # again, for a thread whose first checkpoint of the run came in meanwhile.
            """CREATE OR REPLACE FUNCTION {s}.delete_runs(p_runs text[])
            RETURNS void LANGUAGE plpgsql VOLATILE AS $delete_runs$
            DECLARE
                done text[] := '{{}}';
                more text[];
            BEGIN
                LOOP
                    SELECT array_agg(DISTINCT thread_id) INTO more FROM {s}.checkpoints
                    WHERE run_id = ANY(p_runs) AND NOT thread_id = ANY(done);
                    EXIT WHEN more IS NULL;
                    PERFORM {s}.lock_threads(more);
                    done := done || more;
                    WITH gone AS (
                        DELETE FROM {s}.checkpoints
                        WHERE run_id = ANY(p_runs) AND thread_id = ANY(more)
                        RETURNING thread_id, checkpoint_ns, checkpoint_id
                    ), w AS (
                        DELETE FROM {s}.writes w USING gone g WHERE w.thread_id = g.thread_id
                            AND w.checkpoint_ns = g.checkpoint_ns
                            AND w.checkpoint_id = g.checkpoint_id
                    ), live AS MATERIALIZED (
                        SELECT c.thread_id, c.checkpoint_ns, v.key AS channel, v.value AS version
                        FROM {s}.checkpoints c CROSS JOIN LATERAL jsonb_each(
                            CASE jsonb_typeof(c.channel_versions)
                            WHEN 'object' THEN c.channel_versions ELSE '{{}}' END) AS v
                        WHERE c.thread_id = ANY(more)
                            AND (c.run_id IS NULL OR NOT c.run_id = ANY(p_runs))
                    )
                    DELETE FROM {s}.blobs b
                    WHERE b.thread_id IN (SELECT thread_id FROM gone)
                        AND NOT EXISTS (
                            SELECT 1 FROM live l
                            WHERE l.thread_id = b.thread_id
                                AND l.checkpoint_ns = b.checkpoint_ns
                                AND l.channel = b.channel AND l.version = to_jsonb(b.version));
                END LOOP;
            END
            $delete_runs$""",
        )
    ),
    # 9: every put takes the thread's lock shared, not only a child's (8), and a prune takes
    # it exclusive. A whole put (a thread's first, one whose parent was gone, a migration's)
    # finds the blobs of unchanged versions stored and leaves them (ON CONFLICT DO NOTHING);
    # a delete or prune that had not seen the put's checkpoint then removed such a blob as
    # unread, and the checkpoint read back without it. A trim (keep_last) deleting the
    # parent of a second writer's child raced that put as a delete did (8).
    Migration(
        (
            """CREATE OR REPLACE FUNCTION {s}.lock_thread(p_thread text)
            RETURNS boolean LANGUAGE plpgsql VOLATILE AS $lock_thread$
            BEGIN
                PERFORM pg_advisory_xact_lock_shared(1668314112, hashtext(p_thread) & 1023);
                RETURN true;
            END
            $lock_thread$""",
            _PUT_CHECKPOINT_HEAD
            + """            BEGIN
                PERFORM {s}.lock_thread(p_thread);
"""
            + _PUT_CHECKPOINT_BODY
            + """            END
            $put_checkpoint$""",
            # `prune` of the backend, after the lock: the statement of migration 1's design
            # (see `_sql._PRUNE`), which every part of sees the rows as they were before it.
            """CREATE OR REPLACE FUNCTION {s}.prune_thread(p_thread text, p_keep_ns text[],
                p_keep_id text[], p_upto_ns text[], p_upto_id text[])
            RETURNS void LANGUAGE plpgsql VOLATILE AS $prune_thread$
            BEGIN
                PERFORM {s}.lock_threads(ARRAY[p_thread]);
                WITH keep AS (
                    SELECT * FROM unnest(p_keep_ns, p_keep_id) AS k(ns, id)
                ), gone AS (
                    DELETE FROM {s}.checkpoints c WHERE c.thread_id = p_thread AND NOT EXISTS (
                        SELECT 1 FROM keep
                        WHERE keep.ns = c.checkpoint_ns AND keep.id = c.checkpoint_id)
                    AND EXISTS (SELECT 1 FROM unnest(p_upto_ns, p_upto_id) AS u(ns, id)
                        WHERE u.ns = c.checkpoint_ns AND u.id COLLATE "C" >= c.checkpoint_id)
                    RETURNING checkpoint_ns, checkpoint_id
                ), w AS (
                    DELETE FROM {s}.writes w USING gone g WHERE w.thread_id = p_thread
                        AND w.checkpoint_ns = g.checkpoint_ns
                        AND w.checkpoint_id = g.checkpoint_id
                )
                DELETE FROM {s}.blobs b WHERE b.thread_id = p_thread AND NOT EXISTS (
                    SELECT 1 FROM {s}.checkpoints c
                    WHERE c.thread_id = p_thread AND c.checkpoint_ns = b.checkpoint_ns
                        AND c.channel_versions @> jsonb_build_object(b.channel, b.version)
                        AND NOT EXISTS (SELECT 1 FROM gone g
                            WHERE g.checkpoint_ns = c.checkpoint_ns
                                AND g.checkpoint_id = c.checkpoint_id));
            END
            $prune_thread$""",
        )
    ),
    # 10: leases (`Backend.claim`): the sweepers of a time to live in several processes
    # take turns by one row each, timed by the server's clock.
    Migration(
        (
            """CREATE TABLE IF NOT EXISTS {s}.leases (
                name text PRIMARY KEY,
                holder text NOT NULL,
                until timestamptz NOT NULL
            )""",
        )
    ),
)
"""Schema versions: the migration at position i brings the schema to version i + 1."""

"""The SQLite schema: numbered migrations (list position = version) and their bookkeeping.

Tables (prefix `cp_`, so a file may also hold the official saver's `checkpoints`/`writes`):

- `cp_checkpoints`: one row per checkpoint, without channel values. `metadata` is JSON text
  (filters run on it with `json_extract`); `channel_versions` is JSON text, so a read joins
  the blobs a checkpoint needs through `json_each` in the same statement.
- `cp_blobs`: one row per (thread, namespace, channel, version), written only for the
  channels of a put's `new_versions`.
- `cp_writes`: pending writes per (thread, namespace, checkpoint, task, idx).
- `cp_put`: a view whose INSTEAD OF triggers route rows to the tables (a put in one
  statement, see `_sql.py`).
- `cp_put_wide`: a view taking a whole put of up to `WIDE_SLOTS` blobs as one row, which
  its trigger splits into the blob rows and the checkpoint row (see `_sql.py`).
  `cp_put_child_wide` does the same once it found the put's parent stored (v3).
- `cp_leases`: who holds each lease, until when (`Backend.claim`, v4).
- `cp_migrations`: the versions applied.

Rowid tables: measured against WITHOUT ROWID for `cp_checkpoints` (and `cp_blobs`) on the
benchmark's threads, rowid was faster to write (113 us vs 134 and 157 us per put), to read
(38 vs 40 and 63 us per latest checkpoint) and 10% smaller.

A put of the 10-step thread writes 8.9 WAL frames (pages), the official saver's 4.2 (one
table and its key): the blob key 2.1, the blob table with its overflow pages 1.7, the
checkpoint key 1.5, `cp_checkpoints_newest` 1.5, the checkpoint table 1.3, page 1 0.7 (WAL
page numbers mapped with `dbstat`). With `synchronous="full"` that made such a put 398 us
against the official's 339 us, one sync each (at 100 steps: 462 against 512 us). A WITHOUT
ROWID `cp_blobs` wrote 3.6 frames for the 3.8 of table and key, and more for the other
trees; a 1024-byte page halved the bytes written (28.0 -> 13.8 KiB a put) but took the put
only from 398 to 385 us.
"""

from __future__ import annotations

__all__ = [
    "CURRENT_VERSION",
    "HAS_MIGRATIONS",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "PARENT_GONE",
    "RECORD_VERSION",
    "WIDE_SLOTS",
]

WIDE_SLOTS = 4
"""Blobs one row of `cp_put_wide` carries: the agent graph's puts write 1 to 3.

Part of migration v2's view: a database keeps the view it was migrated with, so another
number needs a new migration that replaces the view, not an edit of this one."""

_CHECKPOINT_NAMES = (
    "thread_id, checkpoint_ns, checkpoint_id, parent_checkpoint_id, type, checkpoint,"
    " metadata, channel_versions, run_id, created_at"
)
_SLOTS = range(1, WIDE_SLOTS + 1)
_WIDE_NAMES = _CHECKPOINT_NAMES + "".join(f", c{i}, v{i}, t{i}, d{i}" for i in _SLOTS)
# Constant text: the slot numbers are the only thing joined in.
_WIDE_BLOBS = " UNION ALL ".join(
    f"SELECT NEW.thread_id, NEW.checkpoint_ns, NEW.c{i}, NEW.v{i}, NEW.t{i}, NEW.d{i}"
    f" WHERE NEW.c{i} IS NOT NULL"
    for i in _SLOTS
)

# The body of both wide views' triggers: the blobs, then the checkpoint (constant text).
_WIDE_PUT = (
    "            INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)\n"  # noqa: S608
    f"""            {_WIDE_BLOBS}
            ON CONFLICT DO NOTHING;
            INSERT INTO cp_checkpoints ({_CHECKPOINT_NAMES})
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.checkpoint_id,
                NEW.parent_checkpoint_id, NEW.type, NEW.checkpoint, NEW.metadata,
                NEW.channel_versions, NEW.run_id, NEW.created_at)
            ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
                parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,
                checkpoint = excluded.checkpoint, metadata = excluded.metadata,
                channel_versions = excluded.channel_versions, run_id = excluded.run_id;"""
)

PARENT_GONE = "checkpointers: the parent checkpoint is gone"
"""The message a put of migration v3's checks aborts with when its parent is not stored."""

MIGRATIONS: list[tuple[str, ...]] = [
    # v0: the storage model of ARCHITECTURE.md.
    (
        """CREATE TABLE cp_checkpoints (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            parent_checkpoint_id TEXT,
            type TEXT NOT NULL,
            checkpoint BLOB NOT NULL,
            metadata TEXT NOT NULL,
            channel_versions TEXT NOT NULL,
            run_id TEXT,
            created_at REAL NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id)
        )""",
        # list(thread) over every namespace, newest first, without sorting the thread.
        "CREATE INDEX cp_checkpoints_newest ON cp_checkpoints"
        " (thread_id, checkpoint_id, checkpoint_ns)",
        "CREATE INDEX cp_checkpoints_run ON cp_checkpoints (run_id) WHERE run_id IS NOT NULL",
        """CREATE TABLE cp_blobs (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            channel TEXT NOT NULL,
            version TEXT NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, channel, version)
        )""",
        """CREATE TABLE cp_writes (
            thread_id TEXT NOT NULL,
            checkpoint_ns TEXT NOT NULL,
            checkpoint_id TEXT NOT NULL,
            task_id TEXT NOT NULL,
            idx INTEGER NOT NULL,
            channel TEXT NOT NULL,
            type TEXT NOT NULL,
            data BLOB NOT NULL,
            task_path TEXT NOT NULL,
            PRIMARY KEY (thread_id, checkpoint_ns, checkpoint_id, task_id, idx)
        )""",
    ),
    # v1: a put in one statement (see PUT_INTO): rows inserted into this view are routed to
    # their table by INSTEAD OF triggers, all inside the one statement's transaction.
    (
        "CREATE VIEW cp_put (kind, thread_id, checkpoint_ns, k1, k2, k3, type, data, t1, t2, n)"
        " AS SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL WHERE 0",
        """CREATE TRIGGER cp_put_blob INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'b' BEGIN
            INSERT INTO cp_blobs (thread_id, checkpoint_ns, channel, version, type, data)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.type, NEW.data)
            ON CONFLICT DO NOTHING;
        END""",
        """CREATE TRIGGER cp_put_write INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'w' BEGIN
            INSERT INTO cp_writes (thread_id, checkpoint_ns, checkpoint_id, task_id, idx,
                channel, type, data, task_path)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.n, NEW.k3, NEW.type,
                NEW.data, NEW.t1)
            ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id, task_id, idx) DO UPDATE SET
                channel = excluded.channel, type = excluded.type, data = excluded.data,
                task_path = excluded.task_path WHERE excluded.idx < 0;
        END""",
        """CREATE TRIGGER cp_put_checkpoint INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'c'
        BEGIN
            INSERT INTO cp_checkpoints (thread_id, checkpoint_ns, checkpoint_id,
                parent_checkpoint_id, type, checkpoint, metadata, channel_versions, run_id,
                created_at)
            VALUES (NEW.thread_id, NEW.checkpoint_ns, NEW.k1, NEW.k2, NEW.type, NEW.data,
                NEW.t1, NEW.t2, NEW.k3, NEW.n)
            ON CONFLICT (thread_id, checkpoint_ns, checkpoint_id) DO UPDATE SET
                parent_checkpoint_id = excluded.parent_checkpoint_id, type = excluded.type,
                checkpoint = excluded.checkpoint, metadata = excluded.metadata,
                channel_versions = excluded.channel_versions, run_id = excluded.run_id;
        END""",
    ),
    # v2: a put of up to WIDE_SLOTS blobs as one row of a view (`_sql.PUT_WIDE`). A
    # multi-row INSERT into `cp_put` first copies its rows into a temporary table, then
    # runs a trigger per row; one row runs the trigger at once. A put of a 20 KB and a
    # 700 B blob took 80 us this way, 105 us through `cp_put` and 83 us as BEGIN, two
    # INSERTs and COMMIT (sqlite3, WAL, synchronous=NORMAL, medians of 1,000).
    (
        f"CREATE VIEW cp_put_wide ({_WIDE_NAMES}) AS SELECT "
        + ", ".join(["NULL"] * (10 + 4 * WIDE_SLOTS))
        + " WHERE 0",
        f"""CREATE TRIGGER cp_put_wide_row INSTEAD OF INSERT ON cp_put_wide BEGIN
{_WIDE_PUT}
        END""",
    ),
    # v3: puts that read blobs an ancestor stored (`Backend.put_child`) check, in their one
    # statement, that the parent is still stored: a whole-thread delete (or delete_for_runs)
    # between a graph's steps took the blobs of the channels the put leaves out. SQLite
    # holds the write lock for the whole statement, so nothing can delete the parent between
    # the check and the inserts. A `cp_put` row of kind 'p' (first of its statement) names the
    # parent; `cp_put_child_wide` is `cp_put_wide` with the check. A missing parent aborts
    # the statement with `PARENT_GONE`; the saver then puts the whole checkpoint.
    (
        f"""CREATE TRIGGER cp_put_parent INSTEAD OF INSERT ON cp_put WHEN NEW.kind = 'p' BEGIN
            SELECT RAISE(ABORT, '{PARENT_GONE}') WHERE NOT EXISTS (SELECT 1 FROM cp_checkpoints
                WHERE thread_id = NEW.thread_id AND checkpoint_ns = NEW.checkpoint_ns
                AND checkpoint_id = NEW.k1);
        END""",  # noqa: S608
        f"CREATE VIEW cp_put_child_wide ({_WIDE_NAMES}) AS SELECT "
        + ", ".join(["NULL"] * (10 + 4 * WIDE_SLOTS))
        + " WHERE 0",
        f"""CREATE TRIGGER cp_put_child_wide_row INSTEAD OF INSERT ON cp_put_child_wide BEGIN
            SELECT RAISE(ABORT, '{PARENT_GONE}') WHERE NOT EXISTS (SELECT 1 FROM cp_checkpoints
                WHERE thread_id = NEW.thread_id AND checkpoint_ns = NEW.checkpoint_ns
                AND checkpoint_id = NEW.parent_checkpoint_id);
{_WIDE_PUT}
        END""",  # noqa: S608
    ),
    # v4: leases (`Backend.claim`): the sweepers of a time to live in several processes
    # take turns by one row each; `until` is seconds since the epoch (`time.time()`, the
    # clock of the machine every process of one SQLite file runs on).
    (
        """CREATE TABLE cp_leases (
            name TEXT PRIMARY KEY,
            holder TEXT NOT NULL,
            until REAL NOT NULL
        )""",
    ),
]
"""Schema migrations: position in the list is the version recorded in `cp_migrations`."""

MIGRATIONS_TABLE = "CREATE TABLE IF NOT EXISTS cp_migrations (v INTEGER PRIMARY KEY)"
HAS_MIGRATIONS = "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'cp_migrations'"
CURRENT_VERSION = "SELECT max(v) FROM cp_migrations"
RECORD_VERSION = "INSERT INTO cp_migrations (v) VALUES (?)"

"""A full disk under the saver's tables: a `StorageFullError` that says how to make room.

The saver's tables are created in a tablespace on a 2 MB tmpfs, so the server's own disk
(its WAL, its catalogs) keeps room while the tables' fills up, and PostgreSQL answers
SQLSTATE 53100 ("could not extend file ...: No space left on device"). Before, that came
back as a bare `StorageUnavailableError`, as for a server that cannot be reached. Now: a
`StorageFullError` (a subclass of that) that says so and how to make room; the put that
failed left nothing, reads and deletes go on (the time-to-live sweep's too, without its
lease, whose first row finds no room), and once there is room puts work again.

Mounting needs root, as in CI; the test is skipped elsewhere, and when the server is not
one this run started (the tablespace directory must be on the server's machine).
"""

from __future__ import annotations

import logging
import os
import pwd
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from psycopg import sql

from checkpoint_base import StorageFullError, StorageUnavailableError
from checkpoint_postgres import PostgresSaver
from checkpoint_postgres._testing import drop_schema

from ..conformance.builders import checkpoint, cid, config, new_thread
from .conftest import own_postgres

_TABLESPACE = "checkpointers_full"


@pytest.fixture
def small_tablespace(
    pg_url: str, schema: str, admin: psycopg.Connection[Any]
) -> Iterator[Callable[[], None]]:
    """A 2 MB tmpfs mounted as a tablespace of the test server; removed after, with the
    test's `schema`, whose tables it holds. Yields what makes room on it (16 MB)."""
    if not own_postgres():
        pytest.skip("the server is not one this run started: its disk is elsewhere")
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    data = admin.execute("SELECT current_setting('data_directory')").fetchone()
    assert data is not None
    owner = os.stat(data[0]).st_uid
    where = tempfile.mkdtemp(prefix="checkpointers-full-")
    os.chmod(where, 0o755)
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", where], check=True)
    in_use = False  # the server has files there: unmounting then would crash it
    try:
        os.chown(where, owner, pwd.getpwuid(owner).pw_gid)
        admin.execute(
            sql.SQL("CREATE TABLESPACE {} LOCATION {}").format(
                sql.Identifier(_TABLESPACE), sql.Literal(where)
            )
        )
        in_use = True

        def grow() -> None:  # room on that disk again
            subprocess.run(["mount", "-o", "remount,size=16m", where], check=True)

        try:
            yield grow
        finally:
            drop_schema(pg_url, schema)
            admin.execute(sql.SQL("DROP TABLESPACE {}").format(sql.Identifier(_TABLESPACE)))
            admin.execute("CHECKPOINT")  # the server's writes of those files are done
            in_use = False
    finally:
        if not in_use:  # else left mounted: its files go with the test server's data
            subprocess.run(["umount", where], check=True)
            os.rmdir(where)


def _in(pg_url: str) -> str:
    """`pg_url` with the tables a session creates going into the small tablespace."""
    joiner = "&" if "?" in pg_url else "?"
    return f"{pg_url}{joiner}options=-c%20default_tablespace%3D{_TABLESPACE}"


def _rows(admin: psycopg.Connection[Any], schema: str) -> tuple[int, ...]:
    query = sql.SQL(
        "SELECT (SELECT count(*) FROM {s}.checkpoints), (SELECT count(*) FROM {s}.blobs),"
        " (SELECT count(*) FROM {s}.writes)"
    ).format(s=sql.Identifier(schema))
    row = admin.execute(query).fetchone()
    assert row is not None
    return tuple(row)


def _fill(saver: PostgresSaver, parent: Any) -> tuple[Any, StorageFullError]:
    """Put checkpoints of 30 kB that do not compress until the disk is full (2 MB: some 60
    of them); the config of the last one stored, and the error of the one refused."""
    for step in range(200):
        value = os.urandom(15_000).hex()
        try:
            parent = saver.put(
                parent, checkpoint({"v": value}, {"v": step + 2}), {"step": step}, {"v": step + 2}
            )
        except StorageFullError as exc:
            return parent, exc
    raise AssertionError("200 checkpoints of 30 kB fit in a tablespace of 2 MB")


def test_a_full_disk_refuses_a_put_whole(
    pg_url: str,
    schema: str,
    admin: psycopg.Connection[Any],
    small_tablespace: Callable[[], None],
    caplog: pytest.LogCaptureFixture,
) -> None:
    with PostgresSaver.from_conn_string(_in(pg_url), schema=schema) as saver:
        saver.setup()
        tid = new_thread()
        parent = saver.put(config(tid), checkpoint({"v": "start"}), {"step": -1}, {"v": 1})
        first = parent
        parent, refused = _fill(saver, parent)
        message = str(refused)
        assert isinstance(refused, StorageUnavailableError)  # as it was raised before
        assert message.startswith("PostgreSQL error 53100: could not extend file"), message
        assert "nothing of this call was stored" in message, message
        assert "checkpointers delete --idle" in message and "checkpointers compact" in message
        # The put that failed left nothing; the one before it reads back whole.
        rows = _rows(admin, schema)
        with pytest.raises(StorageFullError):
            saver.put_writes(parent, [("v", os.urandom(1_000_000).hex())], "task")
        assert _rows(admin, schema) == rows
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(parent)
        assert len(latest.checkpoint["channel_values"]["v"]) == 30_000
        assert rows[0] == len(list(saver.list(config(tid)))) > 2
        # Deleting works on a full disk: here the time-to-live sweep's. Its lease is the
        # first row of its table, which needs a page the disk has no room for: the sweep
        # goes on without it, and says the storage is full (not that setup is missing).
        time.sleep(0.3)
        with caplog.at_level(logging.WARNING, logger="checkpoint_base"):
            sweeper = saver.sweep_idle_threads(0.2, every=60)
            deadline = time.monotonic() + 10
            while sweeper.sweeps == 0 and time.monotonic() < deadline:
                time.sleep(0.02)
            sweeper.stop()
        assert sweeper.last_error is None and sweeper.deleted == 1, sweeper.last_error
        assert saver.get_tuple(config(tid)) is None
        warned = [r.getMessage() for r in caplog.records if "without taking turns" in r.message]
        assert warned and "the storage is full" in warned[0], warned
        assert "53100" in warned[0] and "setup()" not in warned[0], warned
        # VACUUM may fail on a full disk (it did here, extending the visibility map): room
        # on the disk first, as the message says.
        small_tablespace()
        saver.compact()
        again = saver.put(config(tid), checkpoint({"v": "again"}), {"step": -1}, {"v": 1})
        got = saver.get_tuple(config(tid))
        assert got is not None and cid(got.config) == cid(again) != cid(first)

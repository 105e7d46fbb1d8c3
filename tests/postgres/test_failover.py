"""A PostgreSQL failover under a running saver: writes go on, on the new primary.

After a switchover (Patroni, or Aurora promoting a reader), the old primary may stay up and
answer, read-only: its sessions refuse every write with SQLSTATE 25006, and a pool keeps
handing out connections to it until they reach their maximum lifetime. The saver closes a
pooled connection that refused a write as read-only and sends the write again on a new one,
which finds the new primary: here `target_session_attrs=read-write` over both hosts, as
libpq offers for it; elsewhere a DNS name that moved.

The pair is real: a primary and its streaming standby (`pg_basebackup -R`), started for
each test (a promotion cannot be undone). The old primary is fenced as a switchover tool
does, with `default_transaction_read_only`, once the standby has replayed everything.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from psycopg_pool import ConnectionPool

from checkpoint_base import StorageError, StorageUnavailableError, aconnect, connect
from checkpoint_base.testing._pg import LocalPostgres, LocalPostgresStandby
from checkpoint_postgres import PostgresSaver
from checkpoint_postgres._errors import FIRST_WAIT, answered
from tests.conformance.builders import checkpoint, cid, config, new_thread

pytestmark = pytest.mark.slow


class Pair:
    """A primary and its standby; `url` lists both, for the read-write one."""

    def __init__(self, primary: LocalPostgres, standby: LocalPostgresStandby) -> None:
        self.primary, self.standby = primary, standby

    @property
    def url(self) -> str:
        hosts = f"127.0.0.1:{self.primary.port},127.0.0.1:{self.standby.port}"
        return f"postgresql://postgres@{hosts}/postgres?target_session_attrs=read-write"

    def replayed(self) -> None:
        """Wait until the standby has replayed everything the primary wrote so far."""
        lsn = _one(self.primary.url, "SELECT pg_current_wal_lsn()")
        with psycopg.connect(self.standby.url, autocommit=True) as conn:
            _wait(lambda: _one(conn, "SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", str(lsn)))

    def switch_over(self) -> None:
        """Fence the primary (its sessions refuse writes from their next transaction), wait
        until the standby has replayed all it wrote, and promote the standby."""
        with psycopg.connect(self.primary.url, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET default_transaction_read_only = on")
            conn.execute("SELECT pg_reload_conf()")
        # A new session reads the new setting once the postmaster has signalled every
        # backend to reload; the saver's idle ones reload before their next statement.
        _wait(lambda: _one(self.primary.url, "SHOW default_transaction_read_only") == "on")
        self.replayed()
        assert _one(self.standby.url, "SELECT pg_promote(true, 30)") is True


def _one(where: str | psycopg.Connection[Any], query: str, *params: Any) -> Any:
    if isinstance(where, str):
        with psycopg.connect(where, autocommit=True) as conn:
            return _one(conn, query, *params)
    row = where.execute(query.encode(), params or None).fetchone()  # the tests' own queries
    assert row is not None
    return row[0]


def _wait(ready: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        assert time.monotonic() < deadline, "not reached in time"
        time.sleep(0.05)


@pytest.fixture
def pair() -> Iterator[Pair]:
    primary = LocalPostgres(durable=False)
    standby: LocalPostgresStandby | None = None
    try:
        primary.start()
        standby = LocalPostgresStandby(primary)
        standby.start()
        yield Pair(primary, standby)
    finally:
        if standby is not None:
            standby.stop()
        primary.stop()


def _count(url: str, thread_id: str) -> int:
    with connect(url) as saver:
        return len(list(saver.list(config(thread_id))))


def test_writes_after_a_switchover_reach_the_new_primary(pair: Pair) -> None:
    tid = new_thread()
    with connect(pair.url) as saver:
        pool = saver._executor._pool
        assert pool is not None
        for i in range(6):
            if i == 3:  # the next put meets the pool's connections to the fenced primary
                _hold(pool, 4)  # four of them
                pair.switch_over()
            last = saver.put(config(tid), checkpoint({"a": i}), {"step": i}, {"a": i + 1})
        latest = saver.get_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(last)
        assert _hold(pool, 4) == {pair.standby.port}
        if hasattr(pool, "drain"):  # psycopg_pool >= 3.3: the others went at the first refusal
            assert pool.get_stats().get("returns_bad") == 1  # one refused, not each of four
    # On the new primary, all six; the old one has only what it took before the switch.
    assert _count(pair.standby.url, tid) == 6
    assert _count(pair.primary.url, tid) == 3


async def test_async_writes_after_a_switchover_reach_the_new_primary(pair: Pair) -> None:
    tid = new_thread()
    async with aconnect(pair.url) as saver:
        for i in range(3):
            await saver.aput(config(tid), checkpoint({"a": i}), {"step": i}, {"a": i + 1})
        pair.switch_over()
        for i in range(3, 6):
            last = await saver.aput(config(tid), checkpoint({"a": i}), {"step": i}, {"a": i + 1})
        latest = await saver.aget_tuple(config(tid))
        assert latest is not None and cid(latest.config) == cid(last)
    assert _count(pair.standby.url, tid) == 6
    assert _count(pair.primary.url, tid) == 3


class Promotion:
    """The primary stopped (its process gone, as in a crash) and the standby promoted
    `after` seconds later, from a thread: the failover a process may start in."""

    def __init__(self, pair: Pair, after: float) -> None:
        self.tid = new_thread()
        with connect(pair.primary.url) as saver:  # the schema, and a checkpoint to keep
            saver.put(config(self.tid), checkpoint({"a": 0}), {}, {"a": 1})
        pair.replayed()
        assert pair.primary.proc is not None
        pair.primary.proc.stop()
        self.promoted: list[bool] = []
        self.started = time.monotonic()

        def promote() -> None:
            time.sleep(after)
            self.promoted.append(_one(pair.standby.url, "SELECT pg_promote(true, 30)"))

        self._thread = threading.Thread(target=promote, daemon=True)
        self._thread.start()

    def done(self) -> float:
        """Seconds from the primary's stop; the promotion must have happened."""
        self._thread.join(40)
        assert self.promoted == [True]
        return time.monotonic() - self.started


def test_a_saver_opened_before_the_promotion_waits_for_it(pair: Pair) -> None:
    """A process that opens its saver while the primary is down and the standby is not yet
    promoted finds only a read-only server over both hosts (target_session_attrs=read-write):
    the server answered, so the first call waits for the promotion, up to the pool's
    timeout, as a saver opened before would, instead of failing after `FIRST_WAIT` as it
    does when nothing answers. It failed so (StorageUnavailableError, 'session is read-only')
    before."""
    failover = Promotion(pair, after=FIRST_WAIT + 1.5)
    with connect(pair.url) as saver:
        saver.put(config(failover.tid), checkpoint({"a": 1}), {}, {"a": 2})
        assert len(list(saver.list(config(failover.tid)))) == 2  # the one from before too
    assert failover.done() > FIRST_WAIT


async def test_an_async_saver_opened_before_the_promotion_waits_for_it(pair: Pair) -> None:
    failover = Promotion(pair, after=FIRST_WAIT + 1.5)
    async with aconnect(pair.url) as saver:
        await saver.aput(config(failover.tid), checkpoint({"a": 1}), {}, {"a": 2})
        assert len([t async for t in saver.alist(config(failover.tid))]) == 2
    assert failover.done() > FIRST_WAIT


def test_a_saver_with_no_server_answering_still_fails_at_once(pair: Pair) -> None:
    """With neither host answering, the first call fails after `FIRST_WAIT`, not the pool's
    whole timeout."""
    pair.standby.stop()
    assert pair.primary.proc is not None
    pair.primary.proc.stop()
    started = time.monotonic()
    with pytest.raises(StorageError, match="Connection refused"), connect(pair.url) as saver:
        saver.get_tuple(config(new_thread()))
    assert time.monotonic() - started < FIRST_WAIT + 5


def test_a_read_only_server_is_still_an_error_and_leaves_the_pool(pair: Pair) -> None:
    """Pointed at a standby only, a write fails (after one new connection found the same)
    with the error that says so, and no connection that refused it goes back to the pool."""
    with connect(pair.primary.url) as saver:  # the schema, while the primary takes writes
        saver.put(config(new_thread()), checkpoint({"a": 0}), {}, {"a": 1})
    pair.replayed()
    pool = ConnectionPool(
        pair.standby.url, min_size=2, max_size=2, kwargs={"autocommit": True}, open=True
    )
    try:
        pool.wait()
        saver = PostgresSaver(pool)
        pids = _pids(pool)
        with pytest.raises(StorageError, match="takes no writes"):
            saver.put(config(new_thread()), checkpoint({"a": 0}), {}, {"a": 1})
        assert saver.get_tuple(config(str(uuid.uuid4()))) is None  # reads go on
        assert pids.isdisjoint(_pids(pool))  # the two that refused the write are gone
    finally:
        pool.close()


def _pids(pool: ConnectionPool[Any]) -> set[int]:
    """The server processes of both connections of a pool of two, taken together."""
    conns = [pool.getconn(), pool.getconn()]
    try:
        return {_one(conn, "SELECT pg_backend_pid()") for conn in conns}
    finally:
        for conn in conns:
            pool.putconn(conn)


def _hold(pool: ConnectionPool[Any], count: int) -> set[int]:
    """Take `count` connections of the pool at once (it opens what it lacks), give them
    back, and return the ports of the servers they reached."""
    conns = [pool.getconn() for _ in range(count)]
    try:
        return {int(conn.info.port) for conn in conns}
    finally:
        for conn in conns:
            pool.putconn(conn)


@pytest.mark.parametrize(
    ("words", "waits"),
    [
        ('connection to server at "h", port 5433 failed: session is read-only', True),
        ('connection to server at "h", port 5433 failed: server is in hot standby mode', True),
        ("FATAL:  the database system is starting up", True),
        ("FATAL:  the database system is in recovery mode", True),
        ("FATAL:  the database system is not yet accepting connections", True),
        ("FATAL:  sorry, too many clients already", True),
        ("FATAL:  remaining connection slots are reserved for roles with ...", True),
        ('connection to server at "h", port 5432 failed: Connection refused', False),
        ('FATAL:  password authentication failed for user "app"', False),
        ('FATAL:  database "nope" does not exist', False),
    ],
)
def test_which_answers_the_first_call_waits_for(words: str, waits: bool) -> None:
    assert answered(StorageUnavailableError(f"cannot connect to PostgreSQL: {words}")) is waits
    assert not answered(StorageError(f"cannot connect to PostgreSQL: {words}"))  # a refusal

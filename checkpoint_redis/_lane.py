"""Script calls of a saver's own single-server client, on connections the executor keeps.

redis-py's `execute_command` takes a connection from the pool for every command and gives it
back after: a locked pool, a check that the socket is clean, a retry wrapper, event dispatch
and observability counters. With redis-py 8.1 that was about 65 µs of CPU per command for the
blocking client (45 µs asyncio), twice the cost of the round trip to a local server itself.
A lane keeps the connections it used in a list of its own and sends the next script call on
one of them directly, so a `get_tuple` or `put` pays the round trip and little else. A put
whose large blobs go beside its script in one MULTI/EXEC is sent the same way: redis-py's
transaction pipeline cost about 70 µs more CPU than a script call (a 100-step thread's puts,
224 against 151 µs of client CPU per put with every blob inline instead). On Python 3.11 and
later an asyncio lane also skips the timers of `send_packed_command` (a task per write, for
`asyncio.wait_for`) and of `read_response` (one per reply): it writes and reads under one
deadline of the client's `socket_timeout` (`AsyncLane._exchange`), which took an async
`get_tuple` of a 100-step thread from 477 to 425 µs and its puts from 387 to 335 µs
(medians of 30 interleaved blocks, local Redis 7).

Only a client the saver created gets a lane (`from_url`, `from_conn_string`): it carries no
hooks of the user's (observability, retry settings, events) that a lane would skip. Replies
come back raw, without redis-py's response callbacks: the executor sends scripts and
transactions this way, whose replies it reads raw anyway. Plain commands and batches still go
through redis-py, on the same pool; a lane keeps at most half of a pool limit set in the URL
(`max_connections`), so they always find a connection, and with a limit of one there is no
lane. A client passed in by the user sends everything through redis-py (but what its asyncio
cluster client cannot send to a slot being migrated, `_cluster_lane.py`); a cluster client the
saver created has a lane per master.

What keeps a kept connection safe to use:
- An error reply (`ResponseError`, NOSCRIPT among them) is read whole: the connection stays.
  A transaction reads every reply (MULTI's, each QUEUED, EXEC's) before it raises the first
  error among them.
- Any other failure leaves the connection in an unknown state: it is disconnected and handed
  back to the pool (which reconnects it when next used).
- A cancelled asyncio call whose request has left first reads its replies, for at most 2 s
  (`_exchange`): the server runs the request whatever the caller does, and a caller told it
  was cancelled must find its write done or not done, not done a moment later. The
  connection then stays. A second cancellation, or no reply in time, drops the connection
  instead. Below the direct path (Python 3.10, RESP3, health checks) the exchange runs as a
  task of its own for this, as redis-py's methods drop the connection when cancelled.
- Before a kept connection is used, a readable socket means the server closed it (its idle
  `timeout`, a restart) or sent something unasked: it is reconnected first, as the pool does.
- When the executor drops the kept connections (the server answered that it is no longer
  the master: `_errors.demoted`), those in use at that moment are dropped as they come back.
- After a fork the kept connections belong to the parent: the child drops them unused.
- A connection that redis-py marked for reconnection goes back to the pool, which handles it.
"""

from __future__ import annotations

import asyncio
import inspect
import os
from collections.abc import Callable, Sequence
from typing import Any

import redis
import redis.asyncio as aredis
from redis import exceptions as rx

_hiredis_pack: Callable[[tuple[Any, ...]], bytes] | None
try:
    from hiredis import pack_command as _hiredis_pack
except ImportError:  # the `redis` extra installs it; redis-py also works without
    _hiredis_pack = None

# asyncio.timeout: Python >= 3.11 (redis-py uses the async_timeout package before).
_timeout: Any = getattr(asyncio, "timeout", None)

__all__ = ["AsyncLane", "Lane", "async_lane_for", "keep_for", "lane_for"]

KEEP = 32
"""Most connections a lane keeps; more in use at once go back to the pool afterwards."""

_UNREADY = (rx.ConnectionError, rx.TimeoutError, OSError)


def lane_for(client: object, owned: bool) -> Lane | None:
    """A lane for a single-server client the saver created; None for any other client."""
    if owned and isinstance(client, redis.Redis) and _pooled(client):
        keep = keep_for(client.connection_pool)
        return Lane(client.connection_pool, keep) if keep else None
    return None


def async_lane_for(client: object, owned: bool) -> AsyncLane | None:
    """`lane_for` for asyncio clients."""
    if owned and isinstance(client, aredis.Redis) and _pooled(client):
        keep = keep_for(client.connection_pool)
        return AsyncLane(client.connection_pool, keep) if keep else None
    return None


def _pooled(client: redis.Redis | aredis.Redis) -> bool:
    """Not a `single_connection_client`: each command takes a connection from the pool."""
    return getattr(client, "connection", None) is None


def keep_for(pool: Any) -> int:
    """How many idle connections a lane may keep: `KEEP`, or half a pool limit set in the URL
    (`max_connections`), so that pipelines and plain commands still find connections; none
    (no lane) with a limit of one."""
    limit = getattr(pool, "max_connections", None)
    return KEEP if not isinstance(limit, int) else max(0, min(KEEP, limit // 2))


def _get_args(pool: Any) -> tuple[str, ...]:
    """What `pool.get_connection` needs: a command name before redis-py 5.3, nothing after
    (where passing one is deprecated)."""
    param = inspect.signature(pool.get_connection).parameters.get("command_name")
    return ("EVALSHA",) if param is not None and param.default is param.empty else ()


Packer = Callable[[Any, Sequence[Sequence[Any]]], list[bytes]]


def _packer(pool: Any) -> Packer:
    """Packs commands into one buffer of the Redis protocol.

    hiredis's `pack_command` packs a command's arguments in C: 2.7 µs for a put's 26
    against 11.5 µs through redis-py's `pack_command`, which encodes each in Python first
    (timeit). It takes text (as UTF-8), bytes, int and float, which is what plans send; it
    packs when the client also encodes text as UTF-8, strictly (the default), else redis-py
    does.
    """
    kwargs = getattr(pool, "connection_kwargs", {})
    utf8 = str(kwargs.get("encoding", "utf-8")).lower().replace("_", "-") in ("utf-8", "utf8")
    if _hiredis_pack is not None and utf8 and kwargs.get("encoding_errors", "strict") == "strict":
        pack = _hiredis_pack

        def packed(conn: Any, commands: Sequence[Sequence[Any]]) -> list[bytes]:
            return [b"".join([pack(tuple(args)) for args in commands])]

        return packed

    def by_redis_py(conn: Any, commands: Sequence[Sequence[Any]]) -> list[bytes]:
        return list(conn.pack_commands(commands))

    return by_redis_py


def _wrapped(commands: Sequence[Sequence[Any]]) -> list[Sequence[Any]]:
    return [("MULTI",), *commands, ("EXEC",)]


def _checked(errors: list[rx.ResponseError], replies: Any, count: int) -> list[Any]:
    """EXEC's replies, or the first error: of queuing (then EXEC aborted and nothing ran),
    else of a command that ran (the others ran too: a Redis transaction does not roll back)."""
    if errors:
        raise errors[0]
    if not isinstance(replies, list) or len(replies) != count:
        raise rx.ResponseError(f"EXEC answered {replies!r:.80} to a transaction of {count}")
    for reply in replies:
        if isinstance(reply, rx.ResponseError):
            raise reply
    return replies


def _direct(pool: Any) -> bool:
    """Whether an `AsyncLane` may drive its connections below `send_packed_command` and
    `read_response` (`AsyncLane._exchange`): on Python 3.11 or later (`asyncio.timeout`),
    with redis-py's connection internals as versions 5.2 to 8.2 have them, RESP2 (no push
    messages between replies) and no health-check interval (which those two methods keep).
    """
    kwargs = getattr(pool, "connection_kwargs", {})
    return (
        _timeout is not None
        and hasattr(aredis.connection.Connection, "_send_packed_command")
        and hasattr(aredis.connection.Connection, "_parser")
        and kwargs.get("protocol") in (None, 2, "2")
        and not kwargs.get("health_check_interval")
    )


_SETTLE = 2.0
"""Seconds a cancelled exchange goes on reading its replies (at most the socket timeout)."""


def _settling(deadline: Any, exc: asyncio.CancelledError) -> asyncio.CancelledError:
    """A lane exchange was cancelled after its request left (or was queued to leave): the
    server runs it whatever the caller does. The exchange reads its replies first, for at
    most `_SETTLE` seconds, so that a caller told it was cancelled finds its write done or
    not done, never done a moment later (a put landing after the caller read the thread, or
    after it deleted it), and the connection stays usable. A second cancellation stops it."""
    limit = asyncio.get_running_loop().time() + _SETTLE
    when = deadline.when()
    deadline.reschedule(limit if when is None else min(when, limit))
    return exc


def _address(conn: Any) -> str:
    return f"{getattr(conn, 'host', '?')}:{getattr(conn, 'port', '?')}"


def _marked(conn: Any) -> bool:
    should = getattr(conn, "should_reconnect", None)  # redis-py >= 6 only
    return bool(should()) if should is not None else False


class Lane:
    """Sends commands of a blocking client's pool on connections it keeps between calls.

    Args:
        pool: The `ConnectionPool` of a `redis.Redis` that only the saver uses.
        keep: Most idle connections kept.
    """

    def __init__(self, pool: Any, keep: int = KEEP) -> None:
        self._pool = pool
        self._keep = keep
        self._idle: list[Any] = []
        self._epoch = 0  # one more each time the kept connections are dropped (`close`)
        self._pid = os.getpid()
        self._get = _get_args(pool)
        self._pack = _packer(pool)

    @property
    def pool(self) -> Any:
        """The pool the lane takes connections from and gives them back to."""
        return self._pool

    def call(self, *args: Any) -> Any:
        """Send one command and return its reply, as `execute_command` would without callbacks."""
        epoch, conn = self._epoch, self._take()
        try:
            conn.send_packed_command(self._pack(conn, (args,)))
            reply = conn.read_response()
        except rx.ResponseError:
            self._give(conn, epoch)  # an error reply, read whole
            raise
        except BaseException:
            conn.disconnect()
            self._pool.release(conn)
            raise
        self._give(conn, epoch)
        return reply

    def transaction(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """Send the commands in one MULTI/EXEC and return EXEC's replies; the first error
        reply among them (a queuing error, EXECABORT, an error of a command run) is raised
        once every reply has been read."""
        epoch, conn = self._epoch, self._take()
        try:
            conn.send_packed_command(self._pack(conn, _wrapped(commands)))
            errors: list[rx.ResponseError] = []
            for _ in range(len(commands) + 1):  # +OK of MULTI, +QUEUED of each command
                try:
                    conn.read_response()
                except rx.ResponseError as exc:
                    errors.append(exc)
            try:
                replies = conn.read_response()
            except rx.ResponseError as exc:
                errors.append(exc)
                replies = []
        except BaseException:
            conn.disconnect()
            self._pool.release(conn)
            raise
        self._give(conn, epoch)
        return _checked(errors, replies, len(commands))

    def _take(self) -> Any:
        if self._pid != os.getpid():
            self._idle, self._pid = [], os.getpid()
        try:
            conn = self._idle.pop()
        except IndexError:
            return self._pool.get_connection(*self._get)
        try:
            stale = conn.can_read()
        except _UNREADY:
            stale = True
        if stale:
            conn.disconnect()  # send_command connects again
        return conn

    def _give(self, conn: Any, epoch: int) -> None:
        if epoch != self._epoch:  # taken before the kept ones were dropped: dropped too
            conn.disconnect()
            self._pool.release(conn)
        elif len(self._idle) < self._keep and not _marked(conn):
            self._idle.append(conn)
        else:
            self._pool.release(conn)

    def close(self, *, disconnect: bool = False) -> None:
        """Hand every kept connection back to the pool; closed first with `disconnect` (a
        node that left the cluster, a master demoted), as are those in use at the time
        when they come back."""
        if disconnect:
            self._epoch += 1
        idle, self._idle = self._idle, []
        if self._pid == os.getpid():
            for conn in idle:
                if disconnect:
                    conn.disconnect()
                self._pool.release(conn)


async def _public_exchange(conn: Any, packed: list[bytes], count: int) -> list[Any]:
    """Send `packed` and read `count` replies through redis-py's connection methods."""
    await conn.send_packed_command(packed)
    replies: list[Any] = []
    for _ in range(count):
        try:
            replies.append(await conn.read_response())
        except rx.ResponseError as exc:
            replies.append(exc)
    return replies


class AsyncLane:
    """`Lane` for a `redis.asyncio.Redis` that only the saver uses."""

    def __init__(self, pool: Any, keep: int = KEEP) -> None:
        self._pool = pool
        self._keep = keep
        self._idle: list[Any] = []
        self._epoch = 0  # `Lane._epoch`
        self._get = _get_args(pool)
        self._pack = _packer(pool)
        self._direct = _direct(pool)

    @property
    def pool(self) -> Any:
        """The pool the lane takes connections from and gives them back to."""
        return self._pool

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply, as `execute_command` would without callbacks."""
        (reply,) = await self._round_trip((args,), 1)
        if isinstance(reply, rx.ResponseError):  # read whole: the connection stayed
            raise reply
        return reply

    async def call_asking(self, *args: Any) -> Any:
        """`call` right after ASKING on the same connection: a command on a slot this node
        is importing, that the slot's owner redirected here with ASK."""
        replies = await self._round_trip((("ASKING",), args), 2)
        for reply in replies:
            if isinstance(reply, rx.ResponseError):
                raise reply
        return replies[1]

    async def transaction(self, commands: Sequence[Sequence[Any]]) -> list[Any]:
        """`Lane.transaction`."""
        # +OK of MULTI, +QUEUED of each command, EXEC's array
        replies = await self._round_trip(_wrapped(commands), len(commands) + 2)
        errors = [r for r in replies if isinstance(r, rx.ResponseError)]
        return _checked(errors, [] if errors else replies[-1], len(commands))

    async def _round_trip(self, commands: Sequence[Sequence[Any]], count: int) -> list[Any]:
        """Send `commands` on a kept connection and read `count` replies (`_exchange`); the
        connection is kept again, or dropped if anything but an error reply went wrong."""
        epoch, conn = self._epoch, await self._take()
        try:
            replies, cancelled = await self._exchange(conn, self._pack(conn, commands), count)
        except BaseException:
            await conn.disconnect(nowait=True)
            await self._pool.release(conn)
            raise
        await self._give(conn, epoch)
        if cancelled is not None:
            raise cancelled  # settled: the caller finds its request done, not done later
        return replies

    async def _exchange(
        self, conn: Any, packed: list[bytes], count: int
    ) -> tuple[list[Any], asyncio.CancelledError | None]:
        """Send `packed` and read `count` replies; an error reply is returned, not raised.
        Also returns the cancellation that came after the request left, if one did: the
        replies were read all the same (`_settling`) and the connection is whole."""
        if not self._direct:
            # redis-py's methods drop the connection when cancelled: the exchange runs as a
            # task of its own, which a cancellation of the caller waits for (`_settling`).
            exchange = asyncio.ensure_future(_public_exchange(conn, packed, count))
            try:
                return await asyncio.shield(exchange), None
            except asyncio.CancelledError as exc:
                if exchange.done() and exchange.cancelled():
                    raise
                stopped = exc
            try:
                done, _ = await asyncio.wait((exchange,), timeout=_SETTLE)
            except BaseException:  # cancelled again: give up
                exchange.cancel()
                raise
            if not done or exchange.cancelled() or exchange.exception() is not None:
                exchange.cancel()
                raise stopped from None  # not settled: the connection is dropped
            return exchange.result(), stopped
        # What send_packed_command and read_response do, under one deadline instead of one
        # per step: the first's `asyncio.wait_for` makes a task of every write (~15 µs) and
        # the second sets a timer per reply; a get is a transaction of four replies.
        if not conn.is_connected:
            await conn.connect()
        cancelled: asyncio.CancelledError | None = None
        try:
            async with _timeout(conn.socket_timeout) as deadline:
                try:
                    await conn._send_packed_command(packed)
                except asyncio.CancelledError as exc:  # in drain(): the bytes are queued
                    if deadline.expired():
                        raise
                    cancelled = _settling(deadline, exc)
                read = conn._parser.read_response
                got: list[Any] = []
                while len(got) < count:
                    try:
                        got.append(await read(disable_decoding=False))
                    except asyncio.CancelledError as exc:
                        if cancelled is not None or deadline.expired():
                            raise  # cancelled again, or out of time: the deadline's own
                        cancelled = _settling(deadline, exc)
        except rx.RedisError:
            raise
        except TimeoutError as exc:  # asyncio's, which is also an OSError
            if cancelled is not None:
                raise cancelled from None  # not settled in time: the connection is dropped
            raise rx.TimeoutError(f"Timeout talking to {_address(conn)}") from exc
        except OSError as exc:
            raise rx.ConnectionError(f"Error talking to {_address(conn)}: {exc}") from exc
        return got, cancelled

    async def _take(self) -> Any:
        try:
            conn = self._idle.pop()
        except IndexError:
            return await self._pool.get_connection(*self._get)
        probe = getattr(conn, "can_read", None) or conn.can_read_destructive  # before 8.0
        try:
            try:
                stale = conn.is_connected and await probe()
            except _UNREADY:
                stale = True
            if stale:
                await conn.disconnect()  # send_command connects again
        except BaseException:  # cancelled: the connection goes back, not lost to the pool
            await self._pool.release(conn)
            raise
        return conn

    async def _give(self, conn: Any, epoch: int) -> None:
        if epoch != self._epoch:  # `Lane._give`
            await conn.disconnect()
            await self._pool.release(conn)
        elif len(self._idle) < self._keep and not _marked(conn):
            self._idle.append(conn)
        else:
            await self._pool.release(conn)

    async def aclose(self, *, disconnect: bool = False) -> None:
        """`Lane.close`."""
        if disconnect:
            self._epoch += 1
        idle, self._idle = self._idle, []
        for conn in idle:
            if disconnect:
                await conn.disconnect()
            await self._pool.release(conn)

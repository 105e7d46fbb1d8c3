"""A saver's own single-server client sends its scripts on connections it keeps (`_lane.py`).

What must hold: the connection is kept and reused; one the server closed is reconnected
before it is used; an interrupted call never leaves its reply for the next caller; a forked
child never shares the parent's socket; concurrent callers each get their own answers.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import redis
from redis import exceptions as rx

from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._lane import _packer
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._urls import async_client, sync_client
from tests.conformance.builders import checkpoint, config

from .conftest import server_url


@pytest.fixture(params=["single", "valkey"])
def kind(request: pytest.FixtureRequest) -> str:
    """Lanes are for single servers; a cluster client keeps going through redis-py."""
    return str(request.param)


def _checkpoint(thread_id: str, value: str | None = None) -> tuple[Any, ...]:
    """A put's arguments: one channel, `owner`, naming the thread unless `value` is given."""
    owner = f"value of {thread_id}" if value is None else value
    return config(thread_id), checkpoint({"owner": owner}), {"step": 1}, {"owner": 1}


def _owner(tup: Any) -> str:
    assert tup is not None
    return str(tup.checkpoint["channel_values"]["owner"])


def _client_id(lane: Any) -> int:
    return int(lane.call("CLIENT", "ID"))


@pytest.fixture
def saver(url: str) -> Iterator[RedisSaver]:
    prefix = fresh_prefix()
    saver = RedisSaver.from_url(url, key_prefix=prefix, retry_timeout=0)
    try:
        saver.setup()
        for thread_id in ("a", "b"):
            saver.put(*_checkpoint(thread_id))
        yield saver
    finally:
        saver.close()
        drop_prefix(url, prefix)


@pytest.fixture(params=["direct", "public"])
async def asaver(url: str, request: pytest.FixtureRequest) -> AsyncIterator[AsyncRedisSaver]:
    """An async saver whose lane reads replies from redis-py's parser under one deadline
    (`direct`, where the Python and redis-py versions allow it) or through `read_response`."""
    prefix = fresh_prefix()
    try:
        async with AsyncRedisSaver.from_conn_string(url, key_prefix=prefix) as saver:
            lane = saver._aexecutor._lane
            assert lane is not None
            if request.param == "public":
                lane._direct = False
            elif not lane._direct:
                pytest.skip("the direct exchange needs Python >= 3.11")
            await saver.asetup()
            yield saver
    finally:
        drop_prefix(url, prefix)


def _lane(saver: Any) -> Any:
    lane = saver._executor._lane
    assert lane is not None
    return lane


def test_script_calls_go_on_one_kept_connection(saver: RedisSaver) -> None:
    lane = _lane(saver)
    assert _owner(saver.get_tuple(config("a"))) == "value of a"
    first = _client_id(lane)
    for _ in range(20):
        assert _owner(saver.get_tuple(config("b"))) == "value of b"
        saver.put(*_checkpoint("c"))
    assert _client_id(lane) == first
    assert len(lane._idle) == 1


def test_a_connection_the_server_closed_is_reconnected_before_it_is_used(
    saver: RedisSaver, raw: Any
) -> None:
    # retry_timeout=0: a request that failed on the dead socket would raise, not be resent
    lane = _lane(saver)
    saver.get_tuple(config("a"))
    killed = _client_id(lane)
    assert raw.execute_command("CLIENT", "KILL", "ID", killed) == 1
    assert _owner(saver.get_tuple(config("a"))) == "value of a"
    assert _client_id(lane) != killed


def test_a_missing_script_is_sent_again_on_the_same_connection(saver: RedisSaver, raw: Any) -> None:
    lane = _lane(saver)
    saver.get_tuple(config("a"))
    before = _client_id(lane)
    raw.script_flush()  # NOSCRIPT is an error reply, read whole: the connection stays good
    assert _owner(saver.get_tuple(config("b"))) == "value of b"
    assert _client_id(lane) == before


def test_an_interrupted_call_never_leaves_its_reply_to_the_next_caller(
    saver: RedisSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = _lane(saver)
    saver.get_tuple(config("a"))
    (conn,) = lane._idle

    def interrupted(*args: Any, **kwargs: Any) -> Any:
        raise KeyboardInterrupt  # after the request went out, before its reply was read

    monkeypatch.setattr(conn, "read_response", interrupted)
    with pytest.raises(KeyboardInterrupt):
        saver.get_tuple(config("a"))
    monkeypatch.undo()
    # The reply to "a" is still on that socket; whoever comes next must not read it.
    assert _owner(saver.get_tuple(config("b"))) == "value of b"
    assert _owner(saver.get_tuple(config("a"))) == "value of a"


def test_concurrent_callers_each_get_their_own_answers(saver: RedisSaver) -> None:
    names = [f"w{i}" for i in range(8)]
    for name in names:
        saver.put(*_checkpoint(name))
    wrong: list[str] = []
    barrier = threading.Barrier(len(names))

    def reader(name: str) -> None:
        barrier.wait()
        for _ in range(50):
            got = _owner(saver.get_tuple(config(name)))
            if got != f"value of {name}":
                wrong.append(f"{name} read {got!r}")

    threads = [threading.Thread(target=reader, args=(n,)) for n in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == []
    assert 1 <= len(_lane(saver)._idle) <= len(names)


def test_a_connection_in_use_when_the_kept_ones_are_dropped_is_not_kept(
    saver: RedisSaver, raw: Any
) -> None:
    """A demoted master (READONLY, NOREPLICAS) makes the executor drop the kept connections;
    a call on another thread was using one of them then: it must not come back to be kept,
    or a later call would reach the old master again."""
    lane = _lane(saver)
    saver.get_tuple(config("a"))
    (kept,) = lane._idle
    blocked = int(raw.info("clients")["blocked_clients"])
    done: list[Any] = []
    # BLPOP on a key no one writes waits 0.5 s on its own connection, the server free meanwhile
    worker = threading.Thread(
        target=lambda: done.append(lane.call("BLPOP", f"{fresh_prefix()}:nothing", "0.5"))
    )
    worker.start()
    while int(raw.info("clients")["blocked_clients"]) == blocked:
        assert worker.is_alive()
    lane.close(disconnect=True)  # what `_forget` does on a demoted master
    worker.join()
    assert done == [None]
    assert lane._idle == [] and kept._sock is None  # back to the pool, closed
    assert _owner(saver.get_tuple(config("a"))) == "value of a"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_forked_child_never_uses_the_parents_connection(saver: RedisSaver) -> None:
    lane = _lane(saver)
    saver.get_tuple(config("a"))
    parent = _client_id(lane)
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its connection and what it read, then leave at once
        try:
            got = _owner(saver.get_tuple(config("b")))
            os.write(write, f"{_client_id(lane)} {got}".encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        report = pipe.read()
    os.waitpid(pid, 0)
    child_id, got = report.split(" ", 1)
    assert got == "value of b"
    assert int(child_id) != parent
    assert _owner(saver.get_tuple(config("a"))) == "value of a"
    assert _client_id(lane) == parent  # the parent's connection is untouched


def test_only_a_client_the_saver_created_gets_lanes(url: str) -> None:
    cluster_url = server_url("cluster")
    for address in (url, cluster_url):
        client = sync_client(address)
        try:
            executor = RedisSaver(client)._executor  # yours: redis-py's own path
            assert executor._lane is None and executor._lanes is None
        finally:
            client.close()
    with RedisSaver.from_conn_string(url) as owned:
        assert owned._executor._lane is not None and owned._executor._lanes is None
    with RedisSaver.from_conn_string(cluster_url) as cluster:  # a lane per master
        assert cluster._executor._lane is None and cluster._executor._lanes is not None


async def test_an_async_connection_in_use_when_the_kept_ones_are_dropped_is_not_kept(
    asaver: AsyncRedisSaver, raw: Any
) -> None:
    lane = asaver._aexecutor._lane
    assert lane is not None
    await asaver.aput(*_checkpoint("a"))
    (kept,) = lane._idle
    blocked = int(raw.info("clients")["blocked_clients"])
    waiting = asyncio.ensure_future(lane.call("BLPOP", f"{fresh_prefix()}:nothing", "0.5"))
    while int(raw.info("clients")["blocked_clients"]) == blocked:
        assert not waiting.done()
        await asyncio.sleep(0.005)
    await lane.aclose(disconnect=True)  # what `_forget` does on a demoted master
    assert await waiting is None
    assert lane._idle == [] and not kept.is_connected
    assert _owner(await asaver.aget_tuple(config("a"))) == "value of a"


async def test_async_lane_keeps_its_connection_and_survives_a_kill(
    asaver: AsyncRedisSaver, raw: Any
) -> None:
    lane = asaver._aexecutor._lane
    assert lane is not None
    for thread_id in ("a", "b"):
        await asaver.aput(*_checkpoint(thread_id))
    first = int(await lane.call("CLIENT", "ID"))
    for _ in range(10):
        assert _owner(await asaver.aget_tuple(config("a"))) == "value of a"
    assert int(await lane.call("CLIENT", "ID")) == first
    assert len(lane._idle) == 1
    assert raw.execute_command("CLIENT", "KILL", "ID", first) == 1
    assert _owner(await asaver.aget_tuple(config("b"))) == "value of b"
    assert int(await lane.call("CLIENT", "ID")) != first


async def test_a_cancelled_async_call_never_leaves_its_reply_to_the_next_caller(
    asaver: AsyncRedisSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for thread_id in ("a", "b"):
        await asaver.aput(*_checkpoint(thread_id))
    lane = asaver._aexecutor._lane
    (conn,) = lane._idle
    stuck = asyncio.Event()

    async def waits(*args: Any, **kwargs: Any) -> Any:
        stuck.set()
        await asyncio.sleep(60)  # the reply sits unread until the caller gives up

    if lane._direct:  # the lane reads below read_response
        monkeypatch.setattr(type(conn._parser), "read_response", waits)
    else:
        monkeypatch.setattr(conn, "read_response", waits)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(asaver.aget_tuple(config("a")), 0.2)
    assert stuck.is_set()
    monkeypatch.undo()
    assert _owner(await asaver.aget_tuple(config("b"))) == "value of b"
    assert _owner(await asaver.aget_tuple(config("a"))) == "value of a"


# Busy for ARGV[1] turns of an empty loop on the server, then SET KEYS[1]: a request still
# running when its caller is cancelled (the server runs it whatever the client does). An
# empty loop, not TIME: Valkey's TIME stands still inside a script.
_SLOW_SET = "for _ = 1, tonumber(ARGV[1]) do end return redis.call('SET', KEYS[1], 'done')"


async def test_a_call_cancelled_after_its_request_left_settles_it_first(
    asaver: AsyncRedisSaver, raw: Any
) -> None:
    lane = asaver._aexecutor._lane
    await asaver.aput(*_checkpoint("a"))
    (conn,) = lane._idle
    key = f"{asaver.backend.layout.prefix.decode()}:slow"
    turns = 10_000_000
    while True:  # about 0.3 s of the server's time, whatever the machine's speed
        clock = asyncio.get_running_loop().time()
        raw.eval(_SLOW_SET, 1, key, turns)
        busy = asyncio.get_running_loop().time() - clock
        if busy >= 0.3:
            break
        turns *= 2
    raw.delete(key)
    # Twice as long (~0.6 s): far from the cancellation below, and within the 2 s a
    # cancelled call waits for its replies.
    task = asyncio.ensure_future(lane.call("EVAL", _SLOW_SET, 1, key, 2 * turns))
    await asyncio.sleep(0.05)  # sent; the server is busy with it
    started = asyncio.get_running_loop().time()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    waited = asyncio.get_running_loop().time() - started
    # The caller learns of its cancellation once the server has answered: the write is
    # done by then, not a moment later, and the connection is whole and kept.
    assert raw.get(key) == b"done"
    assert waited >= 0.2  # it waited for the server, not only for the cancellation
    assert lane._idle == [conn]  # its reply was read: the connection is whole
    assert _owner(await asaver.aget_tuple(config("a"))) == "value of a"
    raw.delete(key)


async def test_a_call_cancelled_before_its_request_left_sends_nothing(
    asaver: AsyncRedisSaver, raw: Any
) -> None:
    lane = asaver._aexecutor._lane
    key = f"{asaver.backend.layout.prefix.decode()}:never"
    task = asyncio.ensure_future(lane.call("EVAL", _SLOW_SET, 1, key, 0))
    task.cancel()  # before it ran at all
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0.05)
    assert raw.get(key) is None


async def test_only_an_async_client_the_saver_created_gets_lanes(url: str) -> None:
    cluster_url = server_url("cluster")
    for address in (url, cluster_url):
        client = async_client(address)
        try:
            async with AsyncRedisSaver(client) as saver:
                assert saver._aexecutor._lane is None and saver._aexecutor._lanes is None
        finally:
            await client.aclose()
    async with AsyncRedisSaver.from_conn_string(cluster_url) as cluster:
        assert cluster._aexecutor._lane is None and cluster._aexecutor._lanes is not None


@pytest.mark.parametrize("limit", [1, 2])
def test_a_pool_limit_in_the_url_leaves_connections_for_pipelines(url: str, limit: int) -> None:
    prefix = fresh_prefix()
    try:
        address = f"{url}?max_connections={limit}"
        with RedisSaver.from_conn_string(address, key_prefix=prefix) as saver:
            lane = saver._executor._lane
            assert (lane._keep if lane else 0) == limit // 2  # one: nothing to spare
            saver.setup()
            saver.put(*_checkpoint("small"))
            saver.put(*_checkpoint("big", "x" * 2_000_000))  # beside the script: a pipeline
            assert _owner(saver.get_tuple(config("big"))) == "x" * 2_000_000
            assert _owner(saver.get_tuple(config("small"))) == "value of small"
    finally:
        drop_prefix(url, prefix)


def _scratch(saver: Any, name: str) -> bytes:
    """A key under the saver's prefix (dropped with it) that no thread uses."""
    return bytes(saver.backend.layout.prefix) + b":scratch:" + name.encode()


def test_a_put_with_large_blobs_sends_its_transaction_on_the_lane(
    saver: RedisSaver, monkeypatch: pytest.MonkeyPatch
) -> None:
    lane = _lane(saver)
    first = _client_id(lane)

    def no_pipeline(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the transaction went through redis-py's pipeline")

    monkeypatch.setattr(saver._executor.client, "pipeline", no_pipeline)
    big = "y" * 100_000  # beside the script, by HSETNX, in one MULTI/EXEC
    saver.put(*_checkpoint("big", big))
    assert _owner(saver.get_tuple(config("big"))) == big
    saver._executor.client.script_flush()  # EXEC answers NOSCRIPT: again by the script's text
    saver.put(*_checkpoint("bigger", big + "z"))
    assert _owner(saver.get_tuple(config("bigger"))) == big + "z"
    assert _client_id(lane) == first  # the kept connection, every reply read


def test_an_error_in_a_lane_transaction_is_raised_after_every_reply_is_read(
    saver: RedisSaver,
) -> None:
    lane = _lane(saver)
    first = _client_id(lane)
    key, other = _scratch(saver, "tx"), _scratch(saver, "other")
    # Rejected while queuing (wrong arity): EXEC aborts, nothing of the transaction runs.
    with pytest.raises(rx.ResponseError, match="wrong number of arguments"):
        lane.transaction([("SET", other, b"1"), ("GET",)])
    assert lane.call("EXISTS", other) == 0
    # Failing when run (a hash command on a string): the commands before it ran.
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        lane.transaction([("SET", key, b"v"), ("HSETNX", key, b"f", b"x"), ("INCR", other)])
    assert lane.call("GET", key) == b"v"
    assert lane.call("GET", other) == b"1"
    assert lane.transaction([("GET", key), ("INCR", other)]) == [b"v", 2]
    assert _client_id(lane) == first


async def test_an_async_lane_sends_transactions_and_reads_every_reply(
    asaver: AsyncRedisSaver,
) -> None:
    lane = asaver._aexecutor._lane
    assert lane is not None
    big = "w" * 100_000
    await asaver.aput(*_checkpoint("big", big))
    first = int(await lane.call("CLIENT", "ID"))
    assert _owner(await asaver.aget_tuple(config("big"))) == big
    key = _scratch(asaver, "tx")
    with pytest.raises(rx.ResponseError, match="WRONGTYPE"):
        await lane.transaction([("SET", key, b"v"), ("LPUSH", key, b"x")])
    assert await lane.transaction([("GET", key), ("STRLEN", key)]) == [b"v", 1]
    with pytest.raises(rx.ResponseError, match="unknown command"):  # queued in vain: EXECABORT
        await lane.transaction([("SET", key, b"w"), ("NOSUCHCOMMAND", key)])
    with pytest.raises(rx.NoScriptError):  # an error reply of a plain call
        await lane.call("EVALSHA", "0" * 40, 0)
    assert await lane.call("GET", key) == b"v"
    assert int(await lane.call("CLIENT", "ID")) == first


async def test_an_async_lane_call_past_the_socket_timeout_drops_its_connection(
    asaver: AsyncRedisSaver,
) -> None:
    lane = asaver._aexecutor._lane
    assert lane is not None
    first = int(await lane.call("CLIENT", "ID"))
    (conn,) = lane._idle
    conn.socket_timeout = 0.2
    with pytest.raises(rx.TimeoutError):  # the server answers BLPOP after 2 s
        await lane.call("BLPOP", _scratch(asaver, "nothing"), 2)
    assert conn not in lane._idle  # its reply would come to the next caller
    second = int(await lane.call("CLIENT", "ID"))
    assert second != first
    assert await asaver.aget_tuple(config("nobody")) is None


def test_commands_pack_alike_with_and_without_hiredis(monkeypatch: pytest.MonkeyPatch) -> None:
    commands = [("MULTI",), ("EVALSHA", "ab" * 20, 1, b"k\x00{x}", 7, -2, 1.5, b""), ("EXEC",)]
    client = redis.Redis()  # never connected: only packs
    conn = client.connection_pool.make_connection()
    by_hiredis = _packer(client.connection_pool)(conn, commands)
    monkeypatch.setattr("checkpoint_redis._lane._hiredis_pack", None)
    by_redis_py = _packer(client.connection_pool)(conn, commands)
    assert b"".join(by_hiredis) == b"".join(by_redis_py)
    assert by_hiredis[0].startswith(b"*1\r\n$5\r\nMULTI\r\n*8\r\n$7\r\nEVALSHA\r\n")
    monkeypatch.undo()
    latin = redis.Redis(encoding="latin-1").connection_pool  # not UTF-8: redis-py packs
    conn = latin.make_connection()
    packed = b"".join(_packer(latin)(conn, [("SET", "é", b"x")]))
    assert packed == b"".join(conn.pack_commands([("SET", "é", b"x")]))
    # redis-py packs text with the client's encoding from 8.2 on; 8.1 (the last release for
    # Python 3.10) packed it through hiredis as UTF-8 whatever the encoding.
    if tuple(int(part) for part in redis.__version__.split(".")[:2]) >= (8, 2):
        assert packed == b"*3\r\n$3\r\nSET\r\n$1\r\n\xe9\r\n$1\r\nx\r\n"

"""Redis behind Sentinel: `redis+sentinel://` URLs, failovers and crashes, and what `setup()` says.

The set is real: a master, two replicas and three Sentinels, every data node with
`min-replicas-to-write 1` (`checkpoint_base/testing/_sentinel.py`), all redis-server or all
valkey-server (each test that uses the set runs on both), and at the end a set of Redis
processes that take TLS only. Each test that fails a set over or kills its master leaves it
whole again for the next one.
"""

from __future__ import annotations

import time
import uuid
import warnings
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, asynccontextmanager, contextmanager
from typing import Any

import pytest
import redis
from langgraph.checkpoint.base import BaseCheckpointSaver, empty_checkpoint
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.conformance.capabilities import (
    BASE_CAPABILITIES,
    EXTENDED_CAPABILITIES,
)
from redis.asyncio.sentinel import Sentinel as AsyncSentinel
from redis.sentinel import Sentinel

from checkpoint_base import (
    ConfigError,
    StorageError,
    StorageUnavailableError,
    aconnect,
    connect,
)
from checkpoint_base.testing import servers
from checkpoint_base.testing._redis import command
from checkpoint_base.testing._sentinel import SERVICE, LocalRedisSentinel
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._errors import RetryPolicy
from checkpoint_redis._sentinel import FailoverWarning
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._urls import _sentinel_parts, saver_options

from ..conformance.builders import checkpoint, config
from ..conformance.sync_as_async import SyncAsAsync
from .failover import STEPS, counting_graph, wait_replicated

OWNERS = ["from-url", "passed-in"]  # the saver's own client (lanes) or the user's (redis-py)


@pytest.fixture(params=["redis", "valkey"])
def flavor(request: pytest.FixtureRequest) -> str:
    """Redis 7 or Valkey 9, for the data nodes and the Sentinels alike."""
    return str(request.param)


@pytest.fixture
def sentinel(flavor: str) -> Iterator[LocalRedisSentinel]:
    """The test's Sentinel set, whole; whole again after the test (a killed node revived)."""
    found = servers.redis_sentinel(flavor=flavor)
    try:
        yield found
    finally:
        found.revive()


@pytest.fixture
def url(flavor: str) -> Iterator[str]:
    """The set's URL with a fresh key prefix, dropped after the test."""
    base, prefix = servers.redis_sentinel_url(flavor=flavor), fresh_prefix()
    try:
        yield f"{base}?key_prefix={prefix}"
    finally:
        servers.redis_sentinel(flavor=flavor)  # whole again, for the drop and later tests
        drop_prefix(base, prefix)


def _sentinels(set_: LocalRedisSentinel) -> list[tuple[str, int]]:
    return [("127.0.0.1", port) for port in set_.sentinel_ports]


@contextmanager
def sync_saver(url: str, owner: str, set_: LocalRedisSentinel) -> Iterator[RedisSaver]:
    """A RedisSaver on the set: its own client, or one the user made with redis-py."""
    if owner == "from-url":
        with RedisSaver.from_conn_string(url) as saver:
            yield saver
        return
    _, options = saver_options(url)
    client = Sentinel(_sentinels(set_), socket_timeout=2).master_for(SERVICE, socket_timeout=5)
    try:
        yield RedisSaver(client, **options)
    finally:
        client.close()


@asynccontextmanager
async def async_saver(
    url: str, owner: str, set_: LocalRedisSentinel
) -> AsyncIterator[AsyncRedisSaver]:
    """`sync_saver` for AsyncRedisSaver."""
    if owner == "from-url":
        async with AsyncRedisSaver.from_conn_string(url) as saver:
            yield saver
        return
    _, options = saver_options(url)
    manager = AsyncSentinel(_sentinels(set_), socket_timeout=2)
    client = manager.master_for(SERVICE, socket_timeout=5)
    try:
        yield AsyncRedisSaver(client, **options)
    finally:
        await client.aclose()


# -- URLs ------------------------------------------------------------------------------------


def test_url_names_sentinels_service_database_and_credentials() -> None:
    url = (
        "redis+sentinel://app:s%40cret@10.0.0.1:26379,[::1]:26380, sentinel-c:26381/orders/3"
        "?sentinel_password=watch&socket_timeout=4&max_connections=20"
    )
    sentinels, service, master, own = _sentinel_parts(url)
    assert sentinels == [("10.0.0.1", 26379), ("::1", 26380), ("sentinel-c", 26381)]
    assert service == "orders"
    assert master == {
        "username": "app",
        "password": "s@cret",
        "db": 3,
        "socket_timeout": 4.0,
        "max_connections": 20,
    }
    assert own == {"password": "watch"}
    # TLS options go to the master's connections and to the Sentinels' alike; any implies ssl
    *_, tls_master, tls_own = _sentinel_parts("redis+sentinel://h:1/svc?ssl_ca_certs=/ca.pem")
    assert tls_master == {"ssl": True, "ssl_ca_certs": "/ca.pem"} == tls_own
    plain, options = saver_options(f"{url}&key_prefix=app&ttl=60")
    assert options == {"key_prefix": "app", "ttl": 60.0}
    assert "key_prefix" not in plain and "sentinel_password=watch" in plain


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("redis+sentinel://h:26379", "names the service the Sentinels monitor"),
        ("redis+sentinel://h:26379/", "names the service the Sentinels monitor"),
        ("redis+sentinel://h:26379/svc/0/extra", "names the service the Sentinels monitor"),
        ("redis+sentinel://h:26379/svc/zero", "must be a number, got 'zero'"),
        ("redis+sentinel://h/svc", "host:port,host:port"),
        ("redis+sentinel://h:26379,/svc", "got '' in"),
        ("redis+sentinel://h:26379/svc?ssl=false&ssl_ca_certs=/ca.pem", "ssl=false with TLS"),
        ("redis+sentinel://h:26379/svc?tls=yes", "unknown option 'tls'"),
        ("redis+sentinel://h:26379/svc?colour=blue", "unknown option 'colour'"),
        ("redis+sentinel://h:26379/svc?socket_timeout=soon", "bad value for 'socket_timeout'"),
        ("redis+sentinel://h:26379/svc?ttl=soon", "bad value for 'ttl'"),
        ("redis+sentinel://app:topsecret@h:26379/svc/x", "'redis+sentinel://app:***@h:26379"),
    ],
)
def test_bad_url_is_refused_before_anything_is_sent(url: str, says: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RedisSaver.from_url(url)
    assert says in str(caught.value)
    assert "topsecret" not in str(caught.value)  # a password is never shown
    with pytest.raises(ConfigError) as caught_async:
        AsyncRedisSaver.from_url(url)
    assert says in str(caught_async.value)


# -- a graph through connect() --------------------------------------------------------------


def test_graph_runs_through_connect(url: str) -> None:
    with connect(url) as saver:
        assert isinstance(saver, RedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"graph-{uuid.uuid4()}"}}
        final = graph.invoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert graph.get_state(config).values == final
        history = list(graph.get_state_history(config))
        assert len(history) == STEPS + 2  # the input, START's step, then one per step
        assert [h.values.get("count") for h in history][:3] == [STEPS, STEPS - 1, STEPS - 2]


def test_valkeys_spelling_opens_the_set(url: str) -> None:
    """`valkey+sentinel://` names the same set as `redis+sentinel://` (Valkey's scheme)."""
    spelled = url.replace("redis+sentinel://", "valkey+sentinel://", 1)
    assert spelled != url
    with connect(spelled) as saver, RedisSaver.from_conn_string(url) as plain:
        stored = saver.put(config("spelled"), checkpoint({"a": 1}), {}, {"a": 1})
        found = plain.get_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"] == {"a": 1}


async def test_async_graph_runs_through_connect(url: str) -> None:
    async with aconnect(url) as saver:
        assert isinstance(saver, AsyncRedisSaver)
        graph = counting_graph().compile(checkpointer=saver)
        config = {"configurable": {"thread_id": f"graph-{uuid.uuid4()}"}}
        final = await graph.ainvoke({"count": 0, "log": []}, config)
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        assert (await graph.aget_state(config)).values == final


@pytest.mark.parametrize("api", ["sync", "async"])
async def test_official_conformance_suite_behind_sentinel(url: str, flavor: str, api: str) -> None:
    """LangGraph's `langgraph-checkpoint-conformance`, every base and extended capability."""
    async with AsyncExitStack() as stack:
        if api == "sync":
            sync = stack.enter_context(RedisSaver.from_conn_string(url))
            sync.setup()
            saver: BaseCheckpointSaver[str] = SyncAsAsync(sync)
        else:
            saver = await stack.enter_async_context(AsyncRedisSaver.from_conn_string(url))
            await saver.asetup()

        @checkpointer_test(name=f"{flavor}-sentinel-{api}")
        async def factory() -> AsyncIterator[BaseCheckpointSaver[str]]:
            yield saver

        report = await validate(factory)
    required = {cap.value for cap in BASE_CAPABILITIES | EXTENDED_CAPABILITIES}
    assert set(report.results) >= required
    problems = {
        name: result.failures
        for name, result in report.results.items()
        if name in required and result.passed is not True
    }
    assert not problems, f"official conformance failures: {problems}"
    assert sum(report.results[name].tests_passed for name in required) >= 70


# -- a failover: writes after it reach the new master ----------------------------------------


def _checkpoint(i: int) -> Any:
    checkpoint = empty_checkpoint()
    checkpoint["channel_values"] = {"x": i}
    checkpoint["channel_versions"] = {"x": i + 1}
    return checkpoint


def _role(port: int, tls: LocalRedisSentinel | None = None) -> str:
    reply = command(port, "ROLE", tls=None if tls is None else tls._context)
    assert isinstance(reply, list)
    return str(reply[0])


def _thread(thread_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}}


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
def test_writes_after_a_failover_reach_the_new_master(
    sentinel: LocalRedisSentinel, url: str, owner: str
) -> None:
    """The saver's connections still reach the old master, which takes no write any more
    (no replica left: NOREPLICAS) and which the Sentinels demote seconds later, dropping
    whatever it took: every put after the failover must land on the new master."""
    thread = _thread(f"failover-{uuid.uuid4()}")
    written: list[str] = []
    with sync_saver(url, owner, sentinel) as saver:
        config = thread
        for i in range(12):
            if i == 6:
                old, new = sentinel.failover()
                assert old != new
            config = saver.put(config, _checkpoint(i), {"step": i}, {"x": i + 1})
            written.append(config["configurable"]["checkpoint_id"])
            if i == 6:  # it went to the new master without waiting for the old one's demotion
                assert _role(old) == "master"
            latest = saver.get_tuple(thread)  # read back at once, from the master
            assert latest is not None and latest.checkpoint["channel_values"] == {"x": i}
        sentinel.wait_whole(60)  # the old master demoted: what it took is gone now
        listed = [t.config["configurable"]["checkpoint_id"] for t in saver.list(thread)]
        assert listed == written[::-1]
        lane = saver._executor._lane
        if owner == "from-url":
            assert lane is not None and {c.port for c in lane._idle} == {new}
        else:
            assert lane is None


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
async def test_async_writes_after_a_failover_reach_the_new_master(
    sentinel: LocalRedisSentinel, url: str, owner: str
) -> None:
    thread = _thread(f"failover-{uuid.uuid4()}")
    written: list[str] = []
    async with async_saver(url, owner, sentinel) as saver:
        config = thread
        for i in range(12):
            if i == 6:
                old, new = sentinel.failover()
                assert old != new
            config = await saver.aput(config, _checkpoint(i), {"step": i}, {"x": i + 1})
            written.append(config["configurable"]["checkpoint_id"])
            if i == 6:  # it went to the new master without waiting for the old one's demotion
                assert _role(old) == "master"
            latest = await saver.aget_tuple(thread)
            assert latest is not None and latest.checkpoint["channel_values"] == {"x": i}
        sentinel.wait_whole(60)
        listed = [t.config["configurable"]["checkpoint_id"] async for t in saver.alist(thread)]
        assert listed == written[::-1]
        lane = saver._aexecutor._lane
        if owner == "from-url":
            assert lane is not None and {c.port for c in lane._idle} == {new}
        else:
            assert lane is None


# -- a crash: the run rides out the Sentinels' failover ---------------------------------------


class _Killer:
    """Kills the master in the middle of a run, after recording what was stored."""

    def __init__(self, set_: LocalRedisSentinel, inspector: RedisSaver, thread_id: str) -> None:
        self.set = set_
        self.inspector = inspector
        self.config = {"configurable": {"thread_id": thread_id}}
        self.before: list[str] = []
        self.killed = 0

    def __call__(self) -> None:
        # LangGraph stores checkpoints in the background (durability "async"): on a loaded
        # machine none may have landed yet when the step that kills runs.
        deadline = time.monotonic() + 10
        while not self.before and time.monotonic() < deadline:
            self.before = [
                t.config["configurable"]["checkpoint_id"] for t in self.inspector.list(self.config)
            ]
            if not self.before:
                time.sleep(0.05)
        wait_replicated(self.set.master_port())
        self.killed = self.set.kill_master()

    def check(self, final: Any) -> None:
        assert self.before and self.killed, "the kill did not happen"
        assert self.set.master_port() != self.killed
        assert final == {"count": STEPS, "log": list(range(1, STEPS + 1))}
        listed = list(self.inspector.list(self.config))
        ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
        assert set(self.before) <= set(ids)
        assert len(ids) == STEPS + 2
        for tup in listed:  # every checkpoint reads back whole
            again = self.inspector.get_tuple(tup.config)
            assert again is not None and again.checkpoint == tup.checkpoint
        latest = self.inspector.get_tuple(self.config)
        assert latest is not None and latest.checkpoint["channel_values"]["count"] == STEPS


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
def test_run_survives_a_killed_master(sentinel: LocalRedisSentinel, url: str, owner: str) -> None:
    thread_id = f"killed-{uuid.uuid4()}"
    with RedisSaver.from_conn_string(url) as inspector:
        killer = _Killer(sentinel, inspector, thread_id)
        with sync_saver(url, owner, sentinel) as saver:
            graph = counting_graph(killer).compile(checkpointer=saver)
            final = graph.invoke(
                {"count": 0, "log": []}, {"configurable": {"thread_id": thread_id}}
            )
        killer.check(final)


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
async def test_async_run_survives_a_killed_master(
    sentinel: LocalRedisSentinel, url: str, owner: str
) -> None:
    thread_id = f"killed-{uuid.uuid4()}"
    with RedisSaver.from_conn_string(url) as inspector:
        killer = _Killer(sentinel, inspector, thread_id)
        async with async_saver(url, owner, sentinel) as saver:
            graph = counting_graph(killer).compile(checkpointer=saver)
            final = await graph.ainvoke(
                {"count": 0, "log": []}, {"configurable": {"thread_id": thread_id}}
            )
        killer.check(final)


@pytest.mark.slow
@pytest.mark.parametrize("api", ["sync", "async"])
async def test_a_saver_opened_during_a_failover_waits_for_it(
    sentinel: LocalRedisSentinel, url: str, api: str
) -> None:
    """A saver opened just after the master died, while the Sentinels still name it (a
    process started during a failover), opens once a replica took over. A Sentinel named the
    master, so the deployment has answered: the master that refuses connections is a failover
    under way, given the Sentinel retry budget, not the second of a server never reached
    (setup's first GET failed after that second before)."""
    wait_replicated(sentinel.master_port())
    killed_port = sentinel.kill_master()
    killed = time.monotonic()
    if api == "sync":
        with connect(url) as saver:
            opened = time.monotonic()
            stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            assert saver.get_tuple(stored) is not None
    else:
        async with aconnect(url) as asaver:
            opened = time.monotonic()
            stored = await asaver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            assert await asaver.aget_tuple(stored) is not None
    # The scenario happened: the Sentinels take 1 s (down-after-milliseconds) to see the
    # master gone, so setup waited past the short budget of a server never reached.
    assert opened - killed > RetryPolicy(timeout=0).first_timeout
    assert sentinel.master_port() != killed_port


# -- what goes wrong, said plainly ------------------------------------------------------------


def test_unknown_service_is_named_in_the_error(sentinel: LocalRedisSentinel) -> None:
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    started = time.monotonic()
    url = f"redis+sentinel://{hosts}/no-such-service"
    with (
        RedisSaver.from_conn_string(url) as saver,
        pytest.raises(StorageUnavailableError) as caught,
    ):
        saver.setup()
    assert time.monotonic() - started < 10  # the first contact's budget, not a failover's
    message = str(caught.value)
    assert "no-such-service" in message and "service name" in message


async def test_async_unknown_service_is_named_in_the_error(sentinel: LocalRedisSentinel) -> None:
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    url = f"redis+sentinel://{hosts}/no-such-service"
    async with AsyncRedisSaver.from_conn_string(url) as saver:
        with pytest.raises(StorageUnavailableError) as caught:
            await saver.asetup()
    assert "no-such-service" in str(caught.value) and "service name" in str(caught.value)


def _closed_port() -> int:
    """A loopback port nothing listens on."""
    from checkpoint_base.testing._procs import pick_port, port_open

    port = pick_port()
    assert not port_open(port)
    return port


def test_sentinels_that_do_not_answer(sentinel: LocalRedisSentinel) -> None:
    dead = [_closed_port(), _closed_port()]
    url = f"redis+sentinel://127.0.0.1:{dead[0]},127.0.0.1:{dead[1]}/{SERVICE}"
    with (
        RedisSaver.from_conn_string(url) as saver,
        pytest.raises(StorageUnavailableError) as caught,
    ):
        saver.setup()
    message = str(caught.value)
    assert all(str(port) in message for port in dead)  # each Sentinel tried is named
    # One Sentinel down of the list: the next one answers.
    live = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    prefix = fresh_prefix()
    try:
        with RedisSaver.from_conn_string(
            f"redis+sentinel://127.0.0.1:{dead[0]},{live}/{SERVICE}?key_prefix={prefix}"
        ) as saver:
            saver.setup()
            config = saver.put(_thread("t"), _checkpoint(1), {}, {"x": 2})
            assert saver.get_tuple(config) is not None
    finally:
        drop_prefix(sentinel.url, prefix)


def test_credentials_go_to_the_master(sentinel: LocalRedisSentinel) -> None:
    user, password = f"app-{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    data_ports = [node.port for node in sentinel.data]
    for port in data_ports:  # ACLs are not replicated: every node that may become master
        command(port, "ACL", "SETUSER", user, "on", f">{password}", "~*", "&*", "+@all")
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    prefix = fresh_prefix()
    try:
        good = f"redis+sentinel://{user}:{password}@{hosts}/{SERVICE}?key_prefix={prefix}"
        with RedisSaver.from_conn_string(good) as saver:
            saver.setup()
            config = saver.put(_thread("t"), _checkpoint(1), {}, {"x": 2})
            assert saver.get_tuple(config) is not None
            assert user in command(sentinel.master_port(), "CLIENT", "LIST")  # type: ignore[operator]
        bad = f"redis+sentinel://{user}:wrong@{hosts}/{SERVICE}?key_prefix={prefix}"
        with (
            RedisSaver.from_conn_string(bad) as saver,
            pytest.raises(StorageError, match="AuthenticationError"),
        ):
            saver.setup()
    finally:
        drop_prefix(sentinel.url, prefix)
        for port in data_ports:
            command(port, "ACL", "DELUSER", user)


def test_sentinels_that_ask_for_a_password(sentinel: LocalRedisSentinel) -> None:
    password = uuid.uuid4().hex
    hosts = ",".join(f"127.0.0.1:{port}" for port in sentinel.sentinel_ports)
    url = f"redis+sentinel://{hosts}/{SERVICE}"
    prefix = fresh_prefix()
    locked: list[int] = []
    try:
        for port in sentinel.sentinel_ports:
            command(port, "ACL", "SETUSER", "default", "resetpass", f">{password}")
            locked.append(port)
        for query in ("", "?sentinel_password=wrong"):
            with (
                RedisSaver.from_conn_string(url + query) as saver,
                pytest.raises(StorageError) as caught,
            ):
                saver.setup()
            message = str(caught.value)
            assert "wrong" not in message.replace("?sentinel_password=", "")
            assert "<redis." not in message  # each Sentinel named by its address, not a repr
            # redis-py 8 quotes each Sentinel's error in its MasterNotFoundError; before, the
            # class alone (as for a certificate, below), and the saver cannot tell.
            if "AuthenticationError" in message:
                assert not isinstance(caught.value, StorageUnavailableError)  # not retried
                assert "the Sentinels refused the credentials" in message
                assert "sentinel_password=" in message
            else:
                assert isinstance(caught.value, StorageUnavailableError)
        with RedisSaver.from_conn_string(
            f"{url}?sentinel_password={password}&key_prefix={prefix}"
        ) as saver:
            saver.setup()
            config = saver.put(_thread("t"), _checkpoint(1), {}, {"x": 2})
            assert saver.get_tuple(config) is not None
    finally:
        for port in locked:
            command(port, "ACL", "SETUSER", "default", "nopass", password=password)
        drop_prefix(sentinel.url, prefix)


@contextmanager
def _min_replicas(set_: LocalRedisSentinel, value: int) -> Iterator[None]:
    ports = [node.port for node in set_.data]
    for port in ports:
        command(port, "CONFIG", "SET", "min-replicas-to-write", value)
    try:
        yield
    finally:
        for port in ports:
            command(port, "CONFIG", "SET", "min-replicas-to-write", 1)


def test_setup_warns_when_a_failover_can_lose_writes(
    sentinel: LocalRedisSentinel, url: str
) -> None:
    with RedisSaver.from_conn_string(url) as saver:
        with warnings.catch_warnings():
            warnings.simplefilter("error", FailoverWarning)
            saver.setup()  # min-replicas-to-write 1: nothing to say
        with _min_replicas(sentinel, 0), pytest.warns(FailoverWarning) as caught:
            saver.setup()
    message = str(caught[0].message)
    assert f"Sentinel service {SERVICE!r}" in message and "min-replicas-to-write 1" in message
    # A single server takes writes without replicas (min-replicas-to-write 0): not behind
    # Sentinel, nothing is checked.
    with RedisSaver.from_conn_string(servers.redis_url()) as plain, warnings.catch_warnings():
        warnings.simplefilter("error", FailoverWarning)
        plain.setup()


async def test_async_setup_warns_when_a_failover_can_lose_writes(
    sentinel: LocalRedisSentinel, url: str
) -> None:
    async with AsyncRedisSaver.from_conn_string(url) as saver:
        with _min_replicas(sentinel, 0), pytest.warns(FailoverWarning):
            await saver.asetup()


def test_retry_budget_outlasts_a_default_failover(url: str) -> None:
    with RedisSaver.from_conn_string(url) as saver:
        # Sentinel's default down-after-milliseconds is 30 s: the retry waits longer
        assert saver._executor._retry.timeout > 30
        assert saver._executor._retry.first_timeout <= 1
    with RedisSaver.from_conn_string(url, retry_timeout=5) as saver:
        assert saver._executor._retry.timeout == 5


# -- TLS: every Sentinel and data node takes TLS only, and they replicate over it -------------


@pytest.fixture
def tls_sentinel() -> Iterator[LocalRedisSentinel]:
    found = servers.redis_sentinel(tls=True)
    try:
        yield found
    finally:
        found.revive()


def test_graph_and_a_failover_over_tls(tls_sentinel: LocalRedisSentinel) -> None:
    prefix = fresh_prefix()
    url = f"{tls_sentinel.url}&key_prefix={prefix}"
    try:
        with connect(url) as saver:
            thread_id = f"tls-{uuid.uuid4()}"
            graph = counting_graph().compile(checkpointer=saver)
            first = graph.invoke(
                {"count": 0, "log": []}, {"configurable": {"thread_id": thread_id}}
            )
            assert first["count"] == STEPS
            old, new = tls_sentinel.failover()
            thread = _thread(f"after-{uuid.uuid4()}")
            stored = saver.put(thread, _checkpoint(1), {}, {"x": 2})  # to the new master
            assert _role(old, tls_sentinel) == "master"  # not after the old one's demotion
            latest = saver.get_tuple(thread)
            assert latest is not None and latest.config == stored
            lane = saver._executor._lane
            assert lane is not None and {c.port for c in lane._idle} == {new}
            assert all(type(c).__name__ == "SentinelManagedSSLConnection" for c in lane._idle)
            tls_sentinel.wait_whole(60)
            again = graph.get_state({"configurable": {"thread_id": thread_id}})
            assert again.values == first
    finally:
        drop_prefix(tls_sentinel.url, prefix)


async def test_async_graph_over_tls(tls_sentinel: LocalRedisSentinel) -> None:
    prefix = fresh_prefix()
    try:
        async with aconnect(f"{tls_sentinel.url}&key_prefix={prefix}") as saver:
            graph = counting_graph().compile(checkpointer=saver)
            config = {"configurable": {"thread_id": f"tls-{uuid.uuid4()}"}}
            final = await graph.ainvoke({"count": 0, "log": []}, config)
            assert final["count"] == STEPS
            assert (await graph.aget_state(config)).values == final
    finally:
        drop_prefix(tls_sentinel.url, prefix)


def test_sentinels_whose_certificate_is_not_trusted(tls_sentinel: LocalRedisSentinel) -> None:
    untrusted = tls_sentinel.url.split("&ssl_ca_certs=")[0]  # ssl=true, the system's CAs only
    with (
        RedisSaver.from_conn_string(untrusted) as saver,
        pytest.raises(StorageError) as caught,
    ):
        saver.setup()
    # The saver can only tell from what redis-py's MasterNotFoundError says of each Sentinel:
    # before redis-py 8 it names the error's class alone ("network:ConnectionError").
    manager = Sentinel(_sentinels(tls_sentinel), sentinel_kwargs={"ssl": True})
    with pytest.raises(redis.ConnectionError) as plain:
        manager.discover_master(SERVICE)
    if "CERTIFICATE" not in str(plain.value):
        assert isinstance(caught.value, StorageUnavailableError)
        assert "no Sentinel named a master" in str(caught.value)
        return
    assert not isinstance(caught.value, StorageUnavailableError)  # not retried
    assert "ssl_ca_certs=" in str(caught.value)

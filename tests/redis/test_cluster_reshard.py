"""Move a thread's slot to another master while a LangGraph run writes to it (a live reshard).

The test drives the migration as `redis-cli --cluster reshard` does: CLUSTER SETSLOT IMPORTING
on the target, MIGRATING on the source, MIGRATE of the slot's keys a few at a time, then
SETSLOT NODE on every master. It starts at one step of the run and goes on in a thread; after
each batch of keys it waits until the saver has sent a request, so the saver meets the slot in
every state: keys all on the source, split between the two (TRYAGAIN, ASK), all on the target
while the source still owns the slot (ASK), then owned by the target (MOVED). The run must
finish, and every checkpoint and pending write must read back from the new owner exactly as a
run of the same graph on LangGraph's in-memory saver stored them.

The cluster is the session's: the fixture moves the slot back to its first master afterwards.
"""

from __future__ import annotations

import asyncio
import operator
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Annotated, Any, TypedDict

import pytest
import redis
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.crc import key_slot

from checkpoint_base.testing import servers
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from checkpoint_redis._urls import sync_client

from .conftest import OWNERS, async_cluster_saver, cluster_saver, inspected_cluster

STEPS = 12
MIGRATE_AT = 4  # the step that opens the migration
CLOSE_BY = 9  # the step that waits until it is over, if it is not yet
BATCH = 2  # keys per MIGRATE while the run goes on
BIG = 70_000  # above the saver's inline limit: such blobs go beside the script (MULTI/EXEC)
WAIT = 15.0  # bound of every wait of this file, in seconds


class State(TypedDict):
    count: int
    log: Annotated[list[int], operator.add]
    big: str


def _update(n: int) -> dict[str, Any]:
    update: dict[str, Any] = {"count": n, "log": [n]}
    if n % 2 == 0:  # every other step a large blob: a transaction, else a script alone
        update["big"] = f"{n}:" + "b" * BIG
    return update


def _graph(hook: Callable[[int], None], *, is_async: bool = False) -> StateGraph:
    """Counts to STEPS; `hook` runs at each step (async: in a thread, the loop goes on)."""

    def step(state: State) -> dict[str, Any]:
        n = state["count"] + 1
        hook(n)
        return _update(n)

    async def astep(state: State) -> dict[str, Any]:
        n = state["count"] + 1
        await asyncio.to_thread(hook, n)
        return _update(n)

    def route(state: State) -> str:
        return "step" if state["count"] < STEPS else END

    builder = StateGraph(State)
    builder.add_node("step", astep if is_async else step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", route)
    return builder


INPUT: dict[str, Any] = {"count": 0, "log": [], "big": ""}


def _cmd(port: int, *args: Any) -> Any:
    client = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, socket_connect_timeout=2)
    try:
        return client.execute_command(*args)
    finally:
        client.close()


class _Slot:
    """One slot of the test cluster and the admin commands that move it between masters."""

    def __init__(self, url: str, key: bytes) -> None:
        raw = sync_client(url)
        try:
            self.slot = int(raw.keyslot(key))
            self.first = int(raw.get_node_from_key(key).port)
            self.masters = sorted(int(node.port) for node in raw.get_primaries())
        finally:
            raw.close()
        self.ids = {port: _cmd(port, "CLUSTER", "MYID").decode() for port in self.masters}
        self.other = next(port for port in self.masters if port != self.first)
        self.moving: tuple[int, int] | None = None  # a migration opened and not closed

    def owner(self, port: int) -> str:
        """The id of the slot's master, as the node at `port` sees it."""
        for low, high, master, *_ in _cmd(port, "CLUSTER", "SLOTS"):
            if low <= self.slot <= high:
                return str(master[2].decode())
        raise AssertionError(f"slot {self.slot} is not covered in the view of {port}")

    def open(self, src: int, dst: int) -> None:
        self.moving = (src, dst)
        _cmd(dst, "CLUSTER", "SETSLOT", self.slot, "IMPORTING", self.ids[src])
        _cmd(src, "CLUSTER", "SETSLOT", self.slot, "MIGRATING", self.ids[dst])

    def migrate(self, src: int, dst: int, count: int) -> int:
        """MIGRATE up to `count` keys of the slot; how many there were."""
        keys = _cmd(src, "CLUSTER", "GETKEYSINSLOT", self.slot, count)
        if keys:
            _cmd(src, "MIGRATE", "127.0.0.1", dst, "", 0, 5000, "KEYS", *keys)
        return len(keys)

    def close(self, src: int, dst: int) -> None:
        """Give the slot to `dst` on every master (target first, then source), and wait
        until each of them names it."""
        for port in [dst, src, *(p for p in self.masters if p not in (src, dst))]:
            _cmd(port, "CLUSTER", "SETSLOT", self.slot, "NODE", self.ids[dst])
        deadline = time.monotonic() + WAIT
        while any(self.owner(port) != self.ids[dst] for port in self.masters):
            if time.monotonic() > deadline:
                raise TimeoutError(f"masters do not agree that {dst} owns slot {self.slot}")
            time.sleep(0.02)
        self.moving = None

    def restore(self) -> None:
        """Back to its first master: the rest of a migration left open, then the way back."""
        if self.moving is not None:
            self.move(*self.moving)
        if self.owner(self.first) != self.ids[self.first]:
            self.move(self.other, self.first)

    def move(self, src: int, dst: int) -> None:
        """The whole migration at once (or the rest of one begun)."""
        self.open(src, dst)
        while self.migrate(src, dst, 100):
            pass
        self.close(src, dst)


class _Attempts:
    """Counts the requests a saver sends (each attempt, failed or not) and the errors."""

    def __init__(self) -> None:
        self.count = 0
        self.errors: list[str] = []
        self._cond = threading.Condition()

    def spy(self, perform: Callable[..., Any], *, is_async: bool) -> Callable[..., Any]:
        def seen(exc: BaseException | None) -> None:
            with self._cond:
                self.count += 1
                if exc is not None:
                    self.errors.append(type(exc).__name__)
                self._cond.notify_all()

        def sync(request: Any) -> Any:
            try:
                result = perform(request)
            except BaseException as exc:
                seen(exc)
                raise
            seen(None)
            return result

        async def coro(request: Any) -> Any:
            try:
                result = await perform(request)
            except BaseException as exc:
                seen(exc)
                raise
            seen(None)
            return result

        return coro if is_async else sync

    def wait_beyond(self, count: int, timeout: float) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: self.count > count, timeout)


class _Migrator:
    """At step MIGRATE_AT of the run: opens the migration of the thread's slot and moves its
    keys, BATCH at a time, in a thread, each batch once the saver sent a request; step CLOSE_BY
    waits until the slot has its new owner."""

    def __init__(self, slot: _Slot, inspector: RedisSaver, thread_id: str) -> None:
        self.slot = slot
        self.inspector = inspector
        self.config = {"configurable": {"thread_id": thread_id}}
        self.attempts = _Attempts()
        self.step = 0  # the step the run is at
        self.before: list[str] = []  # checkpoints stored when the migration began
        self.opened_at = -1  # attempts.count then
        self.batches: list[bool] = []  # per batch moved: whether the saver sent a request after
        self.closed_at_step = -1
        self.closed_at = -1  # attempts.count when the target got the slot
        self.error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def __call__(self, n: int) -> None:
        self.step = n
        if n == CLOSE_BY and self._thread is not None:
            self._thread.join(WAIT)
        if n != MIGRATE_AT:
            return
        deadline = time.monotonic() + WAIT
        while not self.before and time.monotonic() < deadline:  # the run's puts may lag
            self.before = [
                t.config["configurable"]["checkpoint_id"] for t in self.inspector.list(self.config)
            ]
            time.sleep(0.01)
        self.opened_at = self.attempts.count
        # Like a master just added to the cluster, the target has none of the saver's scripts.
        _cmd(self.slot.other, "SCRIPT", "FLUSH")
        self.slot.open(self.slot.first, self.slot.other)
        self._thread = threading.Thread(target=self._run, name="reshard", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        src, dst = self.slot.first, self.slot.other
        try:
            while True:
                seen = self.attempts.count
                if not self.slot.migrate(src, dst, BATCH):
                    break
                self.batches.append(self.attempts.wait_beyond(seen, 2.0))  # the saver meets it
            self.slot.close(src, dst)
            self.closed_at_step, self.closed_at = self.step, self.attempts.count
        except BaseException as exc:
            self.error = exc

    def join(self) -> None:
        if self._thread is not None:
            self._thread.join(WAIT)
            assert not self._thread.is_alive(), "the migration thread hangs"

    @property
    def closed(self) -> bool:
        return self.closed_at >= 0

    def check_migrated(self, url: str, key: bytes) -> None:
        self.join()
        if self.error is not None:
            raise self.error
        assert self.before, "the migration did not start"
        assert self.closed, "the migration did not finish"
        # The saver sent a request in each state of the slot, and met its redirects.
        assert len(self.batches) >= 2 and all(self.batches), self.batches
        # (ClusterError: redis-py's "TTL exhausted", after TRYAGAIN or ASK 16 times in a row)
        met = {"TryAgainError", "AskError", "ClusterError"}
        assert met & set(self.attempts.errors), self.attempts.errors
        assert self.closed_at_step <= CLOSE_BY < STEPS  # steps ran after it, on the new owner
        raw = sync_client(url)  # a fresh client: the map it loads names the new owner
        try:
            assert int(raw.get_node_from_key(key).port) == self.slot.other
        finally:
            raw.close()
        assert _cmd(self.slot.first, "CLUSTER", "COUNTKEYSINSLOT", self.slot.slot) == 0


def _reference() -> list[Any]:
    """The same run on LangGraph's in-memory saver: its checkpoints, newest first."""
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": "reference"}}
    _graph(lambda n: None).compile(checkpointer=saver).invoke(INPUT, config)
    return list(saver.list(config))


def _shape(tup: Any) -> tuple[Any, ...]:
    """What a checkpoint tuple holds, without the ids that differ between two runs."""
    writes = sorted((channel, repr(value)) for _, channel, value in tup.pending_writes or [])
    meta = {k: v for k, v in tup.metadata.items() if k in ("source", "step")}
    return meta, tup.checkpoint["channel_values"], writes, tup.parent_config is None


def _check_thread(inspector: RedisSaver, thread_id: str, final: Any, before: list[str]) -> None:
    assert final["count"] == STEPS and final["log"] == list(range(1, STEPS + 1))
    assert final["big"] == f"{STEPS}:" + "b" * BIG
    config = {"configurable": {"thread_id": thread_id}}
    listed = list(inspector.list(config))
    ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
    assert set(before) <= set(ids) and len(ids) > len(before)
    assert [_shape(t) for t in listed] == [_shape(t) for t in _reference()]
    for tup in listed:  # each reads back whole on its own, pending writes included
        again = inspector.get_tuple(tup.config)
        assert again is not None and _shape(again) == _shape(tup)
        assert again.checkpoint == tup.checkpoint
    latest = inspector.get_tuple(config)
    assert latest is not None and latest.config == listed[0].config
    inspector.delete_thread(thread_id)
    assert inspector.get_tuple(config) is None and list(inspector.list(config)) == []


@pytest.fixture
def cluster() -> Iterator[tuple[str, str, RedisSaver]]:
    with inspected_cluster() as found:
        yield found


@pytest.fixture
def migrator(cluster: tuple[str, str, RedisSaver]) -> Iterator[Callable[[str], _Migrator]]:
    """Makes the migrator of a thread's slot; moves the slot back to its master afterwards."""
    url, _, inspector = cluster
    made: list[_Migrator] = []

    def make(thread_id: str) -> _Migrator:
        key = inspector.backend.layout.thread(thread_id).keys[0]
        made.append(_Migrator(_Slot(url, key), inspector, thread_id))
        return made[-1]

    try:
        yield make
    finally:
        for m in made:
            m.join()
            m.slot.restore()
        servers.wait_redis_cluster_ok()


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
def test_sync_run_survives_its_slot_moving_to_another_master(
    cluster: tuple[str, str, RedisSaver], migrator: Callable[[str], _Migrator], owner: str
) -> None:
    url, prefix, inspector = cluster
    thread_id = f"reshard-{uuid.uuid4()}"
    m = migrator(thread_id)
    with cluster_saver(url, prefix, owner) as saver:
        executor = saver._executor
        executor._perform = m.attempts.spy(executor._perform, is_async=False)  # type: ignore[method-assign]
        graph = _graph(m).compile(checkpointer=saver)
        final = graph.invoke(INPUT, {"configurable": {"thread_id": thread_id}})
        m.check_migrated(url, inspector.backend.layout.thread(thread_id).keys[0])
        listed = list(saver.list({"configurable": {"thread_id": thread_id}}))
        assert len(listed) == STEPS + 2  # the input, then one per step; on the new owner
    _check_thread(inspector, thread_id, final, m.before)


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
async def test_async_run_survives_its_slot_moving_to_another_master(
    cluster: tuple[str, str, RedisSaver], migrator: Callable[[str], _Migrator], owner: str
) -> None:
    url, prefix, inspector = cluster
    thread_id = f"reshard-{uuid.uuid4()}"
    m = migrator(thread_id)
    async with async_cluster_saver(url, prefix, owner) as saver:
        executor = saver._aexecutor
        executor._perform = m.attempts.spy(executor._perform, is_async=True)  # type: ignore[method-assign]
        graph = _graph(m, is_async=True).compile(checkpointer=saver)
        final = await graph.ainvoke(INPUT, {"configurable": {"thread_id": thread_id}})
        m.check_migrated(url, inspector.backend.layout.thread(thread_id).keys[0])
        listed = [t async for t in saver.alist({"configurable": {"thread_id": thread_id}})]
        assert len(listed) == STEPS + 2
        latest = await saver.aget_tuple({"configurable": {"thread_id": thread_id}})
        assert latest is not None and latest.checkpoint["channel_values"]["count"] == STEPS
    _check_thread(inspector, thread_id, final, m.before)


def _run(config: dict[str, Any]) -> Any:
    """`config` for a new run: with a run id in the metadata, the registry's `runs` is kept."""
    return {**config, "metadata": {"run_id": str(uuid.uuid4())}}


def _all_keys_moved(url: str, prefix: str, thread_id: str, m: _Migrator) -> None:
    """Opens the migration of the thread's slot and moves all of its keys, leaving it open:
    the source still owns the slot and answers ASK for them."""
    keys = RedisSaver.from_url(url, key_prefix=prefix, ttl=3600).backend.layout.thread(thread_id)
    slot = m.slot
    # Every key of the thread exists (the registry's `exp` too: a ttl; `runs`: a run id), so
    # the target serves a script on them after ASKING; one of them missing would be TRYAGAIN
    # until the end.
    assert _cmd(slot.first, "EXISTS", *keys.keys) == len(keys.keys)
    _cmd(slot.other, "SCRIPT", "FLUSH")
    slot.open(slot.first, slot.other)
    while slot.migrate(slot.first, slot.other, 100):
        pass
    assert _cmd(slot.first, "CLUSTER", "COUNTKEYSINSLOT", slot.slot) == 0
    assert _cmd(slot.other, "CLUSTER", "COUNTKEYSINSLOT", slot.slot) >= len(keys.keys)


def _in_another_slot(saver: RedisSaver | AsyncRedisSaver, thread_id: str) -> str:
    """A new thread id whose keys are not in `thread_id`'s slot."""
    layout = saver.backend.layout
    taken = key_slot(layout.thread(thread_id).keys[0])
    while True:
        other = f"other-{uuid.uuid4()}"
        if key_slot(layout.thread(other).keys[0]) != taken:
            return other


async def _two_idle_connections(client: AsyncRedisCluster, port: int) -> None:
    """Leave the client two idle connections to the node at `port`: redis-py's asyncio
    client sends an ASKING on the first and the command after it on the next, so with two
    it meets its bug (the node answers MOVED) every time, not only when it has more."""
    node = client.get_node(host="127.0.0.1", port=port)
    assert node is not None
    await asyncio.gather(node.execute_command("PING"), node.execute_command("PING"))
    assert len(node._free) >= 2


def _per_thread(listed: list[Any], *thread_ids: str) -> dict[str, int]:
    """How many of the checkpoints listed belong to each of `thread_ids`."""
    found = Counter(t.config["configurable"]["thread_id"] for t in listed)
    return {thread_id: found[thread_id] for thread_id in thread_ids}


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
def test_sync_thread_is_served_by_the_target_while_its_slot_is_still_migrating(
    cluster: tuple[str, str, RedisSaver], migrator: Callable[[str], _Migrator], owner: str
) -> None:
    url, prefix, _ = cluster
    thread_id = f"ask-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread_id}}
    m = migrator(thread_id)
    # Less time than the migration stays open: waiting it out is not an answer.
    with cluster_saver(url, prefix, owner, ttl=3600, retry_timeout=2) as saver:
        graph = _graph(lambda n: None).compile(checkpointer=saver)
        graph.invoke(INPUT, _run(config))
        other = _in_another_slot(saver, thread_id)
        graph.invoke(INPUT, _run({"configurable": {"thread_id": other}}))
        _all_keys_moved(url, prefix, thread_id, m)
        tup = saver.get_tuple(config)  # ASK, met by the lane or by redis-py
        assert tup is not None and tup.checkpoint["channel_values"]["count"] == STEPS
        assert len(list(saver.list(config))) == STEPS + 2
        final = graph.invoke({"count": 0, "log": []}, _run(config))  # writes, on the target
        assert final["count"] == STEPS and final["log"] == list(range(1, STEPS + 1)) * 2
        assert len(list(saver.list(config))) == 2 * (STEPS + 2)
        # Across threads: one request per registry bucket (a pipeline), one bucket migrating.
        for _ in range(2):  # the first finds nodes without the listing's scripts, not twice
            everywhere = _per_thread(list(saver.list(None)), thread_id, other)
            assert everywhere == {thread_id: 2 * (STEPS + 2), other: STEPS + 2}
        m.slot.close(m.slot.first, m.slot.other)
        tup = saver.get_tuple(config)  # MOVED now
        assert tup is not None and tup.checkpoint["channel_values"]["log"] == final["log"]


@pytest.mark.slow
@pytest.mark.parametrize("owner", OWNERS)
async def test_async_thread_is_served_by_the_target_while_its_slot_is_still_migrating(
    cluster: tuple[str, str, RedisSaver], migrator: Callable[[str], _Migrator], owner: str
) -> None:
    url, prefix, _ = cluster
    thread_id = f"ask-{uuid.uuid4()}"
    config = {"configurable": {"thread_id": thread_id}}
    m = migrator(thread_id)
    async with async_cluster_saver(url, prefix, owner, ttl=3600, retry_timeout=2) as saver:
        graph = _graph(lambda n: None).compile(checkpointer=saver)
        await graph.ainvoke(INPUT, _run(config))
        other = _in_another_slot(saver, thread_id)
        await graph.ainvoke(INPUT, _run({"configurable": {"thread_id": other}}))
        _all_keys_moved(url, prefix, thread_id, m)
        await _two_idle_connections(saver._aexecutor.client, m.slot.other)
        tup = await saver.aget_tuple(config)
        assert tup is not None and tup.checkpoint["channel_values"]["count"] == STEPS
        assert len([t async for t in saver.alist(config)]) == STEPS + 2
        final = await graph.ainvoke({"count": 0, "log": []}, _run(config))
        assert final["count"] == STEPS and final["log"] == list(range(1, STEPS + 1)) * 2
        assert len([t async for t in saver.alist(config)]) == 2 * (STEPS + 2)
        for _ in range(2):  # the first finds nodes without the listing's scripts, not twice
            everywhere = _per_thread([t async for t in saver.alist(None)], thread_id, other)
            assert everywhere == {thread_id: 2 * (STEPS + 2), other: STEPS + 2}
        m.slot.close(m.slot.first, m.slot.other)
        tup = await saver.aget_tuple(config)
        assert tup is not None and tup.checkpoint["channel_values"]["log"] == final["log"]

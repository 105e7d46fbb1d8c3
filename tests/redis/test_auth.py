"""Redis that asks for a password (`requirepass`): a single server and a cluster of our own,
each started for this module and stopped after it (the shared test servers take no password).

What must hold: the right password in the URL works; none, or a wrong one, fails the first
call as a StorageError that says the credentials were refused and where they go, never as
"unreachable or failing over" (a cluster client reports them inside a
RedisClusterException) and never retried; the password is not shown.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator

import pytest

from checkpoint_base import StorageError, StorageUnavailableError, aconnect, connect
from checkpoint_base.testing._cluster import LocalRedisCluster
from checkpoint_base.testing._redis import LocalRedis, command
from tests.conformance.builders import checkpoint, config

PASSWORD = f"pw-{uuid.uuid4().hex[:12]}"


@pytest.fixture(scope="module")
def hosts() -> Iterator[dict[str, str]]:
    """`host:port` of a single server and `host:port,...` of a cluster's masters, both asking
    for PASSWORD (the cluster's replicas give it to their masters: `masterauth`)."""
    single, cluster = LocalRedis(durable=False), LocalRedisCluster(durable=False)
    try:
        single.start()
        cluster.start()
        command(single.port, "CONFIG", "SET", "requirepass", PASSWORD)
        masters = cluster.master_ports()
        for node in cluster.nodes:
            command(node.port, "CONFIG", "SET", "masterauth", PASSWORD)
            command(node.port, "CONFIG", "SET", "requirepass", PASSWORD)
        yield {
            "single": f"redis://{{auth}}127.0.0.1:{single.port}/0",
            "cluster": "redis+cluster://{auth}" + ",".join(f"127.0.0.1:{p}" for p in masters),
        }
    finally:
        cluster.stop()
        single.stop()


def _open(url: str, flavor: str) -> None:
    """Open a saver on `url` (connect() runs setup(), a first call) and store a checkpoint."""
    if flavor == "sync":
        with connect(url) as saver:
            stored = saver.put(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            assert saver.get_tuple(stored) is not None
        return

    async def opened() -> None:
        async with aconnect(url) as saver:
            stored = await saver.aput(config("t"), checkpoint({"a": 1}), {}, {"a": 1})
            assert await saver.aget_tuple(stored) is not None

    asyncio.run(opened())


@pytest.mark.parametrize("flavor", ["sync", "async"])
@pytest.mark.parametrize("deployment", ["single", "cluster"])
def test_the_right_password_works(hosts: dict[str, str], deployment: str, flavor: str) -> None:
    _open(hosts[deployment].format(auth=f":{PASSWORD}@"), flavor)


@pytest.mark.parametrize("flavor", ["sync", "async"])
@pytest.mark.parametrize("deployment", ["single", "cluster"])
@pytest.mark.parametrize(
    ("auth", "says"),
    [("", "Authentication required"), (":wrong-one@", "invalid username-password pair")],
)
def test_refused_credentials_fail_at_once_and_say_where_they_go(
    hosts: dict[str, str], deployment: str, flavor: str, auth: str, says: str
) -> None:
    with pytest.raises(StorageError) as caught:
        _open(hosts[deployment].format(auth=auth), flavor)
    error = str(caught.value)
    assert not isinstance(caught.value, StorageUnavailableError)  # not retried
    assert "refused the credentials" in error and says in error
    assert "redis://:password@host" in error
    assert "unreachable" not in error and "wrong-one" not in error

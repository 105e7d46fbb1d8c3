"""Redis over a Unix socket (`unix:///path/redis.sock?db=0`, redis-py's spelling): a server
of this module's own that listens on a socket as well as on loopback TCP.

`RedisSaver.from_url` wrote a `unix:///...` URL back as `unix:/...` after taking its own
options out of the query, which redis-py then refused as a URL of no known scheme; and
`connect()` knew no `unix` scheme. What must hold: every way in opens a saver whose
connections are the socket's (the server lists the client at the socket's address), sync and
async; a socket that is not there fails as unreachable, naming it; the command line reads it.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from checkpoint_base import StorageUnavailableError, aconnect, connect
from checkpoint_base._cli import main
from checkpoint_base.testing._redis import LocalRedis
from checkpoint_redis import AsyncRedisSaver, RedisSaver
from tests.conformance.builders import checkpoint, config


@pytest.fixture(scope="module")
def socket_path() -> Iterator[Path]:
    server = LocalRedis(durable=False, socket=True)
    try:
        server.start()
        yield server.socket_path
    finally:
        server.stop()


def _url(path: Path, prefix: str) -> str:
    return f"unix://{path}?db=0&key_prefix={prefix}"


def _own_address(client: Any) -> str:
    """The address the server sees the saver's client at (`CLIENT INFO`)."""
    info = client.execute_command("CLIENT", "INFO")
    text = info.decode() if isinstance(info, bytes) else str(info)
    return next(f.split("=", 1)[1] for f in text.split() if f.startswith("addr="))


def test_connect_opens_a_saver_on_the_socket(socket_path: Path) -> None:
    prefix = f"sock-{uuid.uuid4().hex[:8]}"
    with connect(_url(socket_path, prefix)) as saver:
        assert isinstance(saver, RedisSaver)
        stored = saver.put(config("t"), checkpoint({"a": 1}), {"step": 1}, {"a": 1})
        found = saver.get_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"] == {"a": 1}
        assert [t.config for t in saver.list(config("t"))] == [found.config]
        assert _own_address(saver.client).startswith(str(socket_path))
    with RedisSaver.from_conn_string(_url(socket_path, prefix)) as again:
        assert again.get_tuple(stored) is not None
        again.delete_thread("t")
        assert again.get_tuple(config("t")) is None


async def test_aconnect_opens_a_saver_on_the_socket(socket_path: Path) -> None:
    prefix = f"sock-{uuid.uuid4().hex[:8]}"
    async with aconnect(_url(socket_path, prefix)) as saver:
        assert isinstance(saver, AsyncRedisSaver)
        stored = await saver.aput(config("t"), checkpoint({"a": 2}), {}, {"a": 1})
        found = await saver.aget_tuple(stored)
        assert found is not None and found.checkpoint["channel_values"] == {"a": 2}
        info = await saver.client.execute_command("CLIENT", "INFO")
        assert f"addr={socket_path}" in info.decode()
        await saver.adelete_thread("t")


async def test_a_missing_socket_is_unreachable(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.sock"
    with pytest.raises(StorageUnavailableError) as sync_error:
        connect(_url(missing, "x"))
    with pytest.raises(StorageUnavailableError) as async_error:
        await aconnect(_url(missing, "x"))
    for caught in (sync_error, async_error):
        assert str(missing) in str(caught.value)


def test_the_command_line_reads_it(
    socket_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    prefix = f"sock-{uuid.uuid4().hex[:8]}"
    source = f"sqlite:///{tmp_path}/cli.db"
    with connect(source) as saver:
        saver.put(config("cli-thread"), checkpoint({"a": 3}), {}, {"a": 1})
    target = _url(socket_path, prefix)
    assert main(["migrate", source, target]) == 0
    capsys.readouterr()
    assert main(["threads", target]) == 0
    assert "cli-thread" in capsys.readouterr().out
    assert main(["threads", _url(socket_path, f"{prefix}-typo")]) != 0
    assert "no checkpoints under key prefix" in capsys.readouterr().err

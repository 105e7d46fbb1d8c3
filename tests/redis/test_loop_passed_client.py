"""An AsyncRedisSaver on a client passed in, closed from a later event loop: the client is
the caller's and bound to the loop that made it, so closing the saver there says nothing."""

from __future__ import annotations

import asyncio

import pytest
import redis.asyncio

from checkpoint_base import ConfigError, StorageError
from checkpoint_base.testing import servers
from checkpoint_redis import AsyncRedisSaver
from checkpoint_redis._testing import fresh_prefix

from ..conformance.builders import checkpoint, config, new_thread


def test_closing_on_a_later_loop_is_quiet_and_final() -> None:
    prefix = fresh_prefix()
    tid = new_thread()
    holder: dict[str, AsyncRedisSaver] = {}

    async def first() -> None:
        client = redis.asyncio.Redis.from_url(servers.redis_url())
        saver = holder["saver"] = AsyncRedisSaver(client, key_prefix=prefix)
        await saver.asetup()
        await saver.aput(config(tid), checkpoint({"a": 1}), {}, {"a": 1})

    async def later() -> None:
        saver = holder["saver"]
        with pytest.raises(ConfigError, match="another event loop"):
            await saver.aget_tuple(config(tid))  # the client's loop is gone: said, at once
        await saver.aclose()  # nothing of its own to close: no error
        with pytest.raises(StorageError, match="closed"):
            await saver.aget_tuple(config(tid))

    asyncio.run(first())
    asyncio.run(later())

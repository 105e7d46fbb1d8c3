"""The `redis://`, `rediss://` and `redis+cluster://` entries of `checkpoint_base.connect()`."""

from __future__ import annotations

import asyncio
from typing import Any

from checkpoint_base import BackendEntry, MissingDriverError

try:
    from ._saver import AsyncRedisSaver, RedisSaver
except ModuleNotFoundError as exc:  # pragma: no cover - depends on the environment
    if exc.name is None or not exc.name.startswith("redis"):
        raise
    raise MissingDriverError(
        "the redis:// backend needs redis-py: pip install 'checkpointers[redis]'"
    ) from exc

__all__ = ["BACKEND", "CLUSTER_BACKEND"]


def _connect(url: str, **options: Any) -> RedisSaver:
    return RedisSaver.from_url(url, **options)


async def _aconnect(url: str, **options: Any) -> AsyncRedisSaver:
    # redis-py reads its own version from the installed packages' metadata (file system
    # calls) when it makes its first connection, then keeps it: read it on a thread, so that
    # an event loop that forbids blocking calls (`langgraph dev`) opens the saver too.
    await asyncio.to_thread(_redis_py_version)
    return AsyncRedisSaver.from_url(url, **options)


def _redis_py_version() -> None:
    try:
        from redis.utils import get_lib_version
    except ImportError:  # another redis-py: nothing to do ahead
        return
    get_lib_version()


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="redis")
CLUSTER_BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="redis")

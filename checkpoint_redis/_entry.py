"""The `redis://`, `rediss://`, `redis+cluster://` and `redis+sentinel://` entries of
`checkpoint_base.connect()`."""

from __future__ import annotations

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

__all__ = ["BACKEND", "CLUSTER_BACKEND", "SENTINEL_BACKEND"]


def _connect(url: str, **options: Any) -> RedisSaver:
    return RedisSaver.from_url(url, **options)


async def _aconnect(url: str, **options: Any) -> AsyncRedisSaver:
    return AsyncRedisSaver.from_url(url, **options)


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="redis", expires=True)
CLUSTER_BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="redis", expires=True)
SENTINEL_BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="redis", expires=True)

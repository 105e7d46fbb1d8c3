"""The `postgresql://` and `postgres://` entries of `checkpoint_base.connect()`."""

from __future__ import annotations

from typing import Any

from checkpoint_base import BackendEntry

from ._saver import AsyncPostgresSaver, PostgresSaver

__all__ = ["BACKEND"]

_POOL_KEYS = ("min_size", "max_size", "timeout", "max_idle", "max_lifetime")


def _split(options: dict[str, Any]) -> dict[str, Any]:
    """Lift pool sizes given as plain options (`connect(url, max_size=20)`) into pool_options."""
    pool: dict[str, Any] = dict(options.pop("pool_options", None) or {})
    for key in _POOL_KEYS:
        if key in options:
            pool[key] = options.pop(key)
    options["pool_options"] = pool
    return options


def _connect(url: str, **options: Any) -> PostgresSaver:
    return PostgresSaver(url, **_split(options))


async def _aconnect(url: str, **options: Any) -> AsyncPostgresSaver:
    return AsyncPostgresSaver(url, **_split(options))


BACKEND = BackendEntry(connect=_connect, aconnect=_aconnect, extra="postgres")

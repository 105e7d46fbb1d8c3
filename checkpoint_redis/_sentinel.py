"""Redis behind Sentinel: which clients are, and what `setup()` checks of their master.

A client of a `redis+sentinel://` URL (`_urls.py`), or one the user made with redis-py's
`Sentinel.master_for`, asks the Sentinels for the master's address on every new connection
(redis-py's `SentinelConnectionPool`), so after a failover it finds the new master. The
saver's executor retries a request through the failover (`retry_timeout`, 35 s by default)
and drops the connections it keeps when the server they reach answers that it is no longer
a master (`READONLY`) or has no replica left to write with (`NOREPLICAS`).

A failover leaves a window: the old master, still up and unaware, keeps taking writes until
the Sentinels demote it (Redis 7: some ten seconds after the switch), and drops them then.
`min-replicas-to-write` on every data node shrinks it: a master with fewer replicas in sync
refuses writes, and the saver sends them again to the new master. With as many as the
master has replicas nothing it takes after the promotion is lost; with fewer, it keeps a
replica until the Sentinels move that one too (about a second). `setup()` warns
(`FailoverWarning`) when the master asks for none.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from redis import exceptions as rx
from redis.asyncio.sentinel import SentinelConnectionPool as AsyncSentinelPool
from redis.sentinel import SentinelConnectionPool

__all__ = ["FailoverWarning", "acheck_replicas", "check_replicas", "is_sentinel", "service_of"]

_log = logging.getLogger("checkpoint_redis")


class FailoverWarning(UserWarning):
    """Writes a master takes after a Sentinel failover, until it is demoted, may be lost."""


def is_sentinel(client: Any) -> bool:
    """Whether `client` finds its master through Sentinel (redis-py's Sentinel pools)."""
    pool = getattr(client, "connection_pool", None)
    return isinstance(pool, (SentinelConnectionPool, AsyncSentinelPool))


def service_of(client: Any) -> str:
    """The Sentinel service name of a Sentinel client (for messages)."""
    return str(getattr(client.connection_pool, "service_name", "?"))


def _warn(client: Any, reply: Any) -> None:
    if not isinstance(reply, Mapping) or reply.get("role") != "master":
        return
    if "min_slaves_good_slaves" in reply:  # set only when min-replicas-to-write is
        return
    warnings.warn(
        f"the master of Sentinel service {service_of(client)!r} takes writes without a "
        "replica (min-replicas-to-write 0): after a failover, the old master keeps taking "
        "writes until the Sentinels demote it, and those writes are lost then. Set "
        "min-replicas-to-write 1 (and keep two replicas) on every data node of the service, "
        "so that a master without replicas refuses writes and the saver sends them to the "
        "new master.",
        FailoverWarning,
        stacklevel=4,
    )


def check_replicas(client: Any) -> None:
    """Warn (`FailoverWarning`) when the master of a Sentinel client takes writes with no
    replica in sync; nothing for other clients."""
    if not is_sentinel(client):
        return
    try:
        reply = client.info("replication")
    except rx.ResponseError as exc:  # INFO refused (an ACL): nothing to tell from
        _log.debug("min-replicas-to-write not checked: %s", exc)
        return
    _warn(client, reply)


async def acheck_replicas(client: Any) -> None:
    """Async twin of `check_replicas`."""
    if not is_sentinel(client):
        return
    try:
        reply = await client.info("replication")
    except rx.ResponseError as exc:
        _log.debug("min-replicas-to-write not checked: %s", exc)
        return
    _warn(client, reply)

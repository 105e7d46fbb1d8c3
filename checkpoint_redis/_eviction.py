"""Whether a server may evict some of a thread's keys: checked by `setup()`.

A thread is several keys (its checkpoints, blobs, writes and indexes). A server that evicts
keys when it reaches `maxmemory` picks them one at a time, so it can drop a thread's blobs
and keep its checkpoints: a later read then finds a checkpoint without the values of its
channels, and the graph resumes from a state that lost data. `allkeys-*` policies may pick
any key; `volatile-*` policies only keys with a time to live, which the saver's keys have
when it was built with `ttl=`. With no `maxmemory` (0) nothing is evicted; with `noeviction`
a full server refuses writes, which the saver reports as an error.

`INFO memory` is read rather than `CONFIG GET`, which managed services (ElastiCache,
Memorystore) refuse. A server that refuses `INFO` too (an ACL) is not checked.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Mapping
from typing import Any

from redis import exceptions as rx
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.cluster import RedisCluster

__all__ = ["EvictionWarning", "acheck_eviction", "check_eviction", "eviction_risk"]

_log = logging.getLogger("checkpoint_redis")


class EvictionWarning(UserWarning):
    """The Redis server may evict some keys of a thread and keep others (`maxmemory-policy`)."""


def eviction_risk(info: Mapping[str, Any], ttl: bool) -> str | None:
    """Why a node whose `INFO memory` is `info` may drop part of a thread, or None.

    Args:
        info: `INFO memory` of one node, as redis-py parses it.
        ttl: The saver's keys have a time to live (`ttl=`).
    """
    try:
        maxmemory = int(info.get("maxmemory") or 0)
    except (TypeError, ValueError):
        return None
    policy = str(info.get("maxmemory_policy") or "noeviction")
    if maxmemory <= 0 or policy == "noeviction":
        return None
    if policy.startswith("allkeys-"):
        return f"maxmemory-policy is {policy}: when full it evicts any key"
    if policy.startswith("volatile-") and ttl:
        return (
            f"maxmemory-policy is {policy}: when full it evicts keys that have a time to "
            "live, and the saver's ttl= gives every key one"
        )
    return None


def _message(risks: Mapping[str, str], ttl: bool) -> str:
    where = "; ".join(f"{node}: {why}" for node, why in sorted(risks.items()))
    fix = "set maxmemory-policy to noeviction"
    if not ttl:
        fix += " (or a volatile-* policy: the saver's keys have no time to live)"
    return (
        f"Redis may evict checkpoint data ({where}). Eviction drops keys one at a time, so a "
        "thread can lose the values of its checkpoints and keep the checkpoints, and a graph "
        f"would then resume from a state missing data. On a server that holds checkpoints, "
        f"{fix}, and give it enough memory (a full noeviction server refuses writes, which "
        "the saver reports as an error)."
    )


def _by_node(client: Any, reply: Any) -> dict[str, Mapping[str, Any]]:
    if isinstance(client, (RedisCluster, AsyncRedisCluster)):
        return {str(node): info for node, info in reply.items() if isinstance(info, Mapping)}
    pool = client.connection_pool
    kwargs = pool.connection_kwargs
    node = f"{kwargs.get('host', '?')}:{kwargs.get('port', '?')}"
    if getattr(pool, "service_name", None) is not None:  # found through Sentinel
        node = f"the master of Sentinel service {pool.service_name!r}"
    return {node: reply} if isinstance(reply, Mapping) else {}


def _warn(client: Any, reply: Any, ttl: bool) -> None:
    risks = {}
    for node, info in _by_node(client, reply).items():
        why = eviction_risk(info, ttl)
        if why is not None:
            risks[node] = why
    if risks:
        warnings.warn(_message(risks, ttl), EvictionWarning, stacklevel=4)


def check_eviction(client: Any, ttl: bool) -> None:
    """Warn (`EvictionWarning`) when a node of `client` may evict some of a thread's keys."""
    try:
        if isinstance(client, RedisCluster):
            reply = client.info("memory", target_nodes=RedisCluster.PRIMARIES)
        else:
            reply = client.info("memory")
    except rx.ResponseError as exc:  # INFO refused (an ACL): nothing to tell from
        _log.debug("maxmemory-policy not checked: %s", exc)
        return
    _warn(client, reply, ttl)


async def acheck_eviction(client: Any, ttl: bool) -> None:
    """Async twin of `check_eviction`."""
    try:
        if isinstance(client, AsyncRedisCluster):
            reply = await client.info("memory", target_nodes=AsyncRedisCluster.PRIMARIES)
        else:
            reply = await client.info("memory")
    except rx.ResponseError as exc:
        _log.debug("maxmemory-policy not checked: %s", exc)
        return
    _warn(client, reply, ttl)

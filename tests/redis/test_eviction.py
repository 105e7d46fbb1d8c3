"""`setup()` warns when the server may evict some keys of a thread and keep others."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from redis.cluster import RedisCluster
from redis.exceptions import NoPermissionError

from checkpoint_redis import AsyncRedisSaver, EvictionWarning, RedisSaver
from checkpoint_redis._eviction import eviction_risk
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from checkpoint_redis._urls import sync_client

from .conftest import user_without


@pytest.mark.parametrize(
    ("maxmemory", "policy", "ttl", "risky"),
    [
        (0, "allkeys-lru", False, False),  # no limit: nothing is ever evicted
        (10**9, "noeviction", True, False),
        (10**9, "allkeys-lru", False, True),
        (10**9, "allkeys-lfu", True, True),
        (10**9, "allkeys-random", False, True),
        (10**9, "volatile-lru", False, False),  # the saver's keys have no time to live
        (10**9, "volatile-lru", True, True),
        (10**9, "volatile-ttl", True, True),
        (10**9, "volatile-random", False, False),
    ],
)
def test_which_policies_may_drop_part_of_a_thread(
    maxmemory: int, policy: str, ttl: bool, risky: bool
) -> None:
    why = eviction_risk({"maxmemory": maxmemory, "maxmemory_policy": policy}, ttl)
    assert (why is not None) is risky
    if risky:
        assert why is not None and policy in why


def _primaries(raw: Any) -> list[Any]:
    return list(raw.get_primaries()) if isinstance(raw, RedisCluster) else [None]


@contextmanager
def _policy(raw: Any, policy: str) -> Iterator[str]:
    """Set a 1 GB maxmemory and `policy` on one master (restored after); its address."""
    (node, *_) = _primaries(raw)
    target = {"target_nodes": node} if node is not None else {}
    before = raw.config_get("maxmemory*", **target)
    if node is not None:  # a cluster answers {setting: value} for one node too
        before = before.get(node.name, before)
    raw.config_set("maxmemory", str(10**9), **target)
    raw.config_set("maxmemory-policy", policy, **target)
    try:
        if node is not None:
            yield str(node.name)
        else:
            kwargs = raw.connection_pool.connection_kwargs
            yield f"{kwargs['host']}:{kwargs['port']}"
    finally:
        raw.config_set("maxmemory-policy", before["maxmemory-policy"], **target)
        raw.config_set("maxmemory", before["maxmemory"], **target)


@contextmanager
def _no_eviction_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("error", EvictionWarning)
        yield


def _saver(url: str, **options: Any) -> RedisSaver:
    return RedisSaver.from_url(url, key_prefix=fresh_prefix(), **options)


def test_setup_says_nothing_on_a_server_that_never_evicts(url: str) -> None:
    saver = _saver(url, ttl=60)
    try:
        with _no_eviction_warning():
            saver.setup()
    finally:
        saver.close()
        drop_prefix(url, saver.backend.layout.prefix.decode())


def test_setup_warns_when_a_master_evicts_any_key(url: str, raw: Any) -> None:
    saver = _saver(url)
    try:
        with _policy(raw, "allkeys-lru") as node:
            with pytest.warns(EvictionWarning, match="allkeys-lru") as caught:
                saver.setup()
            message = str(caught[0].message)
            assert node in message and "noeviction" in message
            # The warning points at the caller's line, not inside the package.
            assert caught[0].filename == __file__
        # The saver works the same after the warning.
        config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
        assert saver.get_tuple(config) is None
    finally:
        saver.close()
        drop_prefix(url, saver.backend.layout.prefix.decode())


def test_volatile_policies_matter_only_with_a_ttl(url: str, raw: Any) -> None:
    plain, expiring = _saver(url), _saver(url, ttl=60)
    try:
        with _policy(raw, "volatile-lru"):
            with _no_eviction_warning():
                plain.setup()
            with pytest.warns(EvictionWarning, match="volatile-lru.*ttl="):
                expiring.setup()
    finally:
        for saver in (plain, expiring):
            saver.close()
            drop_prefix(url, saver.backend.layout.prefix.decode())


async def test_asetup_warns_too(url: str, raw: Any) -> None:
    saver = AsyncRedisSaver.from_url(url, key_prefix=fresh_prefix(), ttl=60)
    try:
        with _policy(raw, "volatile-ttl"), pytest.warns(EvictionWarning, match="volatile-ttl"):
            await saver.asetup()
    finally:
        await saver.aclose()
        drop_prefix(url, saver.backend.layout.prefix.decode())


def test_a_user_that_may_not_run_info_is_not_checked(kind: str, url: str, raw: Any) -> None:
    with user_without(kind, url, raw, "info") as limited:
        probe = sync_client(limited)
        try:
            with pytest.raises(NoPermissionError):
                probe.info("memory")  # the ACL does refuse it
        finally:
            probe.close()
        with _policy(raw, "allkeys-lru"):
            saver = _saver(limited)
            try:
                with _no_eviction_warning():
                    saver.setup()  # no error and no warning: nothing to tell from
                config = {"configurable": {"thread_id": "t", "checkpoint_ns": ""}}
                assert saver.get_tuple(config) is None
            finally:
                saver.close()
                drop_prefix(url, saver.backend.layout.prefix.decode())

"""`ttl=`: every key of a thread (and of its registry bucket) expires; nothing is left behind."""

from __future__ import annotations

import datetime
import time
from typing import Any

import pytest

from checkpoint_base import ConfigError
from checkpoint_redis._keys import Layout

from .conftest import keys_under
from .test_hash_tags import _put_chain


def _prefix_keys(saver: Any) -> tuple[bytes, bytes]:
    layout: Layout = saver.backend.layout
    return layout.schema_key, layout.directory_key


def test_every_key_of_a_thread_has_the_ttl(open_saver: Any, raw: Any) -> None:
    saver = open_saver(ttl=60)
    prefix = saver.backend.layout.prefix.decode()
    for thread_id in ("t1", "t2", "t{3}"):
        _put_chain(saver, thread_id, 4)
        _put_chain(saver, thread_id, 2, ns="child:1")
    keys = keys_under(raw, prefix) - set(_prefix_keys(saver))
    # c i o b w x m h of each thread, plus its bucket's threads/runs/exp keys
    assert len(keys) >= 3 * 8 + 3
    ttls = {k: raw.pttl(k) for k in keys}
    assert all(0 < ms <= 60_000 for ms in ttls.values()), ttls


def test_expired_threads_leave_nothing(open_saver: Any, raw: Any) -> None:
    saver = open_saver(ttl=1)
    prefix = saver.backend.layout.prefix.decode()
    _put_chain(saver, "gone", 3)
    saver.prune(["gone"])  # a write that deletes keys must not drop their TTL either
    assert keys_under(raw, prefix) - set(_prefix_keys(saver))
    time.sleep(1.3)
    assert keys_under(raw, prefix) <= set(_prefix_keys(saver))
    assert saver.list_threads() == []
    assert list(saver.list(None)) == []


def test_registry_forgets_expired_threads_while_others_live(open_saver: Any) -> None:
    saver = open_saver(ttl=1)
    other = open_saver(key_prefix=saver.backend.layout.prefix.decode(), ttl=5)
    _put_chain(saver, "short", 2)
    time.sleep(1.2)
    # A write to another thread of the same bucket forgets the expired one.
    _put_chain(other, "long", 1)
    if not saver.backend.layout.cluster:
        assert [i.thread_id for i in other.list_threads()] == ["long"]
    assert [t.config["configurable"]["thread_id"] for t in other.list(None)] == ["long"]


def test_refresh_on_read(open_saver: Any, raw: Any) -> None:
    saver = open_saver(ttl=2, refresh_on_read=True)
    plain = open_saver(key_prefix=saver.backend.layout.prefix.decode(), ttl=2)
    _put_chain(saver, "kept", 2)
    key = saver.backend.layout.thread("kept").keys[0]
    time.sleep(1.0)
    assert raw.pttl(key) < 1_500
    plain.get_tuple({"configurable": {"thread_id": "kept"}})  # no refresh without the option
    assert raw.pttl(key) < 1_500
    saver.get_tuple({"configurable": {"thread_id": "kept"}})
    assert raw.pttl(key) > 1_500
    time.sleep(1.0)
    list(saver.list({"configurable": {"thread_id": "kept", "checkpoint_ns": ""}}))
    assert raw.pttl(key) > 1_500
    time.sleep(1.3)
    assert saver.get_tuple({"configurable": {"thread_id": "kept"}}) is not None


def test_without_ttl_nothing_expires(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    _put_chain(saver, "forever", 2)
    keys = keys_under(raw, saver.backend.layout.prefix.decode())
    assert keys and all(raw.pttl(k) == -1 for k in keys)


def test_ttl_takes_seconds_or_a_timedelta_and_names_anything_else(open_saver: Any) -> None:
    assert open_saver(ttl=datetime.timedelta(minutes=2)).backend.ttl_ms == 120_000
    assert open_saver(ttl=1.5).backend.ttl_ms == 1_500
    for bad in (0, -5, "60", True, datetime.timedelta(0)):
        with pytest.raises(ConfigError, match="ttl must be a positive number of seconds"):
            open_saver(ttl=bad)
    for bad in (0.0004, datetime.timedelta(microseconds=10), float("inf")):
        with pytest.raises(ConfigError, match="ttl must be at least 1 ms and finite"):
            open_saver(ttl=bad)
    for bad in (-1, "5", True):
        with pytest.raises(ConfigError, match="retry_timeout must be a number of seconds"):
            open_saver(retry_timeout=bad)
    assert open_saver(retry_timeout=0) is not None  # no retry

"""A Redis thread's size is the memory of its keys; a user that may not run MEMORY still lists
its threads, sizes unknown."""

from __future__ import annotations

import os
from typing import Any

from checkpoint_redis import RedisSaver
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from tests.conformance.builders import checkpoint, config

from .conftest import user_without


def _thread(saver: RedisSaver, thread_id: str, value_bytes: int) -> None:
    values = {"v": os.urandom(value_bytes)}
    saver.put(config(thread_id), checkpoint(values), {}, {"v": 1})


def test_size_is_the_memory_of_the_threads_keys(url: str, raw: Any) -> None:
    prefix = fresh_prefix()
    with RedisSaver.from_url(url, key_prefix=prefix) as saver:
        try:
            saver.setup()
            _thread(saver, "small", 1_000)
            _thread(saver, "large", 300_000)
            saver.put_writes(
                saver.get_tuple(config("small")).config,  # type: ignore[union-attr]
                [("w", os.urandom(100_000))],
                "task",
            )
            sizes = {t.thread_id: t.size_bytes for t in saver.list_threads()}
            assert sizes["large"] is not None and sizes["large"] >= 300_000
            assert sizes["small"] is not None and 100_000 <= sizes["small"] < 300_000
        finally:
            drop_prefix(url, prefix)


def test_a_user_that_may_not_run_memory_lists_threads_without_sizes(
    kind: str, url: str, raw: Any
) -> None:
    prefix = fresh_prefix()
    with user_without(kind, url, raw, "memory") as limited:
        try:
            with RedisSaver.from_url(limited, key_prefix=prefix) as saver:
                saver.setup()
                _thread(saver, "t", 10_000)
                listed = saver.list_threads()
                assert [(t.thread_id, t.checkpoint_count, t.size_bytes) for t in listed] == [
                    ("t", 1, None)
                ]
        finally:
            drop_prefix(url, prefix)

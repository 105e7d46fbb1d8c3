"""The command line on Redis behind Sentinel: a `redis+sentinel://` URL works where any does."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from checkpoint_base import connect
from checkpoint_base.testing import servers
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from tests.migration.workload import assert_same_storage

from .conftest import Cli, Filled


@pytest.fixture
def url() -> Iterator[str]:
    base, prefix = servers.redis_sentinel_url(), fresh_prefix()
    try:
        yield f"{base}?key_prefix={prefix}"
    finally:
        drop_prefix(base, prefix)


def test_migrate_into_sentinel_then_list(cli: Cli, filled: Filled, url: str) -> None:
    result = cli("migrate", filled.url, url, "--verify")
    assert result.status == 0, result.err
    assert "identical in the target" in result.out
    with connect(filled.url) as source, connect(url) as copy:
        assert_same_storage(source, copy, filled.work)
    listed = cli("threads", url, "--json")
    assert listed.status == 0, listed.err
    assert all(thread_id in listed.out for thread_id in filled.work.thread_ids)

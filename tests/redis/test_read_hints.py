"""A saver with a lane reads the latest checkpoint's blobs beside its script (`read_hints`).

What must hold: the hinted read sends the script and an HMGET of the remembered fields in one
MULTI/EXEC, and the script leaves those blobs out; whatever the hint says (another saver
wrote a newer checkpoint, the thread was deleted or pruned, a namespace never read), the read
returns what a read without hints returns.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from checkpoint_redis import RedisSaver
from checkpoint_redis._requests import Command, Transaction
from checkpoint_redis._testing import drop_prefix, fresh_prefix
from tests.conformance.builders import checkpoint, config

BIG = "m" * 20_000


def _put(saver: RedisSaver, thread_id: str, value: str, version: int, ns: str = "") -> Any:
    cfg = config(thread_id, ns)
    versions = {"messages": version, "small": 1}
    cp = checkpoint({"messages": value, "small": "s"}, versions)
    return saver.put(cfg, cp, {"step": version}, versions)


def _values(tup: Any) -> dict[str, Any]:
    assert tup is not None
    return dict(tup.checkpoint["channel_values"])


@pytest.fixture
def pair(url: str) -> Iterator[tuple[RedisSaver, RedisSaver]]:
    """Two savers from URLs (lanes, hints) on one prefix: two processes, as far as hints go."""
    prefix = fresh_prefix()
    one = RedisSaver.from_url(url, key_prefix=prefix)
    two = RedisSaver.from_url(url, key_prefix=prefix)
    try:
        one.setup()
        yield one, two
    finally:
        one.close()
        two.close()
        drop_prefix(url, prefix)


def _requests(saver: RedisSaver, monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    sent: list[Any] = []
    perform = saver._executor._perform

    def recording(request: Any) -> Any:
        sent.append(request)
        return perform(request)

    monkeypatch.setattr(saver._executor, "_perform", recording)
    return sent


def test_a_latest_read_fetches_the_remembered_blobs_beside_the_script(
    pair: tuple[RedisSaver, RedisSaver], monkeypatch: pytest.MonkeyPatch
) -> None:
    one, _ = pair
    assert one.backend.read_hints
    _put(one, "t", BIG, 1)
    sent = _requests(one, monkeypatch)
    assert _values(one.get_tuple(config("t"))) == {"messages": BIG, "small": "s"}
    (request,) = sent  # one round trip
    assert isinstance(request, Transaction)
    script, hmget = request.requests
    assert isinstance(hmget, Command) and hmget.args[0] == "HMGET"
    assert len(hmget.args) == 4  # the key and both blob fields
    assert script.args[-3] == 2  # the script is told to leave both out


def test_a_stale_hint_reads_what_another_saver_wrote(
    pair: tuple[RedisSaver, RedisSaver],
) -> None:
    one, two = pair
    _put(one, "t", BIG, 1)
    assert _values(one.get_tuple(config("t")))["messages"] == BIG  # one remembers version 1
    _put(two, "t", BIG + "newer", 2)  # a newer checkpoint one knows nothing of
    assert _values(one.get_tuple(config("t")))["messages"] == BIG + "newer"
    assert _values(one.get_tuple(config("t")))["messages"] == BIG + "newer"  # hint renewed


def test_a_hint_of_a_deleted_or_pruned_thread_reads_what_is_there(
    pair: tuple[RedisSaver, RedisSaver],
) -> None:
    one, two = pair
    for version in (1, 2, 3):
        _put(one, "t", f"{BIG}{version}", version)
    _put(one, "gone", BIG, 1)
    two.delete_thread("gone")
    assert one.get_tuple(config("gone")) is None
    _put(two, "gone", "back", 1)  # the same blob field as the hint, another value
    assert _values(one.get_tuple(config("gone")))["messages"] == "back"
    two.prune(["t"], strategy="keep_latest")
    assert _values(one.get_tuple(config("t")))["messages"] == f"{BIG}3"


def test_namespaces_and_reads_by_id_are_unaffected(
    pair: tuple[RedisSaver, RedisSaver],
) -> None:
    one, two = pair
    first = _put(one, "t", BIG, 1)
    _put(one, "t", BIG + "sub", 1, ns="child")
    _put(one, "t", BIG + "2", 2)
    assert _values(one.get_tuple(config("t")))["messages"] == BIG + "2"
    assert _values(one.get_tuple(config("t", "child")))["messages"] == BIG + "sub"
    assert _values(one.get_tuple(first))["messages"] == BIG  # by id: no hint
    assert two.get_tuple(config("t")) == one.get_tuple(config("t"))

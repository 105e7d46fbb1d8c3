"""Plans run without a server: drive them with fake results, sync and async."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from checkpoint_base import (
    Backend,
    CheckpointRecord,
    CheckpointRow,
    ListQuery,
    Plan,
    StorageError,
    arun,
    run,
)


def _record(cid: str, parent: str | None) -> CheckpointRecord:
    return CheckpointRecord("t", "", cid, parent, "msgpack", b"", b"{}", {}, None, 0.0)


class FakeBackend(Backend):
    """list_page yields the query and receives the rows the test sends: no storage at all."""

    def setup(self) -> Plan[None]:
        yield "setup"

    def put_checkpoint(self, checkpoint: Any, blobs: Any, writes: Any = ()) -> Plan[None]:
        yield ("put", checkpoint)

    def put_writes(self, writes: Any) -> Plan[None]:
        yield ("writes", writes)

    def list_page(self, query: ListQuery) -> Plan[list[CheckpointRow]]:
        rows: list[CheckpointRow] = yield query
        return rows

    def delete_threads(self, thread_ids: Sequence[str]) -> Plan[None]:
        yield ("delete", thread_ids)

    def delete_runs(self, run_ids: Sequence[str]) -> Plan[None]:
        yield ("runs", run_ids)

    def prune(self, thread_id: str, keep: Any) -> Plan[None]:
        yield ("prune", thread_id, keep)


CHAIN = {"c3": "c2", "c2": "c1", "c1": None}


def _serve(request: Any) -> Any:
    assert isinstance(request, ListQuery)
    assert request.limit == 1 and request.thread_id == "t"
    cid = request.checkpoint_id
    return [CheckpointRow(_record(cid, CHAIN[cid]))] if cid in CHAIN else []


def test_generic_history_follows_parent_links() -> None:
    rows = run(FakeBackend().history("t", "", "c3", limit=10), _serve)
    assert [r.checkpoint.checkpoint_id for r in rows] == ["c3", "c2", "c1"]
    rows = run(FakeBackend().history("t", "", "c3", limit=2), _serve)
    assert [r.checkpoint.checkpoint_id for r in rows] == ["c3", "c2"]


async def test_async_driver_runs_the_same_plan() -> None:
    async def serve(request: Any) -> Any:
        return _serve(request)

    rows = await arun(FakeBackend().history("t", "", "c2", limit=10), serve)
    assert [r.checkpoint.checkpoint_id for r in rows] == ["c2", "c1"]


def test_errors_are_thrown_into_the_plan() -> None:
    seen: list[str] = []

    def plan() -> Plan[str]:
        try:
            yield "boom"
        except StorageError as exc:
            seen.append(str(exc))
            result = yield "recover"
            return f"recovered with {result}"
        return "not reached"

    def execute(request: str) -> str:
        if request == "boom":
            raise StorageError("failed")
        return "ok"

    assert run(plan(), execute) == "recovered with ok"
    assert seen == ["failed"]


def test_unhandled_errors_propagate() -> None:
    def execute(request: Any) -> Any:
        raise StorageError("down")

    with pytest.raises(StorageError, match="down"):
        run(FakeBackend().setup(), execute)


def test_list_walk_pages_and_hands_on_the_metadata_it_decoded() -> None:
    from checkpoint_base._operations import ListWalk

    def row(cid: str, step: int) -> CheckpointRow:
        metadata = f'{{"step": {step}}}'.encode()
        return CheckpointRow(
            CheckpointRecord("t", "", cid, None, "msgpack", b"", metadata, {}, None, 0.0)
        )

    walk = ListWalk(ListQuery(thread_id="t", before="9"), {"step": 1}, 2, push_filter=True)
    first = walk.next_query()
    assert first == ListQuery(thread_id="t", before="9", filter={"step": 1}, limit=2)
    # The backend may return rows the filter does not match: the walk drops them, and
    # gives each kept row with the metadata it decoded to check it.
    kept = walk.accept(first, [row("5", 1), row("4", 2)])
    assert [(r.checkpoint.checkpoint_id, m) for r, m in kept] == [("5", {"step": 1})]
    second = walk.next_query()
    assert second == ListQuery(
        thread_id="t", before="9", cursor=("4", "t", ""), filter={"step": 1}, limit=1
    )
    assert [r.checkpoint.checkpoint_id for r, _ in walk.accept(second, [row("3", 1)])] == ["3"]
    assert walk.next_query() is None
    # Without a filter nothing is decoded; a filter the backend cannot run is not sent to it.
    plain = ListWalk(ListQuery(thread_id="t"), None, None, push_filter=True)
    query = plain.next_query()
    assert query is not None and query.filter is None and query.limit == 100
    assert plain.accept(query, [row("5", 1)]) == [(row("5", 1), None)]
    unpushed = ListWalk(ListQuery(), {"step": 1}, None, push_filter=False)
    query = unpushed.next_query()
    assert query is not None and query.filter is None


@pytest.mark.parametrize(
    "data",
    [
        b'{"a": 1, "s": "\\u00e9"}',
        '{"a": 1, "s": "é"}'.encode(),
        b'\xef\xbb\xbf{"a": 1}',  # a BOM: not ours, but json.loads reads it
        '{"a": 1}'.encode("utf-16"),
        '{"a": 1}',
    ],
)
def test_decode_metadata_reads_what_json_loads_reads(data: bytes | str) -> None:
    import json

    from checkpoint_base._metadata import decode_metadata

    assert decode_metadata(data) == json.loads(data)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "filter",
    [
        {"step": 3, "source": "loop", "ok": True, "x": None, "f": 1.5, "big": 2**70},
        {"s": "\ud800 lone surrogate", "n": -0.0},
        {"nested": {"a": [1, (2, 3)]}, "t": (1, "x")},  # tuples become lists
    ],
)
def test_normalize_filter_gives_what_a_json_round_trip_gives(filter: dict) -> None:
    import json

    from checkpoint_base._metadata import normalize_filter

    got = normalize_filter(filter)
    want = json.loads(json.dumps(filter))
    assert got == want
    assert got is not None and [type(v) for v in got.values()] == [type(v) for v in want.values()]


def test_normalize_filter_rejects_what_json_cannot_hold() -> None:
    import enum

    from checkpoint_base import ConfigError
    from checkpoint_base._metadata import normalize_filter

    class Key(str, enum.Enum):
        STEP = "step"

    with pytest.raises(ConfigError, match="JSON"):
        normalize_filter({"score": float("nan")})
    with pytest.raises(ConfigError, match="JSON"):
        normalize_filter({"when": object()})
    got = normalize_filter({Key.STEP: 1})
    assert got == {"step": 1} and [type(k) for k in got] == [str]

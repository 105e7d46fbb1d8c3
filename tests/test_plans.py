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

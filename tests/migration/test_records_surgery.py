"""The pure parts of migration: msgpack surgery on official checkpoints, ordering, times."""

from __future__ import annotations

import datetime
import uuid

import msgpack
from langgraph.checkpoint.base import create_checkpoint, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_base import CheckpointRecord, CheckpointRow
from checkpoint_base._migrate_msgpack import (
    compose_checkpoint,
    split_checkpoint,
    standalone_value,
    ts_to_epoch,
    uuid6_epoch,
)
from checkpoint_base._migrate_side import keys_parents_first

SERDE = JsonPlusSerializer()


def _official_checkpoint() -> dict:
    checkpoint = create_checkpoint(empty_checkpoint(), None, 3)
    checkpoint["channel_values"] = {
        "when": datetime.datetime(2024, 5, 4, tzinfo=datetime.timezone.utc),
        "raw": b"\x00\xff",
        "nothing": None,
        "nested": {"a": [1, 2.5, "x"], "b": {"c": uuid.UUID(int=7)}},
    }
    checkpoint["channel_versions"] = {
        ch: f"{i:032}.0.5" for i, ch in enumerate(checkpoint["channel_values"])
    }
    return checkpoint


def test_split_slices_each_value_and_keeps_the_body() -> None:
    checkpoint = _official_checkpoint()
    type_, data = SERDE.dumps_typed(checkpoint)
    assert type_ == "msgpack"
    split = split_checkpoint(data)
    assert set(split.values) == set(checkpoint["channel_values"])
    for channel, raw in split.values.items():
        assert raw in data  # a slice of the stored bytes, not a re-encoding
        assert SERDE.loads_typed(standalone_value(raw)) == checkpoint["channel_values"][channel]
    assert standalone_value(split.values["nothing"]) == ("null", b"")
    assert standalone_value(split.values["raw"]) == ("bytes", b"\x00\xff")
    body = SERDE.loads_typed(("msgpack", split.body))
    assert "channel_values" not in body
    assert body == {k: v for k, v in checkpoint.items() if k != "channel_values"}
    assert split.channel_versions == checkpoint["channel_versions"]
    assert split.ts == checkpoint["ts"]


def test_compose_is_the_inverse_of_split() -> None:
    _, data = SERDE.dumps_typed(_official_checkpoint())
    split = split_checkpoint(data)
    values = {ch: standalone_value(raw) for ch, raw in split.values.items()}
    composed = compose_checkpoint(split.body, values)
    assert composed is not None
    assert SERDE.loads_typed(("msgpack", composed)) == SERDE.loads_typed(("msgpack", data))
    again = split_checkpoint(composed)  # every value keeps its bytes; only its place moves
    assert again.values == split.values and again.body == split.body


def test_compose_refuses_what_it_cannot_embed() -> None:
    _, data = SERDE.dumps_typed(_official_checkpoint())
    split = split_checkpoint(data)
    assert compose_checkpoint(split.body, {"x": ("json", b"{}")}) is None
    assert compose_checkpoint(b"\x93\x01\x02\x03", {}) is None  # not a map


def test_split_rejects_garbage() -> None:
    for bad in (b"", b"\xc1", msgpack.packb([1, 2]), msgpack.packb({"a": 1}) + b"\x00"):
        try:
            split_checkpoint(bad)
        except ValueError:
            continue
        raise AssertionError(f"accepted {bad!r}")


def test_times_from_ids_and_ts() -> None:
    before = datetime.datetime.now(datetime.timezone.utc).timestamp()
    moment = uuid6_epoch(str(uuid6(clock_seq=-1)))
    after = datetime.datetime.now(datetime.timezone.utc).timestamp()
    assert moment is not None and before - 0.01 <= moment <= after + 0.01
    assert uuid6_epoch(str(uuid.uuid4())) is None
    assert uuid6_epoch("not-a-uuid") is None
    assert (
        ts_to_epoch("2024-05-04T06:32:42.235444+00:00")
        == datetime.datetime(
            2024, 5, 4, 6, 32, 42, 235444, tzinfo=datetime.timezone.utc
        ).timestamp()
    )
    assert ts_to_epoch(None) is None and ts_to_epoch("soon") is None


def _row(cid: str, parent: str | None, ns: str = "") -> CheckpointRow:
    return CheckpointRow(
        CheckpointRecord("t", ns, cid, parent, "msgpack", b"", b"{}", {}, None, 0.0)
    )


def _link(row: CheckpointRow) -> tuple[str, str, str | None]:
    rec = row.checkpoint
    return rec.checkpoint_ns, rec.checkpoint_id, rec.parent_checkpoint_id


def test_parents_first_even_when_ids_do_not_sort_by_time() -> None:
    rows = [
        _row("b", "c"),
        _row("c", None),
        _row("a", "b"),
        _row("z", None, "sub"),
        _row("y", "z", "sub"),
    ]
    order = [cid for _ns, cid in keys_parents_first(map(_link, rows))]
    assert order.index("c") < order.index("b") < order.index("a")
    assert order.index("z") < order.index("y")
    assert sorted(order) == ["a", "b", "c", "y", "z"]


def test_parents_first_survives_a_loop_of_parent_links() -> None:
    rows = [_row("a", "b"), _row("b", "a")]
    assert sorted(cid for _ns, cid in keys_parents_first(map(_link, rows))) == ["a", "b"]

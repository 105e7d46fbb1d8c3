"""put / get_tuple: round trips, namespaces, parent links, blobs per channel version."""

from __future__ import annotations

import pytest

from checkpoint_base import ConfigError

from .builders import chain, checkpoint, cid, config, new_thread
from .harness import Harness


async def test_round_trip_preserves_everything(h: Harness) -> None:
    tid = new_thread()
    cp = checkpoint(
        {"a": [1, 2, {"x": "y"}], "b": "text", "c": b"\x00\xff", "d": None},
        {"a": "00000000000000000000000000000001.0000000000000001", "b": 1, "c": 2, "d": 3},
        versions_seen={"node": {"a": 1}},
    )
    stored = await h.put(
        config(tid),
        cp,
        {"source": "input", "step": -1, "custom": {"k": [1]}},
        dict(cp["channel_versions"]),
    )
    assert stored == config(tid, "", cp["id"])
    got = await h.get_tuple(config(tid))
    assert got is not None
    assert got.config == stored
    assert got.checkpoint["channel_values"] == cp["channel_values"]
    assert got.checkpoint["channel_versions"] == cp["channel_versions"]
    assert got.checkpoint["versions_seen"] == {"node": {"a": 1}}
    assert got.checkpoint["id"] == cp["id"] and got.checkpoint["ts"] == cp["ts"]
    assert got.metadata == {"source": "input", "step": -1, "custom": {"k": [1]}}
    assert got.parent_config is None
    assert got.pending_writes == []


async def test_latest_and_by_id(h: Harness) -> None:
    tid = new_thread()
    configs = await chain(h, tid, 5)
    latest = await h.get_tuple(config(tid))
    assert latest is not None and latest.config == configs[-1]
    assert latest.parent_config == configs[-2]
    third = await h.get_tuple(configs[2])
    assert third is not None
    assert third.checkpoint["channel_values"] == {"step": 2}
    assert third.parent_config == configs[1]
    assert await h.get_tuple(config(tid, "", "no-such-id")) is None
    assert await h.get_tuple(config(new_thread())) is None


async def test_unchanged_channels_are_read_from_earlier_versions(h: Harness) -> None:
    tid = new_thread()
    first = await h.put(
        config(tid), checkpoint({"a": "A1", "b": "B1"}, {"a": 1, "b": 1}), {}, {"a": 1, "b": 1}
    )
    # Only b changes; a keeps version 1 and is not written again.
    second = await h.put(
        config(tid, "", cid(first)),
        checkpoint({"a": "A1", "b": "B2"}, {"a": 1, "b": 2}),
        {},
        {"b": 2},
    )
    got = await h.get_tuple(second)
    assert got is not None and got.checkpoint["channel_values"] == {"a": "A1", "b": "B2"}
    old = await h.get_tuple(first)
    assert old is not None and old.checkpoint["channel_values"] == {"a": "A1", "b": "B1"}
    # A channel dropped from channel_versions disappears from the values.
    third = await h.put(config(tid, "", cid(second)), checkpoint({"b": "B2"}, {"b": 2}), {}, {})
    got3 = await h.get_tuple(third)
    assert got3 is not None and got3.checkpoint["channel_values"] == {"b": "B2"}


async def test_channel_without_value_in_new_versions(h: Harness) -> None:
    tid = new_thread()
    cp = checkpoint({"a": 1}, {"a": 1, "empty": 1})
    stored = await h.put(config(tid), cp, {}, {"a": 1, "empty": 1})
    got = await h.get_tuple(stored)
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}


async def test_namespaces_are_isolated(h: Harness) -> None:
    tid = new_thread()
    root = await chain(h, tid, 2, "")
    child = await chain(h, tid, 3, "child:1")
    got_root = await h.get_tuple(config(tid, ""))
    got_child = await h.get_tuple(config(tid, "child:1"))
    assert got_root is not None and got_root.config == root[-1]
    assert got_child is not None and got_child.config == child[-1]
    assert got_child.config["configurable"]["checkpoint_ns"] == "child:1"
    assert len(await h.list(config(tid, "child:1"))) == 3
    assert len(await h.list(config(tid, ""))) == 2
    assert len(await h.list({"configurable": {"thread_id": tid}})) == 5


async def test_put_same_id_replaces(h: Harness) -> None:
    tid = new_thread()
    cp = checkpoint({"a": 1}, {"a": 1})
    await h.put(config(tid), cp, {"step": 1}, {"a": 1})
    await h.put(config(tid), cp, {"step": 2}, {})
    rows = await h.list(config(tid))
    assert len(rows) == 1 and rows[0].metadata["step"] == 2


async def test_thread_ids_are_strings_whatever_given(h: Harness) -> None:
    tid = 12345 + hash(new_thread()) % 1000
    stored = await h.put({"configurable": {"thread_id": tid}}, checkpoint({"a": 1}), {}, {"a": 1})
    assert stored["configurable"]["thread_id"] == str(tid)
    got = await h.get_tuple({"configurable": {"thread_id": str(tid)}})
    assert got is not None and got.checkpoint["channel_values"] == {"a": 1}
    await h.delete_thread(str(tid))


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"configurable": {}},
        {"configurable": {"thread_id": ""}},
        {"configurable": {"thread_id": None}},
        {"configurable": {"thread_id": "t", "checkpoint_ns": 5}},
        None,
    ],
    ids=["no-configurable", "no-thread", "empty-thread", "none-thread", "bad-ns", "none"],
)
async def test_malformed_config_names_what_is_missing(h: Harness, bad: object) -> None:
    with pytest.raises(ConfigError, match=r"thread_id|configurable|checkpoint_ns|config must be"):
        await h.get_tuple(bad)  # type: ignore[arg-type]
    with pytest.raises(ValueError):  # ConfigError is a ValueError, as LangGraph users expect
        await h.put(bad, checkpoint(), {}, {})  # type: ignore[arg-type]


async def test_put_writes_needs_a_checkpoint_id(h: Harness) -> None:
    with pytest.raises(ConfigError, match="checkpoint_id"):
        await h.put_writes(config(new_thread()), [("a", 1)], "task")


async def test_unicode_and_nul_survive(h: Harness) -> None:
    tid = f"thread-{new_thread()}-é中 x"
    ns = "sub:ñ"
    value = {"text": "nul\u0000inside", "emoji": "🙂", "key\u0000": "v"}
    stored = await h.put(
        config(tid, ns), checkpoint({"v": value}), {"note": "a\u0000b", "uni": "é中"}, {"v": 1}
    )
    got = await h.get_tuple(stored)
    assert got is not None
    assert got.checkpoint["channel_values"] == {"v": value}
    assert got.metadata["note"] == "a\u0000b" and got.metadata["uni"] == "é中"
    assert got.config["configurable"]["thread_id"] == tid
    await h.delete_thread(tid)
    assert await h.get_tuple(config(tid, ns)) is None


async def test_next_version_format(h: Harness) -> None:
    v1 = h.saver.get_next_version(None, None)
    v2 = h.saver.get_next_version(v1, None)
    assert v1.split(".")[0] == f"{1:032}" and v2.split(".")[0] == f"{2:032}"
    assert v1 < v2
    assert h.saver.get_next_version(7, None).startswith(f"{8:032}.")  # type: ignore[arg-type]

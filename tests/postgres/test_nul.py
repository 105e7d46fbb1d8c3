"""NUL (and what JSONB or `text` refuse) never breaks a write and round-trips exactly."""

from __future__ import annotations

import json
from typing import Any

import psycopg
from hypothesis import given
from hypothesis import strategies as st
from psycopg import sql

from checkpoint_postgres._rows import (
    decode_key,
    decode_version,
    encode_key,
    encode_version,
    filter_param,
    index_json,
)
from tests.conformance.builders import checkpoint, cid, config

from .conftest import Opened, unique

HOSTILE = {
    "plain": "value",
    "nul": "a\x00b",
    "only_nul": "\x00",
    "escape_lookalike": "\\u0000 is not a NUL",
    "soh": "\x01\x02",
    "nested": {"k\x00ey": ["x\x00", {"deep": "\x00\x00"}], "fine": 1},
    "list": ["\x00", 1, 1.5, True, None],
    "emoji": "snake \U0001f40d",
    "lone_surrogate": "\udc80",
}


async def test_metadata_with_nul_round_trips(
    opened: Opened, admin: psycopg.Connection[Any]
) -> None:
    h = opened.h
    thread = unique()
    stored = await h.put(config(thread), checkpoint({"a": "x\x00y"}), dict(HOSTILE), {"a": 1})
    await h.put_writes(stored, [("a", "w\x00")], "task\x00id")

    got = await h.get_tuple(config(thread))
    assert got is not None
    for key, value in HOSTILE.items():
        assert got.metadata[key] == value  # type: ignore[literal-required]
    assert got.checkpoint["channel_values"] == {"a": "x\x00y"}
    assert got.pending_writes == [("task\x00id", "a", "w\x00")]

    # The stored exact JSON decodes to the same metadata; the index holds a NUL-free copy.
    query = sql.SQL("SELECT metadata, metadata_index FROM {}.checkpoints WHERE checkpoint_id = %s")
    raw, index = admin.execute(
        query.format(sql.Identifier(opened.schema)), (cid(stored),)
    ).fetchone()  # type: ignore[misc]
    assert json.loads(bytes(raw))["nested"] == HOSTILE["nested"]
    assert index["nul"] == "ab" and "k\x00ey" not in index["nested"]


async def test_filters_next_to_nul(opened: Opened) -> None:
    h = opened.h
    thread = unique()
    await h.put(config(thread), checkpoint({"a": 1}), dict(HOSTILE), {"a": 1})
    await h.put(config(thread), checkpoint({"a": 2}, {"a": 2}), {"nul": "ab", "other": 1}, {"a": 2})

    def steps(found: list[Any]) -> list[Any]:
        return [t.checkpoint["channel_values"]["a"] for t in found]

    # Filters with NUL are checked in Python; the stripped "ab" must not match "a\x00b".
    assert steps(await h.list(config(thread), filter={"nul": "a\x00b"})) == [1]
    assert steps(await h.list(config(thread), filter={"nul": "ab"})) == [2]
    assert steps(await h.list(config(thread), filter={"nested": HOSTILE["nested"]})) == [1]
    assert steps(await h.list(config(thread), filter={"plain": "value"})) == [1]
    assert steps(await h.list(config(thread), filter={"emoji": "snake \U0001f40d"})) == [1]
    assert steps(await h.list(config(thread), filter={"lone_surrogate": "\udc80"})) == [1]


async def test_keys_with_nul_and_escape_bytes(opened: Opened) -> None:
    h = opened.h
    base = unique()
    threads = [f"{base}\x00", f"{base}", f"{base}\x01", f"{base}\x00\x01", f"{base}\x02"]
    for thread in threads:
        parent = await h.put(
            config(thread, "ns\x00"),
            checkpoint({"c\x00h": thread}, {"c\x00h": 1}),
            {},
            {"c\x00h": 1},
        )
        await h.put_writes(parent, [("c\x00h", thread)], "t\x01\x00")
    for thread in threads:
        got = await h.get_tuple(config(thread, "ns\x00"))
        assert got is not None
        assert got.config["configurable"]["thread_id"] == thread
        assert got.checkpoint["channel_values"] == {"c\x00h": thread}
        assert got.pending_writes == [("t\x01\x00", "c\x00h", thread)]
    listed = await h.list(None)
    assert sorted(t.config["configurable"]["thread_id"] for t in listed) == sorted(threads)


@given(st.lists(st.text(alphabet=st.sampled_from("\x00\x01\x02ab"), max_size=6), min_size=2))
def test_key_escape_keeps_order_and_round_trips(values: list[str]) -> None:
    encoded = [encode_key(v) for v in values]
    assert [decode_key(e) for e in encoded] == values
    assert all("\x00" not in e for e in encoded)
    by_original = sorted(range(len(values)), key=lambda i: values[i])
    by_encoded = sorted(range(len(values)), key=lambda i: encoded[i].encode())
    assert [values[i] for i in by_original] == [values[i] for i in by_encoded]


def test_index_json_and_filter_param() -> None:
    meta = json.dumps({"a": "x\x00", "b\x00": 1, "c": ["\udc80", "ok"]}).encode()
    assert json.loads(index_json(meta)) == {"a": "x", "c": ["", "ok"]}
    clean = json.dumps({"a": 1}).encode()
    assert index_json(clean) == clean.decode()
    assert filter_param({"a": "x\x00"}) is None
    assert filter_param({"k\x00": 1}) is None
    assert json.loads(filter_param({"a": [1, {"b": None}]}) or "") == {"a": [1, {"b": None}]}
    assert filter_param({}) is None


@given(
    st.one_of(
        st.text(alphabet=st.sampled_from("0123456789.~\x00\x01a"), max_size=40),
        st.builds(
            lambda n, r: f"{n:032}.{r}",
            st.integers(min_value=0, max_value=10**32 - 1),
            st.text(alphabet=st.sampled_from("0123456789.~"), max_size=20),
        ),
    )
)
def test_version_compaction_round_trips(version: str) -> None:
    stored = encode_version(version)
    assert decode_version(stored) == version
    assert "\x00" not in stored


def test_standard_versions_lose_their_padding() -> None:
    version = f"{7:032}.0.5453263427394733"
    assert encode_version(version) == "~7.0.5453263427394733"
    assert encode_version(f"{0:032}.5") == "~.5"
    assert encode_version("~7.1") == "~~7.1"
    assert encode_version("3") == "3"


def test_encoded_versions_are_remembered_within_a_bound() -> None:
    encode_version.cache_clear()
    bound = encode_version.cache_info().maxsize
    assert bound is not None
    versions = [f"{n:032}.0.{n}" for n in range(bound + 3)] + ["~7.1", "3"]
    # Asked twice each, interleaved, past the bound: every answer is the computed one, and
    # the one just computed is answered from the cache when asked again at once.
    for version in versions + versions[::-1]:
        assert encode_version(version) == encode_version.__wrapped__(version)
        hits = encode_version.cache_info().hits
        assert encode_version(version) == encode_version.__wrapped__(version)
        assert encode_version.cache_info().hits == hits + 1
        assert encode_version.cache_info().currsize <= bound
    assert encode_version("~7.1") == "~~7.1"

"""Regression: metadata that JSON would give back changed is refused at put, on the saver core.

Before, `encode_metadata` let `json` turn `{1: "a", "1": "b"}` into `{"1": "b"}` (a value
lost), an IntEnum into an int, and the two surrogates "\\ud83d\\ude00" into one character.
"""

from __future__ import annotations

import enum

import pytest

from checkpoint_base import ConfigError, MemorySaver
from checkpoint_base._convert import encode_metadata, stored_metadata_for

from .builders import checkpoint, config, new_thread


class Level(enum.IntEnum):
    LOW = 1


class Mode(str, enum.Enum):
    FAST = "fast"


@pytest.mark.parametrize(
    "meta",
    [
        {"k": {1: "a", "1": "b"}},
        {"k": [{None: 1}]},
        {"k": Level.LOW},
        {"k": [Mode.FAST]},
        {"k": "\ud83d\ude00"},
        {"\udbff\udfff": 1},
    ],
    ids=["int key", "None key", "IntEnum", "str Enum", "surrogate pair", "pair in key"],
)
def test_unfaithful_metadata_is_refused(meta: dict) -> None:
    with pytest.raises(ConfigError, match="cannot be stored faithfully"):
        encode_metadata(meta)
    with MemorySaver() as saver:
        tid = new_thread()
        with pytest.raises(ConfigError, match="metadata"):
            saver.put(config(tid), checkpoint({"v": 1}), meta, {"v": 1})
        assert saver.get_tuple(config(tid)) is None


def test_json_metadata_still_stored() -> None:
    meta = {"step": 1, "parents": {"": "x"}, "counters": {"ch": (1, 2)}, "s": "\ud800\x00é"}
    assert encode_metadata(meta)  # tuples are JSON arrays (LangGraph writes some)


def test_config_entries_of_subclasses_are_stored_as_plain_values() -> None:
    stored = stored_metadata_for(
        {"configurable": {"thread_id": "t", "mode": Mode.FAST, "level": Level.LOW}}, {}
    )
    assert stored == {"mode": "fast", "level": 1}
    assert [type(v) for v in stored.values()] == [str, int]
    encode_metadata(stored)

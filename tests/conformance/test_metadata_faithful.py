"""Regression: metadata that JSON would give back changed is refused at put, on the saver core.

Before, `encode_metadata` let `json` turn `{1: "a", "1": "b"}` into `{"1": "b"}` (a value
lost) and the two surrogates "\\ud83d\\ude00" into one character. What JSON documents as
its coercions stays accepted: a tuple comes back as a list, an enum as its plain value.
"""

from __future__ import annotations

import enum

import pytest

from checkpoint_base import ConfigError, MemorySaver
from checkpoint_base._metadata import encode_metadata

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
        {"k": {"deep": [{2.5: "x"}]}},
        {"k": "\ud83d\ude00"},
        {"\udbff\udfff": 1},
        {"k": ["ok", {"x": "a\ud83d\ude00"}]},
    ],
    ids=["int key", "None key", "nested float key", "surrogate pair", "pair in key", "nested"],
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
    assert encode_metadata({"emoji": "😀", "Mode": Mode.FAST, "level": Level.LOW})


def test_enum_values_come_back_plain_from_metadata_and_config() -> None:
    with MemorySaver() as saver:
        cfg = config(new_thread())
        cfg["configurable"].update(mode=Mode.FAST, level=Level.LOW)
        stored = saver.put(cfg, checkpoint({"v": 1}), {"k": [Level.LOW]}, {"v": 1})
        got = saver.get_tuple(stored)
        assert got is not None
        plain = {k: got.metadata[k] for k in ("k", "mode", "level")}
        assert plain == {"k": [1], "mode": "fast", "level": 1}
        assert [type(plain["k"][0]), type(plain["mode"]), type(plain["level"])] == [int, str, int]

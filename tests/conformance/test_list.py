"""list: order, before, limit, filters (nested, unicode, NUL, hostile keys), paging."""

from __future__ import annotations

import pytest

from checkpoint_base import ConfigError

from .builders import chain, checkpoint, cid, config, new_thread
from .harness import Harness


async def test_newest_first_with_parent_links(h: Harness) -> None:
    tid = new_thread()
    configs = await chain(h, tid, 6)
    listed = await h.list(config(tid))
    assert [t.config for t in listed] == configs[::-1]
    assert [t.parent_config for t in listed] == [*configs[::-1][1:], None]
    assert [t.checkpoint["channel_values"]["step"] for t in listed] == [5, 4, 3, 2, 1, 0]


async def test_before_and_limit(h: Harness) -> None:
    tid = new_thread()
    configs = await chain(h, tid, 6)
    before = await h.list(config(tid), before=configs[3])
    assert [t.config for t in before] == [configs[2], configs[1], configs[0]]
    page = await h.list(config(tid), before=configs[4], limit=2)
    assert [t.config for t in page] == [configs[3], configs[2]]
    assert [t.config for t in await h.list(config(tid), limit=1)] == [configs[5]]
    assert len(await h.list(config(tid), limit=100)) == 6


async def test_limit_none_zero_negative(h: Harness) -> None:
    tid = new_thread()
    await chain(h, tid, 3)
    assert len(await h.list(config(tid), limit=None)) == 3
    assert await h.list(config(tid), limit=0) == []
    with pytest.raises(ConfigError, match="limit"):
        await h.list(config(tid), limit=-1)


async def test_by_checkpoint_id(h: Harness) -> None:
    tid = new_thread()
    configs = await chain(h, tid, 3)
    found = await h.list(configs[1])
    assert [t.config for t in found] == [configs[1]]


async def test_long_thread_pages_through_everything(h: Harness) -> None:
    tid = new_thread()
    configs = await chain(h, tid, 230)
    listed = await h.list(config(tid))
    assert [t.config for t in listed] == configs[::-1]
    assert [t.config for t in await h.list(config(tid), limit=150)] == configs[::-1][:150]


async def test_all_threads(h: Harness) -> None:
    t1, t2 = new_thread(), new_thread()
    marker = new_thread()
    await chain(h, t1, 2, run=marker)
    await chain(h, t2, 3, run=marker)
    listed = await h.list(None, filter={"run": marker})
    assert len(listed) == 5
    assert {t.config["configurable"]["thread_id"] for t in listed} == {t1, t2}
    ids = [t.config["configurable"]["checkpoint_id"] for t in listed]
    assert ids == sorted(ids, reverse=True)
    assert len(await h.list(None, filter={"run": marker}, limit=4)) == 4


async def test_saver_can_be_used_inside_the_loop(h: Harness) -> None:
    tid = new_thread()
    await chain(h, tid, 120)
    seen = 0
    if h.is_async:
        async for tup in h.saver.alist(config(tid)):
            assert await h.saver.aget_tuple(tup.config) is not None
            await h.saver.aput_writes(tup.config, [("x", seen)], "task")
            seen += 1
    else:
        for tup in h.saver.list(config(tid)):
            assert h.saver.get_tuple(tup.config) is not None
            h.saver.put_writes(tup.config, [("x", seen)], "task")
            seen += 1
    assert seen == 120


FILTER_CASES = [
    ({"source": "input"}, {"a"}),
    ({"step": 1}, {"b"}),
    ({"step": 1, "source": "loop"}, {"b"}),
    ({"step": 1, "source": "input"}, set()),
    ({"nested": {"x": [1, 2], "y": None}}, {"a"}),
    ({"nested": {"x": [1, 2]}}, set()),  # whole-value equality, not containment
    ({"flag": True}, {"b"}),
    ({"flag": 1}, set()),  # booleans are not numbers
    ({"score": 1.5}, {"c"}),
    ({"count": 2.0}, {"c"}),  # 2 == 2.0
    ({"uni": "é中🙂"}, {"a"}),
    ({"nul": "a\u0000b"}, {"c"}),
    ({"missing": None}, set()),  # a missing key never matches
    ({"empty": None}, {"b"}),
    ({"a.b": 1}, {"c"}),  # a dotted key is one literal key, not a path
    ({"$.x": 1}, {"a"}),
    ({"x') OR 1=1 --": 1}, set()),
    ({'q"uote': "v"}, {"b"}),
    ({"tuple": (1, "x")}, {"a"}),  # tuples compare as JSON lists
]


@pytest.mark.parametrize(
    ("flt", "expected"), FILTER_CASES, ids=[str(i) for i in range(len(FILTER_CASES))]
)
async def test_metadata_filter(h: Harness, flt: dict[str, object], expected: set[str]) -> None:
    tid = new_thread()
    metas = {
        "a": {
            "source": "input",
            "step": -1,
            "nested": {"x": [1, 2], "y": None},
            "uni": "é中🙂",
            "$.x": 1,
            "tuple": [1, "x"],
        },
        "b": {"source": "loop", "step": 1, "flag": True, "empty": None, 'q"uote': "v"},
        "c": {"source": "loop", "step": 2, "score": 1.5, "count": 2, "nul": "a\u0000b", "a.b": 1},
    }
    parent = None
    names = {}
    for name, meta in metas.items():
        stored = await h.put(config(tid, "", parent), checkpoint({"n": name}), meta, {"n": 1})
        parent = cid(stored)
        names[parent] = name
    found = await h.list(config(tid), filter=flt)
    assert {names[cid(t.config)] for t in found} == expected
    if expected:
        one = await h.list(config(tid), filter=flt, limit=1)
        assert len(one) == 1 and names[cid(one[0].config)] in expected


async def test_filter_must_be_json(h: Harness) -> None:
    with pytest.raises(ConfigError, match="JSON"):
        await h.list(config(new_thread()), filter={"k": object()})


async def test_filter_sees_config_metadata(h: Harness) -> None:
    tid = new_thread()
    cfg = config(tid)
    cfg["metadata"] = {"user": "ann", "__private": "no"}
    cfg["configurable"]["tenant"] = "acme"
    await h.put(cfg, checkpoint({"a": 1}), {"source": "input", "step": -1}, {"a": 1})
    got = await h.list(config(tid), filter={"user": "ann", "tenant": "acme"})
    assert len(got) == 1
    assert "__private" not in got[0].metadata
    assert "thread_id" not in got[0].metadata


async def test_filter_with_many_keys(h: Harness) -> None:
    """A filter of 1,000 keys (a whole metadata dict passed back as the filter) still lists.

    SQLite refused the statement ("Expression tree is too large (maximum depth 1000)"): each
    key became SQL conditions ANDed together, past SQLite's expression depth.
    """
    tid = new_thread()
    wide = {f"k{i}": i for i in range(1000)}
    hit = await h.put(config(tid), checkpoint({"a": 1}), {**wide, "s": "x"}, {"a": 1})
    await h.put(config(tid), checkpoint({"a": 2}), {**wide, "k999": -1}, {"a": 2})
    got = await h.list(config(tid), filter={**wide, "s": "x"})
    assert [t.config for t in got] == [hit]
    assert [t.config for t in await h.list(None, filter={**wide, "s": "x"})] == [hit]
    assert await h.list(config(tid), filter={**wide, "k999": 999, "s": "y"}) == []

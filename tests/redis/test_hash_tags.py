"""Hash tags from hostile thread ids: one slot per thread, and no thread reaches another's keys."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from redis.crc import key_slot

from checkpoint_redis._keys import Layout, seg, split, unseg

from .conftest import keys_under

HOSTILE = [
    "a",
    "ab",  # "a" is a prefix of it
    "a{b}",
    "{",
    "}",
    "{}",
    "}{",
    "*",
    "a*",
    "?[x]",
    ":",
    "a:b",
    "a b",
    " ",
    "ü",
    "中文🙂",
    "\x00",
    "a\x00b",
    "t" + base64.urlsafe_b64encode(b"a").decode(),  # looks like an encoded tag
    "#0",  # looks like a registry bucket tag
]


def _tag(key: bytes) -> bytes:
    start = key.index(b"{")
    return key[start + 1 : key.index(b"}", start)]


@pytest.mark.parametrize("cluster", [False, True])
def test_every_key_of_a_thread_shares_one_slot(cluster: bool) -> None:
    layout = Layout("app", cluster=cluster)
    tags = set()
    for thread_id in HOSTILE:
        tk = layout.thread(thread_id)
        assert len({key_slot(k) for k in tk.keys}) == 1 if cluster else True
        assert len({_tag(k) for k in tk.keys[:8]}) == 1
        tag = _tag(tk.keys[0])
        assert b"{" not in tag and b"}" not in tag and tag
        tags.add(tag)
        assert unseg(split(tk.member)[0]) == thread_id
    assert len(tags) == len(HOSTILE)


@given(st.text(), st.text())
def test_tags_are_injective(a: str, b: str) -> None:
    layout = Layout("p", cluster=False)
    assert (layout.thread(a).base == layout.thread(b).base) == (a == b)


@given(st.lists(st.text(), min_size=1, max_size=4), st.lists(st.text(), min_size=1, max_size=4))
def test_segments_sort_like_tuples(a: list[str], b: list[str]) -> None:
    ea, eb = b"".join(seg(x) for x in a), b"".join(seg(x) for x in b)
    assert (ea < eb) == (a < b)
    assert (ea == eb) == (a == b)
    assert [unseg(s) for s in split(ea)[:-1]] == a


def test_prefix_cannot_move_the_tag() -> None:
    for bad in ("a{b", "a}b", ""):
        with pytest.raises(ValueError, match="key_prefix"):
            Layout(bad, cluster=False)


def _put_chain(saver: Any, thread_id: str, n: int, ns: str = "") -> list[Any]:
    configs = []
    parent = None
    for step in range(n):
        cp = empty_checkpoint()
        cp["id"] = str(uuid6(clock_seq=step))
        cp["channel_values"] = {"who": thread_id, "step": step}
        cp["channel_versions"] = {"who": "1", "step": str(step + 1)}
        cfg: dict[str, Any] = {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}
        if parent:
            cfg["configurable"]["checkpoint_id"] = parent
        new = {"who": "1", "step": str(step + 1)} if step == 0 else {"step": str(step + 1)}
        stored = saver.put(cfg, cp, {"source": "loop", "step": step, "run_id": thread_id}, new)
        saver.put_writes(stored, [("who", thread_id)], f"task-{thread_id}")
        parent = stored["configurable"]["checkpoint_id"]
        configs.append(stored)
    return configs


def test_hostile_thread_ids_stay_apart(open_saver: Any, raw: Any) -> None:
    saver = open_saver()
    prefix = saver.backend.layout.prefix.decode()
    for thread_id in HOSTILE:
        _put_chain(saver, thread_id, 3)
        _put_chain(saver, thread_id, 1, ns="sub:" + thread_id)
    for thread_id in HOSTILE:
        cfg = {"configurable": {"thread_id": thread_id}}
        listed = list(saver.list(cfg))
        assert len(listed) == 4
        for tup in listed:
            assert tup.config["configurable"]["thread_id"] == thread_id
            assert tup.checkpoint["channel_values"]["who"] == thread_id
            assert tup.pending_writes == [(f"task-{thread_id}", "who", thread_id)]
        latest = saver.get_tuple({"configurable": {"thread_id": thread_id, "checkpoint_ns": ""}})
        assert latest is not None and latest.metadata["step"] == 2
        assert len(list(saver.list(cfg, filter={"run_id": thread_id}))) == 4
    assert len(list(saver.list(None))) == 4 * len(HOSTILE)
    infos = saver.list_threads(limit=1000)
    assert [i.thread_id for i in infos] == sorted(HOSTILE)
    assert all(i.checkpoint_count == 4 for i in infos)

    # Deleting one thread (or one thread's runs) never touches another's keys.
    before = keys_under(raw, prefix)
    victim = "a"
    victim_keys = {k for k in before if _tag(k) == _tag(saver.backend.layout.thread(victim).base)}
    assert victim_keys
    saver.delete_thread(victim)
    after = keys_under(raw, prefix)
    assert not after & victim_keys
    bucket = saver.backend.layout.thread(victim).bucket
    # Only the victim's keys go, and its bucket's registry keys when it was alone there.
    assert {k for k in before - after if _tag(k) != bucket} == victim_keys
    saver.delete_for_runs(["a{b}"])
    for thread_id in HOSTILE:
        expected = 0 if thread_id in (victim, "a{b}") else 4
        assert len(list(saver.list({"configurable": {"thread_id": thread_id}}))) == expected
    assert [i.thread_id for i in saver.list_threads(limit=1000)] == sorted(
        set(HOSTILE) - {victim, "a{b}"}
    )

"""`threads`, `history` and `show` on a real database, in tables and in JSON."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from checkpoint_base import connect
from tests.migration.workload import _GRAPHS

from .conftest import Cli, Filled
from .test_diff import _forked


def _config(thread_id: str, ns: str = "") -> Any:
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": ns}}


def test_threads_table_and_json(cli: Cli, filled: Filled) -> None:
    result = cli("threads", filled.url)
    assert result.status == 0, result.err
    header, *lines = result.out.strip().splitlines()
    assert header.split() == ["THREAD", "CHECKPOINTS", "NAMESPACES", "SIZE", "LAST", "UPDATE"]
    assert sorted(line.split()[0] for line in lines) == filled.work.thread_ids

    data = json.loads(cli("threads", filled.url, "--json").out)
    with connect(filled.url) as saver:
        for info in data:
            stored = list(saver.list({"configurable": {"thread_id": info["thread_id"]}}))
            assert info["checkpoint_count"] == len(stored)
            assert set(info["namespaces"]) == {
                t.config["configurable"]["checkpoint_ns"] for t in stored
            }
            assert info["updated_at"] > 0 and info["last_checkpoint_id"]
    waiting = [t for t in filled.work.thread_ids if "pipeline-waiting" in t]
    namespaces = next(i["namespaces"] for i in data if i["thread_id"] == waiting[0])
    assert len(namespaces) == 2 and namespaces[0] == ""


def test_threads_paging(cli: Cli, filled: Filled) -> None:
    first = cli("threads", filled.url, "--limit", "3")
    assert first.status == 0
    assert "more threads: --after" in first.out
    after = first.out.strip().splitlines()[-1].split("--after ")[1]
    rest = json.loads(cli("threads", filled.url, "--after", after, "--json").out)
    assert [t["thread_id"] for t in rest] == filled.work.thread_ids[3:]


def test_history_next_nodes_match_langgraph(cli: Cli, filled: Filled) -> None:
    with connect(filled.url) as saver:
        for thread_id, (graph_name, _) in filled.work.threads.items():
            graph = _GRAPHS[graph_name](saver)
            expected = [
                (s.config["configurable"]["checkpoint_id"], sorted(s.next), s.metadata["step"])
                for s in graph.get_state_history(_config(thread_id))
            ]
            result = cli("history", filled.url, thread_id, "--json")
            assert result.status == 0, result.err
            got = [
                (e["checkpoint_id"], sorted(e["next"]), e["step"]) for e in json.loads(result.out)
            ]
            assert got == expected, thread_id


def test_history_table(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    result = cli("history", filled.url, thread_id)
    assert result.status == 0
    lines = result.out.strip().splitlines()
    assert lines[0].startswith(f"thread {thread_id}")
    headers = ["STEP", "SOURCE", "CREATED", "CHANGED", "NEXT", "WRITES", "CHECKPOINT"]
    assert lines[1].split() == headers
    steps = [line.split()[0] for line in lines[2:]]
    assert steps == ["4", "3", "2", "1", "0", "-1"]
    assert lines[2].split()[4:6] == ["messages", "-"]  # the answer; nothing runs next
    assert lines[-1].split()[4:6] == ["-", "__start__"]  # the input: LangGraph's channel only


def _changed_by_versions(saver: Any, thread_id: str) -> list[tuple[str, list[str]]]:
    """Each checkpoint's id (newest first, through the saver's `list`) and the channels whose
    version differs from its parent's."""
    states = list(saver.list(_config(thread_id)))
    versions = {s.config["configurable"]["checkpoint_id"]: s.checkpoint["channel_versions"]
                for s in states}  # fmt: skip
    changed = []
    for s in states:
        mine = s.checkpoint["channel_versions"]
        parent = (
            versions[s.parent_config["configurable"]["checkpoint_id"]] if s.parent_config else {}
        )
        changed.append((s.config["configurable"]["checkpoint_id"],
                        sorted(k for k, v in mine.items() if parent.get(k) != v)))  # fmt: skip
    return changed


def test_history_changed_channels_match_the_versions(
    cli: Cli, filled: Filled, tmp_path: Path
) -> None:
    official = f"langgraph-sqlite:///{tmp_path / 'official.db'}"
    assert cli("migrate", filled.url, official).status == 0
    with connect(filled.url) as saver:
        for thread_id in filled.work.thread_ids:
            expected = _changed_by_versions(saver, thread_id)
            assert any(channels for _, channels in expected), thread_id
            for url in (filled.url, official):
                result = cli("history", url, thread_id, "--json")
                assert result.status == 0, result.err
                got = [(e["checkpoint_id"], e["changed"]) for e in json.loads(result.out)]
                assert got == expected, (url, thread_id)
                # Past --limit, the oldest shown still compares with its (unshown) parent.
                two = json.loads(cli("history", url, thread_id, "--json", "--limit", "2").out)
                assert [(e["checkpoint_id"], e["changed"]) for e in two] == expected[:2]


def test_history_of_a_checkpoint_whose_parent_was_pruned(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    with connect(filled.url) as saver:
        saver.prune([thread_id], strategy="keep_latest")
    entries = json.loads(cli("history", filled.url, thread_id, "--json").out)
    assert len(entries) == 1 and entries[0]["parent_checkpoint_id"] is not None
    assert entries[0]["changed"] is None  # unknown: nothing to compare with
    lines = cli("history", filled.url, thread_id).out.strip().splitlines()
    assert lines[2].split()[4:6] == ["?", "-"]


def test_history_of_a_subgraph_namespace(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "pipeline-waiting" in t)
    data = json.loads(cli("threads", filled.url, "--json").out)
    ns = next(i for i in data if i["thread_id"] == thread_id)["namespaces"][1]
    result = cli("history", filled.url, thread_id, "--ns", ns, "--json")
    assert result.status == 0, result.err
    entries = json.loads(result.out)
    assert entries and entries[0]["next"] == ["ask"]  # the subgraph waits in `ask`


def test_show_latest_readable(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    result = cli("show", filled.url, thread_id)
    assert result.status == 0, result.err
    assert "HumanMessage: What is 12 * 7?" in result.out
    assert 'AIMessage: calls calculator({"expression": "12 * 7"})' in result.out
    assert "AIMessage: The answer is 84." in result.out
    assert "approvals: ['calculator(12 * 7): approved']" in result.out


def test_show_json_matches_the_saver(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-waiting" in t)
    with connect(filled.url) as saver:
        tuples = list(saver.list(_config(thread_id)))
    for tup in tuples:
        cid = tup.config["configurable"]["checkpoint_id"]
        result = cli("show", filled.url, thread_id, cid, "--json")
        assert result.status == 0, result.err
        doc = json.loads(result.out)
        assert doc["checkpoint_id"] == cid
        assert doc["metadata"] == tup.metadata
        assert set(doc["values"]) == set(tup.checkpoint["channel_values"])
        assert [(w["task_id"], w["channel"]) for w in doc["pending_writes"]] == [
            (t, c) for t, c, _ in tup.pending_writes or ()
        ]
        parent = tup.parent_config["configurable"]["checkpoint_id"] if tup.parent_config else None
        assert doc["parent_checkpoint_id"] == parent
    latest = json.loads(cli("show", filled.url, thread_id, "--json").out)
    assert latest["next"] == ["approve"]
    interrupt = next(w for w in latest["pending_writes"] if w["channel"] == "__interrupt__")
    assert interrupt["value"][0]["value"]["question"] == "Run this tool call?"
    messages = latest["values"]["messages"]
    assert [m["__type__"] for m in messages] == ["HumanMessage", "AIMessage"]


def test_show_pipeline_values_of_every_kind(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "pipeline-done" in t)
    doc = json.loads(cli("show", filled.url, thread_id, "--json").out)
    values = doc["values"]
    assert values["data"] == {"__bytes__": "AAFyYXc="}
    assert values["when"] == "2024-05-04T06:32:42+00:00"
    assert values["count"] == 4 and values["answer"] == "yes"
    assert values["log"][-1] == "done:yes"
    readable = cli("show", filled.url, thread_id)
    assert "count: 4" in readable.out
    assert "answer: 'yes'" in readable.out


def test_show_hides_internal_channels_unless_asked(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-waiting" in t)
    plain = cli("show", filled.url, thread_id)
    assert "branch:to:approve" not in plain.out
    assert "(1 internal channels hidden: --all shows them)" in plain.out
    everything = cli("show", filled.url, thread_id, "--all")
    assert "branch:to:approve: None" in everything.out
    assert "hidden" not in everything.out


def test_history_and_show_read_the_same_from_official_storage(
    cli: Cli, filled: Filled, tmp_path: Path
) -> None:
    """On LangGraph's own SQLite tables (and so on any side that is not a saver of this
    package), `history` reads the namespace's keys, then only the checkpoints it shows."""
    official = f"langgraph-sqlite:///{tmp_path / 'official.db'}"
    assert cli("migrate", filled.url, official).status == 0
    thread_id = next(t for t in filled.work.thread_ids if "pipeline-waiting" in t)
    data = json.loads(cli("threads", filled.url, "--json").out)
    for ns in next(i for i in data if i["thread_id"] == thread_id)["namespaces"]:
        for limit in ("2", "50"):
            args = ("history", thread_id, "--ns", ns, "--limit", limit, "--json")
            ours, theirs = cli(args[0], filled.url, *args[1:]), cli(args[0], official, *args[1:])
            assert ours.status == theirs.status == 0, theirs.err
            mine, others = json.loads(ours.out), json.loads(theirs.out)
            assert [e["checkpoint_id"] for e in others] == [e["checkpoint_id"] for e in mine]
            assert [e["next"] for e in others] == [e["next"] for e in mine]
        oldest = mine[-1]["checkpoint_id"]
        for picked in ((), (oldest,)):
            shown = [
                cli("show", url, thread_id, *picked, "--ns", ns, "--json")
                for url in (filled.url, official)
            ]
            assert shown[0].status == shown[1].status == 0, shown[1].err
            a, b = (json.loads(s.out) for s in shown)
            assert (a["checkpoint_id"], a["values"]) == (b["checkpoint_id"], b["values"])
    missing = cli("show", official, thread_id, "no-such-id")
    assert missing.status != 0 and "no checkpoint 'no-such-id'" in missing.err


def test_a_url_with_a_ttl_is_read_without_sweeping(cli: Cli, filled: Filled) -> None:
    """The application's URL may say how long idle threads live (`?ttl=`); a command reads
    the store and never sweeps it. Every thread here is idle for longer than that ttl, so a
    sweeper would delete them all."""
    url = f"{filled.url}?ttl=0.001&sweep_every=0.001"
    time.sleep(0.01)
    for _ in range(3):
        result = cli("threads", url)
        assert result.status == 0, result.err
        time.sleep(0.01)
    with connect(filled.url) as saver:
        assert sorted(t.thread_id for t in saver.list_threads()) == filled.work.thread_ids


def test_history_of_a_fork_compares_with_a_parent_past_the_page(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    with connect(url) as saver:
        _, first = _forked(saver)
        expected = _changed_by_versions(saver, "t")
    # LangGraph writes the replay as a fork of step 0 (step 1), then the replayed step 2.
    shown = json.loads(cli("history", url, "t", "--json", "--limit", "2").out)
    assert [e["step"] for e in shown] == [2, 1]
    # The fork's parent, step 0, is not on the page (the first run's step 1 is): read alone.
    assert shown[1]["parent_checkpoint_id"] == first.config["configurable"]["checkpoint_id"]
    assert [(e["checkpoint_id"], e["changed"]) for e in shown] == expected[:2]
    assert "n" in shown[0]["changed"]

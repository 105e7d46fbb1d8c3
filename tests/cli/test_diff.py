"""`checkpointers diff`: the channels that changed between two checkpoints of a thread."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, TypedDict

from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.graph import END, START, MessagesState, StateGraph

from checkpoint_base import connect
from checkpoint_base._cli_inspect import jsonable

from .conftest import Cli, Filled, assert_one_line_error


def _config(thread_id: str, ns: str = "", checkpoint_id: str | None = None) -> Any:
    conf: dict[str, Any] = {"thread_id": thread_id, "checkpoint_ns": ns}
    if checkpoint_id is not None:
        conf["checkpoint_id"] = checkpoint_id
    return {"configurable": conf}


class _Count(TypedDict):
    n: int


def _counter(saver: Any) -> Any:
    """START -> inc -> END on `n`, compiled on `saver`."""
    builder = StateGraph(_Count)
    builder.add_node("inc", lambda s: {"n": s["n"] + 1})
    builder.add_edge(START, "inc")
    builder.add_edge("inc", END)
    return builder.compile(checkpointer=saver)


def _forked(saver: Any) -> tuple[Any, Any]:
    """Thread "t" of `_counter` run once, then replayed from its step 0 (LangGraph writes a
    fork of step 0 as a second step 1): the graph and step 0's state."""
    graph = _counter(saver)
    graph.invoke({"n": 1}, _config("t"))
    first = next(s for s in graph.get_state_history(_config("t")) if s.metadata["step"] == 0)
    graph.invoke(None, first.config)
    return graph, first


def _apply(before: dict[str, Any], changes: list[dict[str, Any]]) -> dict[str, Any]:
    """The values `changes` (diff --json) make of `before` (both as JSON)."""
    values = dict(before)
    for change in changes:
        name = change["channel"]
        if "items" in change:
            items = list(values[name])
            assert len(items) == change["items"][0], name
            for removed in sorted(change["removed"], key=lambda r: r["index"], reverse=True):
                assert items[removed["index"]] == removed["value"], name
                del items[removed["index"]]
            for added in sorted(change["added"], key=lambda a: a["index"]):
                items.insert(added["index"], added["value"])
            assert len(items) == change["items"][1], name
            values[name] = items
        elif change["change"] == "removed":
            assert values.pop(name) == change["before"], name
        else:
            assert values.get(name) == change.get("before"), name
            values[name] = change["after"]
    return values


def test_diff_of_every_step_turns_its_parent_into_it(cli: Cli, filled: Filled) -> None:
    """Every checkpoint of every thread and namespace against its parent: the changes the
    command lists, applied to the parent's values, give the checkpoint's values, and every
    channel it lists did change."""
    compared = 0
    with connect(filled.url) as saver:
        for thread_id in filled.work.thread_ids:
            namespaces = {
                t.config["configurable"]["checkpoint_ns"]
                for t in saver.list({"configurable": {"thread_id": thread_id}})
            }
            for ns in sorted(namespaces):
                for tup in saver.list(_config(thread_id, ns)):
                    if tup.parent_config is None:
                        continue
                    cid = tup.config["configurable"]["checkpoint_id"]
                    parent = saver.get_tuple(tup.parent_config)
                    assert parent is not None
                    result = cli("diff", filled.url, thread_id, cid, "--ns", ns, "--json")
                    assert result.status == 0, result.err
                    doc = json.loads(result.out)
                    assert (
                        doc["from"]["checkpoint_id"]
                        == parent.config["configurable"]["checkpoint_id"]
                    )
                    assert doc["to"]["checkpoint_id"] == cid
                    assert doc["to"]["step"] == tup.metadata["step"]
                    before = jsonable(parent.checkpoint["channel_values"])
                    after = jsonable(tup.checkpoint["channel_values"])
                    assert _apply(before, doc["changes"]) == after
                    for change in doc["changes"]:
                        name = change["channel"]
                        assert before.get(name, "absent") != after.get(name, "absent"), name
                    compared += 1
    assert compared >= 20


def test_diff_with_no_ids_is_the_last_step(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    with connect(filled.url) as saver:
        latest = saver.get_tuple(_config(thread_id))
    assert latest is not None and latest.parent_config is not None
    doc = json.loads(cli("diff", filled.url, thread_id, "--json").out)
    assert doc["to"]["checkpoint_id"] == latest.config["configurable"]["checkpoint_id"]
    assert doc["from"]["checkpoint_id"] == latest.parent_config["configurable"]["checkpoint_id"]
    assert doc["from"]["next"] == ["agent"] and doc["to"]["next"] == []

    result = cli("diff", filled.url, thread_id)
    assert result.status == 0, result.err
    lines = result.out.splitlines()
    assert lines[0].split() == ["thread", thread_id, "namespace", "''"]
    assert lines[1].startswith("from    " + doc["from"]["checkpoint_id"])
    assert lines[2].startswith("to      " + doc["to"]["checkpoint_id"])
    assert lines[3:] == [
        "  messages: 3 → 4 items (1 added)",
        "    + [3] AIMessage: The answer is 84.",
        "(1 internal channel changed: --all shows them)",
    ]
    everything = cli("diff", filled.url, thread_id, "--all").out.splitlines()
    assert everything[5:] == ["  branch:to:agent: removed", "    - None"]


def test_diff_between_two_ids_either_way(cli: Cli, filled: Filled) -> None:
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    with connect(filled.url) as saver:
        tuples = list(saver.list(_config(thread_id)))
    first, latest = tuples[-1], tuples[0]
    first_id = first.config["configurable"]["checkpoint_id"]
    latest_id = latest.config["configurable"]["checkpoint_id"]

    doc = json.loads(cli("diff", filled.url, thread_id, first_id, latest_id, "--json").out)
    assert (doc["from"]["checkpoint_id"], doc["to"]["checkpoint_id"]) == (first_id, latest_id)
    first_values = jsonable(first.checkpoint["channel_values"])
    latest_values = jsonable(latest.checkpoint["channel_values"])
    assert _apply(first_values, doc["changes"]) == latest_values

    lines = cli(
        "diff", filled.url, thread_id, tuples[-2].config["configurable"]["checkpoint_id"], latest_id
    ).out.splitlines()
    assert lines[3:7] == [
        "  messages: 1 → 4 items (3 added)",
        '    + [1] AIMessage: calls calculator({"expression": "12 * 7"})',
        "    + [2] ToolMessage: 84",
        "    + [3] AIMessage: The answer is 84.",
    ]

    backwards = cli("diff", filled.url, thread_id, latest_id, first_id, "--json")
    undo = json.loads(backwards.out)
    assert _apply(latest_values, undo["changes"]) == first_values
    kinds = {c["channel"]: c["change"] for c in undo["changes"]}
    assert kinds["messages"] == "removed" and kinds["__start__"] == "added"

    same = cli("diff", filled.url, thread_id, first_id, first_id)
    assert same.status == 0, same.err
    assert same.out.splitlines()[3:] == ["no channel changed"]
    assert_one_line_error(
        cli("diff", filled.url, thread_id, "x-none", first_id), "'x-none'", "history URL"
    )


def test_diff_of_a_first_checkpoint_lists_every_channel_as_added(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'one.db'}"
    with connect(url) as saver:
        _counter(saver).invoke({"n": 1}, _config("t"))
        first = list(saver.list(_config("t")))[-1]
    first_id = first.config["configurable"]["checkpoint_id"]
    doc = json.loads(cli("diff", url, "t", first_id, "--json").out)
    assert doc["from"] is None and doc["to"]["checkpoint_id"] == first_id
    assert doc["changes"] == [{"channel": "__start__", "change": "added", "after": {"n": 1}}]
    text = cli("diff", url, "t", first_id, "--all").out.splitlines()
    assert text[1] == "from    (nothing: no checkpoint before it)"
    assert text[3:] == ["  __start__: added", "    + {'n': 1}"]
    result = cli("diff", url, "t", "--json")
    assert result.status == 0, result.err
    latest = json.loads(result.out)
    assert [(c["channel"], c["change"]) for c in latest["changes"]] == [
        ("n", "changed"),
        ("branch:to:inc", "removed"),  # --json lists LangGraph's internal channels too
    ]
    assert (latest["changes"][0]["before"], latest["changes"][0]["after"]) == (1, 2)
    readable = cli("diff", url, "t").out.splitlines()
    assert readable[3:] == [
        "  n: changed",
        "    - 1",
        "    + 2",
        "(1 internal channel changed: --all shows them)",
    ]


def test_diff_of_a_multi_line_value_shows_the_lines_that_changed(cli: Cli, tmp_path: Path) -> None:
    class State(TypedDict):
        settings: dict[str, str]

    def tune(state: State) -> dict[str, Any]:
        return {"settings": {**state["settings"], "model": "large-" + "x" * 40}}

    url = f"sqlite:///{tmp_path / 'dict.db'}"
    start = {f"key-{i}": f"value {i} " + "y" * 40 for i in range(5)}
    start["model"] = "small-" + "x" * 40
    with connect(url) as saver:
        builder = StateGraph(State)
        builder.add_node("tune", tune)
        builder.add_edge(START, "tune")
        builder.add_edge("tune", END)
        builder.compile(checkpointer=saver).invoke({"settings": start}, _config("t"))
    lines = cli("diff", url, "t").out.splitlines()[3:]
    assert lines == [
        "  settings: changed",
        "    …",  # the lines of key-0 to key-3: unchanged, and not next to the change
        f"       'key-4': 'value 4 {'y' * 40}',",
        f"    -  'model': 'small-{'x' * 40}'}}",
        f"    +  'model': 'large-{'x' * 40}'}}",
        "(1 internal channel changed: --all shows them)",
    ]


def test_diff_errors_name_what_is_missing(cli: Cli, filled: Filled) -> None:
    thread_id = filled.work.thread_ids[0]
    assert_one_line_error(cli("diff", filled.url, "no-such-thread"), "'no-such-thread'")
    assert_one_line_error(
        cli("diff", filled.url, thread_id, "--ns", "nowhere"), "'nowhere'", "it has: ''"
    )
    assert_one_line_error(
        cli("diff", filled.url, thread_id, "bad-id"), "no checkpoint 'bad-id'", "history"
    )
    # A step of a thread or namespace that does not exist says that, not "no such step".
    assert_one_line_error(cli("diff", filled.url, "no-such-thread", "2"), "no thread")
    assert_one_line_error(
        cli("show", filled.url, thread_id, "2", "--ns", "nowhere"), "no namespace 'nowhere'"
    )


def test_diff_reads_the_same_from_official_storage(
    cli: Cli, filled: Filled, tmp_path: Path
) -> None:
    official = f"langgraph-sqlite:///{tmp_path / 'official.db'}"
    assert cli("migrate", filled.url, official).status == 0
    for thread_id in filled.work.thread_ids:
        ours = cli("diff", filled.url, thread_id, "--json")
        theirs = cli("diff", official, thread_id, "--json")
        assert ours.status == theirs.status == 0, theirs.err
        mine, others = json.loads(ours.out), json.loads(theirs.out)
        assert mine["changes"], thread_id
        for doc in (mine, others):  # LangGraph's tables keep no time of their own for a row
            for end in ("from", "to"):
                del doc[end]["created_at"]
        assert others == mine


def test_diff_of_a_message_list_that_lost_one(cli: Cli, tmp_path: Path) -> None:
    def trim(state: MessagesState) -> dict[str, Any]:
        first = state["messages"][0]
        return {"messages": [RemoveMessage(id=first.id or ""), AIMessage("c", id="m-c")]}

    url = f"sqlite:///{tmp_path / 'trim.db'}"
    with connect(url) as saver:
        builder = StateGraph(MessagesState)
        builder.add_node("trim", trim)
        builder.add_edge(START, "trim")
        builder.add_edge("trim", END)
        graph = builder.compile(checkpointer=saver)
        graph.invoke(
            {"messages": [HumanMessage("a", id="m-a"), HumanMessage("b", id="m-b")]}, _config("t")
        )
    lines = cli("diff", url, "t").out.splitlines()[3:]
    assert lines == [
        "  messages: 2 → 2 items (1 removed, 1 added)",
        "    - [0] HumanMessage: a",
        "    + [1] AIMessage: c",
        "(1 internal channel changed: --all shows them)",
    ]
    change = json.loads(cli("diff", url, "t", "--json").out)["changes"][0]
    assert change["items"] == [2, 2]
    assert [(r["index"], r["value"]["id"]) for r in change["removed"]] == [(0, "m-a")]
    assert [(a["index"], a["value"]["id"]) for a in change["added"]] == [(1, "m-c")]


def test_a_step_number_names_a_checkpoint(cli: Cli, filled: Filled, tmp_path: Path) -> None:
    """`show` and `diff` take the step `history` shows for an id: from the saver's filtered
    pages on ours, from the namespace's rows on LangGraph's own tables."""
    thread_id = next(t for t in filled.work.thread_ids if "agent-done" in t)
    official = f"langgraph-sqlite:///{tmp_path / 'official.db'}"
    assert cli("migrate", filled.url, official, "--thread", thread_id).status == 0
    with connect(filled.url) as saver:
        by_step = {
            t.metadata["step"]: t.config["configurable"]["checkpoint_id"]
            for t in saver.list(_config(thread_id))
        }
    assert sorted(by_step) == [-1, 0, 1, 2, 3, 4]
    for url in (filled.url, official):
        for step in (-1, 2, 4):
            doc = json.loads(cli("show", url, thread_id, str(step), "--json").out)
            assert doc["checkpoint_id"] == by_step[step], (url, step)
        by_ids = cli("diff", url, thread_id, by_step[0], by_step[3], "--json")
        by_steps = cli("diff", url, thread_id, "0", "3", "--json")
        assert by_steps.status == 0, by_steps.err
        assert json.loads(by_steps.out) == json.loads(by_ids.out)
        assert_one_line_error(
            cli("show", url, thread_id, "9"), "has no checkpoint of step 9", "history URL"
        )


def test_a_step_of_a_forked_history_is_named_by_id(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'fork.db'}"
    with connect(url) as saver:
        graph, _ = _forked(saver)
        ones = sorted(
            s.config["configurable"]["checkpoint_id"]
            for s in graph.get_state_history(_config("t"))
            if s.metadata["step"] == 1
        )
    assert len(ones) == 2
    result = cli("diff", url, "t", "1")
    assert_one_line_error(result, "has 2 checkpoints of step 1", ones[0], ones[1], "by its id")
    shown = json.loads(cli("show", url, "t", ones[0], "--json").out)
    assert shown["checkpoint_id"] == ones[0]


def test_a_checkpoint_id_that_looks_like_a_step_is_an_id(cli: Cli, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'ids.db'}"
    with connect(url) as saver:
        checkpoint = empty_checkpoint()
        checkpoint["id"] = "7"
        saver.put(_config("t"), checkpoint, {"source": "input", "step": 3}, {})
    assert json.loads(cli("show", url, "t", "7", "--json").out)["checkpoint_id"] == "7"
    assert json.loads(cli("show", url, "t", "3", "--json").out)["checkpoint_id"] == "7"


def test_a_step_that_changed_only_internal_channels_says_so(cli: Cli, tmp_path: Path) -> None:
    builder = StateGraph(_Count)
    builder.add_node("look", lambda s: {})
    builder.add_edge(START, "look")
    builder.add_edge("look", END)
    url = f"sqlite:///{tmp_path / 'noop.db'}"
    with connect(url) as saver:
        builder.compile(checkpointer=saver).invoke({"n": 1}, _config("t"))
    lines = cli("diff", url, "t").out.splitlines()[3:]
    assert lines == [
        "no channel of the state changed",
        "(1 internal channel changed: --all shows them)",
    ]
    assert cli("diff", url, "t", "--all").out.splitlines()[3:] == [
        "  branch:to:look: removed",
        "    - None",
    ]

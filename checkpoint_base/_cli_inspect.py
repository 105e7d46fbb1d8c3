"""`checkpointers threads | history | show`: look at what a checkpointer stores."""

from __future__ import annotations

import argparse
import base64
import dataclasses
import datetime
import enum
import heapq
import json
import pprint
import re
import sys
import time
from collections.abc import Mapping, Sequence
from typing import Any, TextIO

from langgraph.checkpoint.base import CheckpointTuple

from ._cli_format import Style, format_age, format_bytes, format_time, table
from ._cli_open import add_allow_argument, allow_types, every_thread, missing_thread, open_side
from ._convert import (
    UNREADABLE,
    blob_map,
    damaged_row,
    load_channel,
    to_tuple,
)
from ._errors import ConfigError
from ._metadata import decode_metadata
from ._migrate_side import SaverSide, Side
from ._records import EMPTY, CheckpointRow, ListQuery, ThreadInfo

__all__ = [
    "add_decoding_options",
    "add_inspect_commands",
    "internal_channel",
    "jsonable",
    "largest_threads",
    "message_line",
    "next_nodes",
    "one_row",
    "readable",
    "row_next",
]

_TASKS = "__pregel_tasks"
_BRANCH = "branch:to:"


def _namespace_ids(side: Side, thread_id: str, ns: str) -> list[str]:
    """The checkpoint ids of one namespace of a thread, oldest first (from its keys alone),
    or an error that says what the thread has."""
    links = side.run(side.thread_keys(thread_id))
    if not links:
        raise missing_thread(side, thread_id)
    ids = sorted(cid for n, cid, _parent in links if n == ns)
    if not ids:
        namespaces = sorted({n for n, _cid, _parent in links})
        raise ConfigError(
            f"thread {thread_id!r} has no namespace {ns!r}; it has: "
            + ", ".join(repr(n) for n in namespaces)
        )
    return ids


def _namespace_rows(side: Side, thread_id: str, ns: str, limit: int) -> list[CheckpointRow]:
    """The newest checkpoints of one namespace, newest first: at least `limit + 1` when there
    are that many (a saver of this package reads one page; other sides the thread's keys,
    then those checkpoints alone)."""
    if isinstance(side, SaverSide):
        query = ListQuery(thread_id=thread_id, checkpoint_ns=ns, limit=limit + 1)
        page: list[CheckpointRow] = side.run(side.saver.backend.list_page(query))
        if page:
            return page
    newest = _namespace_ids(side, thread_id, ns)[::-1][: limit + 1]
    rows = side.run(side.read_checkpoints(thread_id, [(ns, cid) for cid in newest]))
    return sorted(rows, key=lambda r: r.checkpoint.checkpoint_id, reverse=True)


_STEP = re.compile(r"-?[0-9]+")
_PAGE = 100


def _step_of(row: CheckpointRow) -> Any:
    try:
        return decode_metadata(row.checkpoint.metadata).get("step")
    except UNREADABLE:  # damaged metadata: no step to match; reading the row says more
        return None


def _at_step(side: Side, thread_id: str, ns: str, step: int, ids: list[str]) -> str:
    """The id of the checkpoint of `step` in a namespace (the step `history` shows), or an
    error that says what the namespace has: no such step, or several checkpoints of it (a
    graph resumed from an earlier checkpoint forks its history). `ids`: the namespace's."""
    found: list[str] = []
    if isinstance(side, SaverSide):
        cursor = None
        while True:  # pages filtered by the backend where it can; every row checked here
            query = ListQuery(thread_id, ns, None, None, cursor, {"step": step}, _PAGE)
            page: list[CheckpointRow] = side.run(side.saver.backend.list_page(query))
            found += [r.checkpoint.checkpoint_id for r in page if _step_of(r) == step]
            if len(page) < _PAGE:
                break
            last = page[-1].checkpoint
            cursor = (last.checkpoint_id, last.thread_id, last.checkpoint_ns)
    else:
        for start in range(0, len(ids), _PAGE):
            keys = [(ns, cid) for cid in ids[start : start + _PAGE]]
            rows = side.run(side.read_checkpoints(thread_id, keys))
            found += [r.checkpoint.checkpoint_id for r in rows if _step_of(r) == step]
    if len(found) == 1:
        return found[0]
    where = f"thread {thread_id!r} namespace {ns!r}"
    if not found:
        raise ConfigError(
            f"{where} has no checkpoint of step {step}; list them with: "
            f"checkpointers history URL {thread_id}"
        )
    found.sort(reverse=True)
    raise ConfigError(
        f"{where} has {len(found)} checkpoints of step {step} (a graph resumed from an "
        f"earlier checkpoint forks the history): {', '.join(found)}; name one by its id"
    )


def one_row(side: Side, thread_id: str, ns: str, checkpoint_id: str | None) -> CheckpointRow:
    """One checkpoint (the namespace's latest when no id), or an error that says what exists.

    `checkpoint_id` may also be a step number (`3`, `-1`): the checkpoint of that step.
    """
    if isinstance(side, SaverSide):
        row = side.run(side.saver.backend.get(thread_id, ns, checkpoint_id))
        if row is not None:
            return row
    ids = _namespace_ids(side, thread_id, ns)
    wanted = ids[-1] if checkpoint_id is None else checkpoint_id
    # A number that no checkpoint has as its id (LangGraph's are UUIDs) names a step.
    if wanted not in ids and _STEP.fullmatch(wanted):
        wanted = _at_step(side, thread_id, ns, int(wanted), ids)
    rows = side.run(side.read_checkpoints(thread_id, [(ns, wanted)])) if wanted in ids else []
    if not rows:
        raise ConfigError(
            f"thread {thread_id!r} has no checkpoint {wanted!r} in namespace {ns!r}; "
            f"list them with: checkpointers history URL {thread_id}"
        )
    return rows[0]


def _newer(version: Any, seen: Any) -> bool:
    if seen is None:
        return True
    try:
        return bool(version > seen)
    except TypeError:
        return str(version) > str(seen)


def next_nodes(
    body: Mapping[str, Any], has_value: Mapping[str, bool], sends: Sequence[Any]
) -> list[str]:
    """The nodes LangGraph would run next from a checkpoint, without the graph.

    A node runs when its trigger channel (`branch:to:NODE`, or `__start__` for the input)
    holds a value at a version the node has not seen (`versions_seen`); each `Send` packet in
    `__pregel_tasks` is a task of its node. This matches `StateSnapshot.next` for graphs
    built with `StateGraph` (edges, conditional edges, `Send`, interrupts); a graph with
    other trigger channels may run nodes this does not list.
    """
    versions = body.get("channel_versions") or {}
    seen = body.get("versions_seen") or {}
    nodes = set()
    for channel, version in versions.items():
        if channel.startswith(_BRANCH):
            node = channel[len(_BRANCH) :]
        elif channel == "__start__":
            node = "__start__"
        else:
            continue
        if has_value.get(channel) and _newer(version, (seen.get(node) or {}).get(channel)):
            nodes.add(node)
    return sorted(nodes) + [str(getattr(p, "node", p)) for p in sends]


def row_next(side: Side, row: CheckpointRow, body: Mapping[str, Any]) -> list[str]:
    rec = row.checkpoint
    blobs = blob_map(row)
    has_value = {}
    sends: list[Any] = []
    for channel, version in rec.channel_versions.items():
        blob = blobs.get((channel, version))
        has_value[channel] = blob is not None and blob.type != EMPTY
        if channel == _TASKS:
            sends = list(load_channel(side.serde, blob, blobs)[1] or ())
    return next_nodes(body, has_value, sends)


# -- threads -----------------------------------------------------------------------------------


_EVERY = 5.0
"""Seconds between two progress lines on stderr while `--largest` reads every thread."""


def largest_threads(
    side: Side, n: int, progress: TextIO | None = None
) -> tuple[list[ThreadInfo], int, int]:
    """The `n` largest threads by size (largest first), how many threads there are, and the
    size of them all, reading every thread once (a progress line every few seconds)."""
    heap: list[tuple[int, str, ThreadInfo]] = []  # the n largest so far, smallest on top
    count = total = 0
    last = time.monotonic()
    for info in every_thread(side):
        size = info.size_bytes or 0
        count += 1
        total += size
        item = (size, info.thread_id, info)  # ids are unique: infos are never compared
        if len(heap) < n:
            heapq.heappush(heap, item)
        elif item > heap[0]:
            heapq.heapreplace(heap, item)
        now = time.monotonic()
        if progress is not None and now - last >= _EVERY:
            last = now
            progress.write(f"reading threads: {count:,} so far\n")
            progress.flush()
    return [info for _, _, info in sorted(heap, reverse=True)], count, total


def _threads(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    summary = None
    with open_side(args.url) as side:
        if args.largest is not None:
            if args.after is not None or args.limit is not None:
                raise ConfigError(
                    "--largest reads every thread: it takes neither --limit nor --after"
                )
            infos, count, total = largest_threads(side, args.largest, sys.stderr)
            more = False
            noun = "thread takes" if count == 1 else "threads take"
            summary = f"{count:,} {noun} {format_bytes(total)} in all"
            if count > len(infos):
                summary += f"; the {len(infos):,} largest above"
        else:
            limit = 50 if args.limit is None else args.limit
            infos = side.run(side.thread_page(args.after, limit + 1))
            more = len(infos) > limit
            infos = infos[:limit]
    if args.json:
        out.write(json.dumps([dataclasses.asdict(i) for i in infos], indent=2) + "\n")
        return 0
    if not infos:
        out.write(f"no threads in {side.label}\n")
        return 0
    rows = [
        [
            i.thread_id,
            str(i.checkpoint_count),
            ",".join(repr(ns) if ns == "" else ns for ns in i.namespaces) or "-",
            format_bytes(i.size_bytes),
            f"{format_time(i.updated_at)} ({format_age(i.updated_at)})",
        ]
        for i in infos
    ]
    headers = ["THREAD", "CHECKPOINTS", "NAMESPACES", "SIZE", "LAST UPDATE"]
    out.write(table(headers, rows, style, right=(1, 3), shrink=2) + "\n")
    if any(i.checkpoint_count == 0 for i in infos):
        note = (
            "0 checkpoints: writes only, stored by a graph still running after its checkpoint "
            "was deleted; LAST UPDATE is that checkpoint's time; `checkpointers delete` "
            "removes them"
        )
        out.write(style(note, "dim") + "\n")
    if more:
        out.write(style(f"more threads: --after {infos[-1].thread_id}", "dim") + "\n")
    if summary is not None:
        out.write(summary + "\n")
    return 0


# -- history -----------------------------------------------------------------------------------


def _versions(side: Side, row: CheckpointRow, body: Any = None) -> dict[str, Any]:
    """The channel versions a checkpoint stores (its body decoded unless given)."""
    rec = row.checkpoint
    try:
        if body is None:
            body = side.serde.loads_typed((rec.type, rec.checkpoint))
        return dict(body.get("channel_versions") or {})
    except (*UNREADABLE, AttributeError) as exc:
        raise damaged_row(side.serde, row, exc) from exc


def _changed(
    versions: Mapping[str, Any], parent_id: str | None, stored: Mapping[str, Mapping[str, Any]]
) -> list[str] | None:
    """The channels whose version differs from the parent's, which the step before the
    checkpoint wrote: every channel of a first checkpoint; None (unknown) when the parent is
    no longer stored (pruned)."""
    if parent_id is None:
        return sorted(versions)
    before = stored.get(parent_id)
    if before is None:
        return None
    return sorted(k for k, v in versions.items() if before.get(k) != v)


def _history(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    with open_side(args.url) as side:
        allow_types(side, args.allow)
        rows = _namespace_rows(side, args.thread, args.ns, args.limit)
        entries: list[dict[str, Any]] = []
        stored: dict[str, dict[str, Any]] = {}
        for row in rows[: args.limit]:
            rec = row.checkpoint
            try:
                body = side.serde.loads_typed((rec.type, rec.checkpoint))
                meta = decode_metadata(rec.metadata)
                entries.append(
                    {
                        "checkpoint_id": rec.checkpoint_id,
                        "parent_checkpoint_id": rec.parent_checkpoint_id,
                        "step": meta.get("step"),
                        "source": meta.get("source"),
                        "created_at": rec.created_at,
                        "next": row_next(side, row, body),
                        "pending_writes": len(row.writes),
                    }
                )
            except UNREADABLE as exc:
                raise damaged_row(side.serde, row, exc) from exc
            stored[rec.checkpoint_id] = _versions(side, row, body)
        # Parents not shown: the oldest shown one's (read with the page), a fork's.
        wanted = {p for e in entries if (p := e["parent_checkpoint_id"]) and p not in stored}
        parents = [r for r in rows[args.limit :] if r.checkpoint.checkpoint_id in wanted]
        absent = sorted(wanted - {r.checkpoint.checkpoint_id for r in parents})
        if absent:
            keys = [(args.ns, cid) for cid in absent]
            parents += side.run(side.read_checkpoints(args.thread, keys))
        stored.update((r.checkpoint.checkpoint_id, _versions(side, r)) for r in parents)
        for e in entries:
            versions = stored[e["checkpoint_id"]]
            e["changed"] = _changed(versions, e["parent_checkpoint_id"], stored)
    if args.json:
        out.write(json.dumps(entries, indent=2) + "\n")
        return 0
    table_rows = [
        [
            str(e["step"]),
            str(e["source"]),
            format_time(e["created_at"]),
            _changed_cell(e["changed"]),
            ",".join(e["next"]) or "-",
            str(e["pending_writes"]),
            e["checkpoint_id"],
        ]
        for e in entries
    ]
    out.write(f"thread {args.thread}  namespace {args.ns!r}  (newest first)\n")
    headers = ["STEP", "SOURCE", "CREATED", "CHANGED", "NEXT", "WRITES", "CHECKPOINT"]
    out.write(table(headers, table_rows, style, right=(0, 5), shrink=3) + "\n")
    if len(rows) > args.limit:
        out.write(style("older checkpoints not shown: --limit N", "dim") + "\n")
    return 0


def _changed_cell(changed: list[str] | None) -> str:
    if changed is None:
        return "?"
    return ",".join(c for c in changed if not internal_channel(c)) or "-"


# -- show --------------------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """A JSON-ready view of a decoded value (messages, models, dataclasses, bytes, ...)."""
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return {"__type__": type(value).__name__, **dump(mode="json")}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
        return {"__type__": type(value).__name__, **{k: jsonable(v) for k, v in fields.items()}}
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        return [jsonable(v) for v in items]
    if isinstance(value, (bytes, bytearray)):
        return {"__bytes__": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return jsonable(value.value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def message_line(message: Any) -> str:
    kind = type(message).__name__
    calls = getattr(message, "tool_calls", None)
    if calls:
        shown = ", ".join(f"{c['name']}({json.dumps(c.get('args'))})" for c in calls)
        return f"{kind}: calls {shown}"
    content = message.content if isinstance(message.content, str) else json.dumps(message.content)
    return f"{kind}: {content}"


def readable(value: Any, width: int) -> list[str]:
    if isinstance(value, list) and value and all(hasattr(v, "content") for v in value):
        return [message_line(m) for m in value]
    return pprint.pformat(value, width=max(width, 40), sort_dicts=False).splitlines()


def _show(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    with open_side(args.url) as side:
        allow_types(side, args.allow)
        row = one_row(side, args.thread, args.ns, args.checkpoint)
        tup: CheckpointTuple = to_tuple(side.serde, row)
        body = {k: v for k, v in tup.checkpoint.items() if k != "channel_values"}
        nxt = row_next(side, row, body)
    rec = row.checkpoint
    values = tup.checkpoint.get("channel_values") or {}
    if args.json:
        doc = {
            "thread_id": rec.thread_id,
            "checkpoint_ns": rec.checkpoint_ns,
            "checkpoint_id": rec.checkpoint_id,
            "parent_checkpoint_id": rec.parent_checkpoint_id,
            "created_at": datetime.datetime.fromtimestamp(
                rec.created_at, datetime.timezone.utc
            ).isoformat(),
            "metadata": tup.metadata,
            "next": nxt,
            "values": jsonable(values),
            "channel_versions": {
                ch: str(v) for ch, v in tup.checkpoint.get("channel_versions", {}).items()
            },
            "pending_writes": [
                {"task_id": t, "channel": c, "value": jsonable(v)}
                for t, c, v in tup.pending_writes or ()
            ],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    meta = tup.metadata or {}
    width = (style.width or 100) - 6

    def label(text: str) -> str:
        return style(f"{text:<12}", "bold")

    out.write(f"{label('thread')}{rec.thread_id}   namespace {rec.checkpoint_ns!r}\n")
    out.write(f"{label('checkpoint')}{rec.checkpoint_id}\n")
    out.write(f"{label('parent')}{rec.parent_checkpoint_id or '-'}\n")
    out.write(
        f"{label('created')}{format_time(rec.created_at)}   step {meta.get('step')}   "
        f"source {meta.get('source')}\n"
    )
    out.write(f"{label('next')}{', '.join(nxt) or '-'}\n")
    shown = {k: v for k, v in values.items() if args.all or not internal_channel(k)}
    out.write(style("values", "bold") + (" (none)\n" if not shown else "\n"))
    for channel, value in shown.items():
        lines = readable(value, width)
        out.write(f"  {style(channel, 'cyan')}:")
        out.write(f" {lines[0]}\n" if len(lines) == 1 else "\n")
        for line in lines if len(lines) > 1 else ():
            out.write(f"    {line}\n")
    if tup.pending_writes:
        out.write(style("pending writes", "bold") + "\n")
        for task_id, channel, value in tup.pending_writes:
            text = " ".join(readable(value, width))
            out.write(f"  {task_id[:8]}  {style(channel, 'cyan')} = {text[:width]}\n")
    hidden = len(values) - len(shown)
    if hidden:
        out.write(style(f"({hidden} internal channels hidden: --all shows them)", "dim") + "\n")
    return 0


def internal_channel(channel: str) -> bool:
    return channel.startswith(("__", _BRANCH, "branch:"))


# -- registration ------------------------------------------------------------------------------


def add_inspect_commands(commands: Any, url_help: str) -> None:
    """Add `threads`, `history` and `show` to the sub-command parsers."""
    fmt = argparse.RawDescriptionHelpFormatter
    p = commands.add_parser(
        "threads",
        help="list threads with counts, namespaces, sizes and last update",
        description="List the threads of a checkpointer, by thread id; or, with --largest, "
        "the ones that take the most space (SIZE: checkpoints, channel values, pending writes).",
        epilog="examples:\n  checkpointers threads sqlite:///checkpoints.db\n"
        "  checkpointers threads postgresql://me@localhost/app --limit 20 --after t-0100\n"
        "  checkpointers threads sqlite:///checkpoints.db --largest 10\n"
        "  checkpointers threads langgraph-sqlite:///old.db --json\n\n" + url_help,
        formatter_class=fmt,
    )
    p.add_argument("url", help="checkpointer URL (see below)")
    p.add_argument("--limit", type=_positive, default=None, help="at most N threads (default 50)")
    p.add_argument("--after", default=None, metavar="ID", help="start after this thread id")
    p.add_argument(
        "--largest",
        type=_positive,
        default=None,
        metavar="N",
        help="the N largest threads, read from all of them, with their total size",
    )
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(run=_threads)

    p = commands.add_parser(
        "history",
        help="the checkpoints of a thread: step, source, time, changes, next nodes",
        description="The checkpoints of one thread and namespace, newest first. CHANGED is "
        "what the step before each wrote: the channels whose version differs from its "
        "parent's (`?`: the parent was pruned; `diff` shows the values). NEXT is what "
        "LangGraph would run next, derived from the stored trigger channels (see `show`).",
        epilog="examples:\n  checkpointers history sqlite:///checkpoints.db demo-1a2b3c4d\n"
        "  checkpointers history sqlite:///checkpoints.db t1 --ns 'review:4f1c...' --json\n\n"
        + url_help,
        formatter_class=fmt,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("thread", help="thread id")
    p.add_argument("--ns", default="", help="checkpoint namespace (default: the root graph)")
    p.add_argument("--limit", type=_positive, default=50, help="at most N checkpoints")
    p.add_argument("--json", action="store_true", help="print JSON")
    add_allow_argument(p)
    p.set_defaults(run=_history)

    p = commands.add_parser(
        "show",
        help="the decoded state of a checkpoint (latest by default)",
        description="Decode one checkpoint with the saver's serializer: its channel values, "
        "pending writes, metadata and next nodes.",
        epilog="examples:\n  checkpointers show sqlite:///checkpoints.db demo-1a2b3c4d\n"
        "  checkpointers show sqlite:///checkpoints.db demo-1a2b3c4d 1ef4f797-... --json\n"
        "  checkpointers show sqlite:///checkpoints.db demo-1a2b3c4d 2   # the one of step 2\n\n"
        + url_help,
        formatter_class=fmt,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("thread", help="thread id")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="checkpoint id, or the step `history` shows (default: latest)",
    )
    add_decoding_options(p)
    p.set_defaults(run=_show)


def add_decoding_options(parser: Any) -> None:
    """The options of the commands that print decoded checkpoints (`show`, `diff`): `--ns`,
    `--all`, `--json` and `--allow`."""
    parser.add_argument("--ns", default="", help="checkpoint namespace (default: the root graph)")
    parser.add_argument(
        "--all", action="store_true", help="also show LangGraph's internal channels"
    )
    parser.add_argument("--json", action="store_true", help="print JSON (every channel)")
    add_allow_argument(parser)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, got {value}")
    return value

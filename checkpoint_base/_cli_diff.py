"""`checkpointers diff`: what changed in a thread's state between two of its checkpoints."""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import difflib
import json
import pprint
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from ._cli_format import Style
from ._cli_inspect import (
    add_decoding_options,
    internal_channel,
    jsonable,
    message_line,
    one_row,
    readable,
    row_next,
)
from ._cli_open import allow_types, open_side
from ._convert import to_tuple
from ._migrate_side import Side
from ._records import CheckpointRow

__all__ = ["Change", "add_diff_command", "channel_changes"]


class _Missing:
    """The value of a channel that a checkpoint does not hold."""

    def __repr__(self) -> str:
        return "<missing>"


MISSING: Any = _Missing()


@dataclasses.dataclass(frozen=True)
class Change:
    """One channel whose value differs between two checkpoints (`MISSING` on the side that
    does not hold it)."""

    channel: str
    before: Any
    after: Any

    @property
    def kind(self) -> str:
        if self.before is MISSING:
            return "added"
        return "removed" if self.after is MISSING else "changed"


def _same(a: Any, b: Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a value whose == fails (numpy arrays of several elements, ...)
        return _key(a) == _key(b)


def channel_changes(before: Mapping[str, Any], after: Mapping[str, Any]) -> list[Change]:
    """The channels whose values differ, in the order `after` holds them, then those only
    `before` holds."""
    changes = [
        Change(ch, before.get(ch, MISSING), value)
        for ch, value in after.items()
        if ch not in before or not _same(before[ch], value)
    ]
    changes += [Change(ch, value, MISSING) for ch, value in before.items() if ch not in after]
    return changes


def _key(item: Any) -> str:
    """A value as comparable text (what `--json` would print of it)."""
    return json.dumps(jsonable(item), sort_keys=True, default=repr)


def _item_line(item: Any) -> str:
    if hasattr(item, "content") and hasattr(item, "type"):
        return message_line(item)
    return pprint.pformat(item, width=10**9, sort_dicts=False)


@dataclasses.dataclass(frozen=True)
class _ListEdit:
    """How one list became another: the items removed and the items added."""

    removed: list[tuple[int, Any]]  # (index in the old list, item)
    added: list[tuple[int, Any]]  # (index in the new list, item)


def _list_edit(old: Sequence[Any], new: Sequence[Any]) -> _ListEdit:
    matcher = difflib.SequenceMatcher(
        None, [_key(i) for i in old], [_key(i) for i in new], autojunk=False
    )
    removed, added = [], []
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op != "equal":
            removed += [(i, old[i]) for i in range(i1, i2)]
            added += [(j, new[j]) for j in range(j1, j2)]
    return _ListEdit(removed, added)


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def _change_lines(change: Change, width: int, style: Style) -> list[str]:
    """A change as text: a first line naming the channel, then `-` and `+` lines."""
    name = style(change.channel, "cyan")

    def minus(line: str) -> str:
        return style(f"- {line}", "red")

    def plus(line: str) -> str:
        return style(f"+ {line}", "green")

    before, after = change.before, change.after
    if change.kind != "changed":
        value = after if change.kind == "added" else before
        sign = plus if change.kind == "added" else minus
        return [f"{name}: {change.kind}", *("  " + sign(line) for line in readable(value, width))]
    if isinstance(before, list) and isinstance(after, list):
        edit = _list_edit(before, after)
        parts = [f"{len(edit.removed)} removed"] if edit.removed else []
        parts += [f"{len(edit.added)} added"] if edit.added else []
        head = f"{name}: {len(before)} → {_count(len(after), 'item')}"
        head += f" ({', '.join(parts)})" if parts else ""
        body = [f"  {minus(f'[{i}] {_item_line(item)}')}" for i, item in edit.removed]
        body += [f"  {plus(f'[{j}] {_item_line(item)}')}" for j, item in edit.added]
        if not body:
            body = ["  " + style("(the same when printed: --json shows both values)", "dim")]
        return [head, *body]
    old, new = readable(before, width), readable(after, width)
    if old == new:
        note = style("(the same when printed: --json shows both values)", "dim")
        return [f"{name}: changed", f"  {note}"]
    if len(old) == len(new) == 1:
        return [f"{name}: changed", f"  {minus(old[0])}", f"  {plus(new[0])}"]
    body, shown_to = [], 0  # shown_to: the old lines shown or skipped so far
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for group in matcher.get_grouped_opcodes(1):  # one line of context around each change
        if group[0][1] > shown_to:
            body.append("  " + style("…", "dim"))
        for op, i1, i2, j1, j2 in group:
            if op == "equal":
                body += [f"    {line}" for line in old[i1:i2]]
            else:
                body += ["  " + minus(line) for line in old[i1:i2]]
                body += ["  " + plus(line) for line in new[j1:j2]]
            shown_to = i2
    if shown_to < len(old):
        body.append("  " + style("…", "dim"))
    return [f"{name}: changed", *body]


def _change_doc(change: Change) -> dict[str, Any]:
    """A change in JSON: both values, or of a list changed, its lengths and the items it lost
    (`index` in the old list) and gained (`index` in the new one), not the whole lists."""
    doc: dict[str, Any] = {"channel": change.channel, "change": change.kind}
    before, after = change.before, change.after
    if isinstance(before, list) and isinstance(after, list):
        edit = _list_edit(before, after)
        doc["items"] = [len(before), len(after)]
        doc["removed"] = [{"index": i, "value": jsonable(v)} for i, v in edit.removed]
        doc["added"] = [{"index": j, "value": jsonable(v)} for j, v in edit.added]
        return doc
    if before is not MISSING:
        doc["before"] = jsonable(before)
    if after is not MISSING:
        doc["after"] = jsonable(after)
    return doc


@dataclasses.dataclass(frozen=True)
class _Side:
    """One checkpoint of the diff, decoded."""

    row: CheckpointRow
    values: dict[str, Any]
    metadata: Mapping[str, Any]
    next: list[str]

    def doc(self) -> dict[str, Any]:
        rec = self.row.checkpoint
        return {
            "checkpoint_id": rec.checkpoint_id,
            "step": self.metadata.get("step"),
            "source": self.metadata.get("source"),
            "created_at": datetime.datetime.fromtimestamp(
                rec.created_at, datetime.timezone.utc
            ).isoformat(),
            "next": self.next,
        }


def _decoded(side: Side, row: CheckpointRow) -> _Side:
    tup = to_tuple(side.serde, row)
    body = {k: v for k, v in tup.checkpoint.items() if k != "channel_values"}
    values = dict(tup.checkpoint.get("channel_values") or {})
    return _Side(row, values, tup.metadata or {}, row_next(side, row, body))


def _diff(args: argparse.Namespace) -> int:
    out, style = sys.stdout, Style(sys.stdout)
    with open_side(args.url) as side:
        allow_types(side, args.allow)
        to_id = args.checkpoint if args.other is None else args.other
        newer = _decoded(side, one_row(side, args.thread, args.ns, to_id))
        parent_id = newer.row.checkpoint.parent_checkpoint_id
        from_id = parent_id if args.other is None else args.checkpoint
        older = None
        if from_id is not None:
            older = _decoded(side, one_row(side, args.thread, args.ns, from_id))
    before = older.values if older is not None else {}
    changes = channel_changes(before, newer.values)
    if args.json:
        doc = {
            "thread_id": args.thread,
            "checkpoint_ns": args.ns,
            "from": older.doc() if older is not None else None,
            "to": newer.doc(),
            "changes": [_change_doc(c) for c in changes],
        }
        out.write(json.dumps(doc, indent=2) + "\n")
        return 0
    width = (style.width or 100) - 6

    def label(text: str) -> str:
        return style(f"{text:<8}", "bold")

    def describe(s: _Side) -> str:
        return (
            f"{s.row.checkpoint.checkpoint_id}   step {s.metadata.get('step')}   "
            f"{s.metadata.get('source')}   next {', '.join(s.next) or '-'}"
        )

    out.write(f"{label('thread')}{args.thread}   namespace {args.ns!r}\n")
    if older is None:
        out.write(f"{label('from')}(nothing: no checkpoint before it)\n")
    else:
        out.write(f"{label('from')}{describe(older)}\n")
    out.write(f"{label('to')}{describe(newer)}\n")
    shown = [c for c in changes if args.all or not internal_channel(c.channel)]
    if not shown:
        out.write("no channel changed\n" if not changes else "no channel of the state changed\n")
    for change in shown:
        for line in _change_lines(change, width, style):
            out.write(f"  {line}\n")
    hidden = len(changes) - len(shown)
    if hidden:
        noun = "channel" if hidden == 1 else "channels"
        out.write(style(f"({hidden} internal {noun} changed: --all shows them)", "dim") + "\n")
    return 0


def add_diff_command(commands: Any, url_help: str) -> None:
    """Add `diff` to the sub-command parsers."""
    p = commands.add_parser(
        "diff",
        help="what changed in a thread's state between two checkpoints",
        description="Decode two checkpoints of one thread and namespace and print the "
        "channels whose values differ: a list by the items removed and added (messages "
        "one line each), any other value by its lines that changed. With no id, the "
        "latest checkpoint against its parent: what the last step changed; with one, that "
        "checkpoint against its parent; with two, the first against the second. A "
        "checkpoint is named by its id or by its step (the STEP of `history`).",
        epilog="examples:\n  checkpointers diff sqlite:///checkpoints.db demo-1a2b3c4d\n"
        "  checkpointers diff sqlite:///checkpoints.db demo-1a2b3c4d 1ef4f797-...\n"
        "  checkpointers diff sqlite:///checkpoints.db t1 1ef4f797-... 1ef4f7a3-... --json\n"
        "  checkpointers diff sqlite:///checkpoints.db t1 0 3   # from step 0 to step 3\n\n"
        + url_help,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("url", help="checkpointer URL")
    p.add_argument("thread", help="thread id")
    p.add_argument(
        "checkpoint",
        nargs="?",
        default=None,
        help="the checkpoint whose changes to show, against its parent (default: latest); "
        "with a second, the one to compare from; an id, or the step `history` shows",
    )
    p.add_argument(
        "other", nargs="?", default=None, help="the checkpoint to compare to (id or step)"
    )
    add_decoding_options(p)
    p.set_defaults(run=_diff)

"""The run's report: a table for the terminal (or Markdown), and a JSON file of everything.

Ratios are of medians, ours first: for latencies and bytes below 1 is better, for
throughputs (ops/s units) above 1 is better.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from ._results import BYTES, SECONDS, THROUGHPUT, Results, Series, summarize

__all__ = [
    "changes_table",
    "goals_table",
    "json_report",
    "readme_section",
    "replace_section",
    "table",
]

START = "<!-- results:start -->"
END = "<!-- results:end -->"

HEADER = (
    "workload",
    "op",
    "params",
    "subject",
    "median",
    "p95",
    "p99",
    "ops/s",
    "n",
    "ours/official",
    "ours/floor",
)


def _time(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 1e-3:
        return f"{seconds * 1e6:.1f} µs"
    if seconds < 1:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds:.2f} s"


def _bytes(n: float | None) -> str:
    if n is None:
        return "n/a"
    if n >= 1024 * 1024:
        return f"{n / (1024 * 1024):.2f} MiB"
    if n >= 1024:
        return f"{n / 1024:.1f} KiB"
    return f"{n:.0f} B"


def _value(series: Series, value: float | None) -> str:
    if series.unit == SECONDS:
        return _time(value)
    if series.unit == BYTES:
        return _bytes(value)
    if value is None:
        return "n/a"
    return f"{value:,.2f}/s" if value < 10 else f"{value:,.1f}/s"


def _ratio(mine: float | None, other: float | None) -> str:
    if not mine or not other:
        return ""
    return f"{mine / other:.2f}x"


def _rows(results: Results) -> list[tuple[str, ...]]:
    groups: dict[tuple[Any, ...], dict[str, Series]] = {}
    for s in results:
        key = (s.workload, s.op, s.params_text, s.unit, s.subject.target, s.subject.flavor)
        groups.setdefault(key, {})[s.subject.kind] = s
    rows: list[tuple[str, ...]] = []
    for (workload, op, params, _unit, _target, _flavor), kinds in groups.items():
        ours = summarize(kinds["ours"])["median"] if "ours" in kinds else None
        for kind in ("ours", "official", "floor"):
            s = kinds.get(kind)
            if s is None:
                continue
            m = summarize(s)
            vs_official = vs_floor = ""
            if kind == "ours":
                if "official" in kinds:
                    vs_official = _ratio(ours, summarize(kinds["official"])["median"])
                if "floor" in kinds:
                    vs_floor = _ratio(ours, summarize(kinds["floor"])["median"])
            ops = m.get("ops_per_s")
            rows.append(
                (
                    workload,
                    op,
                    params,
                    s.subject.label,
                    _value(s, m["median"]) if m["n"] else (s.note or "n/a"),
                    _value(s, m["p95"]) if s.unit != BYTES else "",
                    _value(s, m["p99"]) if s.unit != BYTES else "",
                    f"{ops:,.1f}" if ops else "",
                    str(m["n"]),
                    vs_official,
                    vs_floor,
                )
            )
    return rows


def _render(header: Sequence[str], rows: Sequence[Sequence[str]], markdown: bool) -> str:
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        lines += ["| " + " | ".join(r) + " |" for r in rows]
        return "\n".join(lines) + "\n"
    widths = [
        max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    out = [line(header), line(["-" * w for w in widths])]
    previous = None
    for r in rows:
        group = r[:3]
        shown = list(r)
        if group == previous:  # repeat the group columns only on its first row
            shown[0] = shown[1] = shown[2] = ""
        previous = group
        out.append(line(shown))
    return "\n".join(out) + "\n"


def table(results: Results, *, markdown: bool = False) -> str:
    """Every series: median, p95, p99, ops/s, samples, and ratios of medians."""
    return _render(HEADER, _rows(results), markdown)


def goals_table(goals: list[dict[str, Any]], *, markdown: bool = False) -> str:
    """The issues' targets: measured ratio against the bound, met or not."""
    header = ("issue", "target", "goal", "ours", "vs", "ratio", "bound", "met", "note")
    rows = []
    for g in goals:
        against = g.get(g["against"])
        unit = g["unit"]
        fmt = (
            _time
            if unit == SECONDS
            else _bytes
            if unit == BYTES
            else (lambda v: "n/a" if v is None else f"{v:,.1f}/s")
        )
        ratio = "" if g["ratio"] is None else f"{g['ratio']:.2f}x {g['ratio_kind']}"
        bound = (">= " if g["ratio_kind"] in ("speed-up", "of the goal") else "<= ") + (
            f"{g['bound']:g}x"
        )
        met = "" if g["met"] is None else ("yes" if g["met"] else "NO")
        rows.append(
            (
                f"#{g['issue']}",
                g["target"],
                g["goal"],
                fmt(g["ours"]),
                f"{g['against']} {fmt(against)}",
                ratio,
                bound,
                met,
                g["caveat"],
            )
        )
    return _render(header, rows, markdown)


def changes_table(changes: list[dict[str, Any]], *, markdown: bool = False) -> str:
    """The goal rows decided differently in two runs (`_goals.compare`): ratio and verdict of
    each, with the range of its rounds' ratios."""

    def side(s: dict[str, Any] | None) -> tuple[str, str]:
        if s is None or s["ratio"] is None:
            return "not measured", ""
        rounds = s.get("round_ratios") or []
        spread = f" (rounds {min(rounds):.2f}x-{max(rounds):.2f}x)" if rounds else ""
        return f"{s['ratio']:.2f}x{spread}", "yes" if s["met"] else "NO"

    header = ("issue", "target", "goal", "then", "met then", "now", "met now")
    rows = [
        (f"#{c['issue']}", c["target"], c["goal"], *side(c["then"]), *side(c["now"]))
        for c in changes
    ]
    return _render(header, rows, markdown)


def json_report(
    results: Results, env: dict[str, Any], sizes: dict[str, Any], goals: list[dict[str, Any]]
) -> str:
    """The whole run: environment, sizes, every series with every sample, goals, notes.

    One series per line (samples rounded to the nanosecond or byte), so that a full run
    stays small enough to keep in the repository and diffs read by series.
    """
    head = {
        "environment": env,
        "sizes": sizes,
        "units": {SECONDS: "seconds per operation", THROUGHPUT: "per second", BYTES: "bytes"},
        "goals": goals,
        "notes": results.notes,
        "problems": results.problems,
    }
    lines = []
    for s in results:
        record = s.to_json()
        record["samples"] = [round(v, 9) for v in s.samples]
        lines.append(json.dumps(record, separators=(",", ":"), ensure_ascii=False))
    body = json.dumps(head, indent=1, ensure_ascii=False)
    return body[:-2] + ',\n "series": [\n  ' + ",\n  ".join(lines) + "\n ]\n}\n"


def readme_section(
    env: dict[str, Any],
    size: str,
    goals: list[dict[str, Any]],
    plots: Sequence[str],
    readme: str,
    table_path: str | None,
    notes: Sequence[str] = (),
) -> str:
    """The README's results section: command, machine, the issue targets, the plots."""
    import os

    here = os.path.dirname(os.path.abspath(readme))
    machine = env["machine"]
    servers = env.get("servers") or {}
    changed = env.get("git_changed")
    commit = str(env["git_commit"])[:10] + (
        f" with changes to {', '.join(changed)}" if changed else ""
    )
    lines = [
        f"Generated by the harness on {env['started_at']} (git {commit}), size `{size}`:",
        "",
        "```",
        " ".join(env["command"]),
        "```",
        "",
        f"Machine: {machine['cpu_count']} CPUs ({machine['cpu_model']}), "
        f"{(machine['memory_bytes'] or 0) / 2**30:.1f} GiB, {machine['os']}, "
        f"Python {env['python']}, SQLite {env['sqlite_library']}.",
    ]
    for kind, settings in servers.items():
        shown = ", ".join(f"{k}={v}" for k, v in settings.items() if k != "url")
        lines.append(f"- {kind}: {shown}")
    if table_path:
        rel = os.path.relpath(os.path.abspath(table_path), here)
        lines += ["", f"Every operation, subject and ratio: [{rel}]({rel})."]
    lines += ["", "Targets of the backend issues (each the median of its rounds' ratios):", ""]
    lines.append(goals_table(goals, markdown=True).rstrip("\n") if goals else "(none measured)")
    if notes:
        lines += ["", *(f"- {note}" for note in notes)]
    for path in plots:
        rel = os.path.relpath(os.path.abspath(path), here)
        lines += ["", f"![{os.path.basename(path)}]({rel})"]
    return "\n".join(lines)


def replace_section(text: str, section: str) -> str:
    """`text` with the part between the results markers replaced (appended when missing)."""
    block = f"{START}\n{section}\n{END}"
    if START in text and END in text:
        head, rest = text.split(START, 1)
        return head + block + rest.split(END, 1)[1]
    return text.rstrip("\n") + "\n\n" + block + "\n"

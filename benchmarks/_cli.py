"""`python -m benchmarks` and `checkpointers bench`: select, run, report."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import sys
import tempfile
import traceback
from collections.abc import Iterator, Sequence
from typing import Any

from checkpoint_base import ConfigError
from checkpoint_base._schemes import canonical_url
from checkpoint_base.testing.targets import Target, all_targets

from . import _w_concurrency, _w_e2e, _w_migration, _w_ops, _w_serde, _w_storage
from ._context import SIZES, Context
from ._env import durable_servers, environment, git_commit, server_settings, sqlite_settings
from ._goals import compare, evaluate
from ._progress import Progress
from ._report import (
    changes_table,
    goals_table,
    json_report,
    readme_section,
    replace_section,
    table,
)
from ._results import Results
from ._subjects import subjects_for

__all__ = ["main"]

WORKLOADS: dict[str, Any] = {
    "ops": _w_ops,
    "e2e": _w_e2e,
    "concurrency": _w_concurrency,
    "storage": _w_storage,
    "serializer": _w_serde,
    "migration": _w_migration,
}
DEFAULT_FAMILIES = ("memory", "sqlite")
# URL scheme -> (backend family, env var the registry's targets read, cluster?)
SCHEMES = {
    "memory": ("memory", None, False),
    "sqlite": ("sqlite", None, False),
    "postgres": ("postgres", "CHECKPOINTERS_TEST_POSTGRES_URL", False),
    "postgresql": ("postgres", "CHECKPOINTERS_TEST_POSTGRES_URL", False),
    "redis": ("redis", "CHECKPOINTERS_TEST_REDIS_URL", False),
    "rediss": ("redis", "CHECKPOINTERS_TEST_REDIS_URL", False),
    "redis+cluster": ("redis", "CHECKPOINTERS_TEST_REDIS_CLUSTER_URL", True),
}


class UsageError(Exception):
    """A bad command line; the message says what to type instead."""


def parser() -> argparse.ArgumentParser:
    """The command line of the harness (shared by `checkpointers bench`)."""
    p = argparse.ArgumentParser(
        prog="checkpointers bench",
        description="Benchmark our savers against the official LangGraph savers and raw-driver "
        "floors, interleaved, on the backends of the test registry. With no argument: a quick "
        "run (under two minutes) on the memory and SQLite backends.",
        epilog="examples:\n  python -m benchmarks\n  python -m benchmarks --full --plot plots/\n"
        "  python -m benchmarks --backend sqlite postgres --workload ops\n"
        "  python -m benchmarks --backend postgresql://me@db.example/bench",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--full", action="store_true", help="full sizes on every registered target")
    p.add_argument("--size", choices=sorted(SIZES), help="run size (default quick; --full: full)")
    p.add_argument(
        "--backend",
        nargs="+",
        action="extend",
        metavar="NAME_OR_URL",
        default=[],
        help="targets by name (sqlite, postgres-pool, ...), backend family, or URL "
        "(the family's targets then run against that server)",
    )
    p.add_argument(
        "--workload",
        nargs="+",
        action="extend",
        choices=sorted(WORKLOADS),
        default=[],
        help="workloads to run (default: all)",
    )
    p.add_argument(
        "--flavor",
        nargs="+",
        action="extend",
        choices=("sync", "async"),
        default=[],
        help="flavors to run (default: both)",
    )
    p.add_argument("--rounds", type=int, help="measured rounds (overrides the size)")
    p.add_argument("--steps", type=int, nargs="+", help="thread lengths (overrides the size)")
    p.add_argument("--payload", type=int, nargs="+", help="message sizes (overrides the size)")
    p.add_argument(
        "--json",
        default="checkpointers-bench.json",
        metavar="PATH",
        help="JSON report with every sample (default %(default)s; '-' for none)",
    )
    p.add_argument("--table", metavar="PATH", help="also write the tables (.md: Markdown)")
    p.add_argument("--plot", metavar="DIR", help="write PNG plots into DIR")
    p.add_argument(
        "--readme",
        metavar="PATH",
        help="rewrite the results section of a README "
        "(between <!-- results:start --> and <!-- results:end -->)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    p.add_argument("--list", action="store_true", help="list the registered targets and exit")
    p.add_argument(
        "--from-json",
        metavar="PATH",
        help="measure nothing: write the tables, plots and README section of a saved JSON "
        "report, its targets checked by this version's goals",
    )
    p.add_argument(
        "--against",
        metavar="PATH",
        help="also list the issue targets decided differently in a saved JSON report (an "
        "earlier run), its samples checked by this version's goals",
    )
    return p


def _matches(target: Target, wanted: str) -> bool:
    return wanted in (target.name, target.backend)


@contextlib.contextmanager
def _select(args: argparse.Namespace, registry: list[Target]) -> Iterator[list[str]]:
    """Names of the selected targets; URLs point their family's targets at that server."""
    if not args.backend:
        families = None if args.full else DEFAULT_FAMILIES
        yield [t.name for t in registry if families is None or t.backend in families]
        return
    names: list[str] = []
    saved: dict[str, str | None] = {}
    old_tempdir = tempfile.tempdir
    try:
        for value in args.backend:
            if "://" in value:
                value = canonical_url(value)  # postgresql+asyncpg:// as postgresql://
                scheme = value.split("://", 1)[0].lower()
                if scheme not in SCHEMES:
                    raise UsageError(f"no backend for URL scheme {scheme!r}: {value}")
                family, var, cluster = SCHEMES[scheme]
                if family == "postgres":  # the official saver reads it too: libpq's form
                    from checkpoint_postgres._urls import libpq_url

                    try:
                        value = libpq_url(value)
                    except ConfigError as exc:
                        raise UsageError(str(exc)) from exc
                if var is not None:
                    saved.setdefault(var, os.environ.get(var))
                    os.environ[var] = value
                elif family == "sqlite":
                    path = value.split("://", 1)[1].lstrip("/") or "."
                    tempfile.tempdir = os.path.dirname("/" + path) or None
                found = [
                    t
                    for t in registry
                    if t.backend == family
                    and t.capabilities.cluster == cluster
                    and "pgbouncer" not in t.name
                ]
            else:
                found = [t for t in registry if _matches(t, value)]
            if not found:
                known = ", ".join(
                    dict.fromkeys([t.name for t in registry] + [t.backend for t in registry])
                )
                raise UsageError(f"no registered target matches {value!r}; known: {known}")
            names.extend(t.name for t in found if t.name not in names)
        yield names
    finally:
        tempfile.tempdir = old_tempdir
        for var, old in saved.items():
            if old is None:
                os.environ.pop(var, None)
            else:
                os.environ[var] = old


def _sizes(args: argparse.Namespace) -> Any:
    sizes = SIZES[args.size or ("full" if args.full else "quick")]
    if args.rounds is not None:
        sizes = dataclasses.replace(sizes, rounds=max(1, args.rounds))
    if args.steps:
        sizes = dataclasses.replace(sizes, steps=tuple(args.steps))
    if args.payload:
        sizes = dataclasses.replace(sizes, payloads=tuple(args.payload))
    return sizes


async def _run(args: argparse.Namespace, argv: Sequence[str]) -> int:
    registry = all_targets()
    if args.list:
        for t in registry:
            print(f"{t.name:24} backend={t.backend}")
        return 0
    before = _earlier(args.against, registry) if args.against else None
    if args.from_json:
        return _rerender(args, registry, before)
    sizes = _sizes(args)
    results = Results()
    with (
        _select(args, registry) as names,
        durable_servers([t for t in registry if t.name in names]) as urls,
    ):
        # Fetched again so that openers built from the environment see the durable servers.
        targets = [t for t in all_targets() if t.name in names]
        missing = [f for f in DEFAULT_FAMILIES if not any(t.backend == f for t in targets)]
        if not args.backend and missing:
            results.notes.append(f"not registered yet, not measured: {', '.join(missing)}")
        # Before the workloads: the commit and start time of the code measured, even if the
        # checkout moves during a long run.
        env = environment(list(argv), server_settings(urls), sqlite_settings(targets))
        subjects = subjects_for(targets, args.flavor or ("sync", "async"))
        chosen = args.workload or list(WORKLOADS)
        progress = Progress(0, enabled=not args.no_progress)
        ctx = Context(sizes, results, progress)
        progress.grow(sum(WORKLOADS[w].units(ctx, subjects) for w in chosen))
        for name in chosen:
            try:
                await WORKLOADS[name].run(ctx, subjects)
            except Exception as exc:  # reported and the run goes on; the exit status says so
                results.problem(f"workload {name} failed: {exc!r}")
                progress.note(traceback.format_exc())
        progress.close()
    goals = evaluate(results, [(t.name, t.backend) for t in targets], sizes.rounds)
    _output(args, results, env, sizes.to_json(), goals, before)
    return 1 if results.problems else 0


def _load(path: str) -> tuple[dict[str, Any], dict[str, Any], Results]:
    """A saved JSON report: its environment, sizes and samples."""
    try:
        with open(path, encoding="utf-8") as f:
            saved = json.load(f)
        return saved["environment"], saved["sizes"], Results.from_json(saved)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot read the JSON report {path}: {exc!r}") from exc


def _families(results: Results, registry: list[Target]) -> list[tuple[str, str]]:
    measured = {s.subject.target for s in results}
    return [(t.name, t.backend) for t in registry if t.name in measured]


Earlier = tuple[str, dict[str, Any], dict[str, Any], list[dict[str, Any]]]
"""An earlier run for `--against`: its path, environment, sizes, and goals checked by this
code."""


def _earlier(path: str, registry: list[Target]) -> Earlier:
    env, sizes, results = _load(path)
    goals = evaluate(results, _families(results, registry), int(sizes.get("rounds", 1)))
    return path, env, sizes, goals


def _rerender(args: argparse.Namespace, registry: list[Target], before: Earlier | None) -> int:
    """The reports of a saved run (`--from-json`): same samples, this version's goals."""
    if args.json == args.from_json:
        raise UsageError("--json would overwrite the report it reads; give another path or '-'")
    env, sizes, results = _load(args.from_json)
    measured = {s.subject.target for s in results}
    families = _families(results, registry)
    unknown = sorted(
        t for t in measured - {name for name, _ in families} if t != "serializer" and "->" not in t
    )
    if unknown:
        results.notes.append(f"targets not registered here, no goals checked: {unknown}")
    commit = git_commit() or "unknown"
    results.notes.append(
        f"report written from {os.path.basename(args.from_json)}, targets checked by the goals "
        f"of git {commit[:10]}"
    )
    goals = evaluate(results, families, int(sizes.get("rounds", 1)))
    _output(args, results, env, sizes, goals, before)
    return 1 if results.problems else 0


def _output(
    args: argparse.Namespace,
    results: Results,
    env: dict[str, Any],
    sizes: dict[str, Any],
    goals: list[dict[str, Any]],
    before: Earlier | None = None,
) -> None:
    machine = env["machine"]
    head = (
        f"checkpointers benchmarks ({sizes['name']}): {machine['cpu_count']} CPUs "
        f"{machine['cpu_model'] or ''}, Python {env['python']}, {machine['os']}\n"
    )
    text = head + "\n" + table(results)
    if goals:
        text += "\nissue targets (each the median of its rounds' ratios)\n" + goals_table(goals)
    if before is not None:
        text += "\n" + _against(before, sizes, goals, markdown=False)
    for note in results.notes:
        text += f"note: {note}\n"
    for problem in results.problems:
        text += f"PROBLEM: {problem}\n"
    sys.stdout.write(text)
    if args.table:
        markdown = args.table.endswith(".md")
        body = table(results, markdown=markdown)
        if goals:
            body += "\n" + goals_table(goals, markdown=markdown)
        if before is not None:
            body += "\n" + _against(before, sizes, goals, markdown=markdown)
        _write(args.table, (f"{head}\n" if markdown else "") + body)
    if args.json and args.json != "-":
        _write(args.json, json_report(results, env, sizes, goals))
        print(f"JSON report: {args.json}")
    plots: list[str] = []
    if args.plot:
        from ._plots import write_plots

        plots = write_plots(results, args.plot)
        for path in plots:
            print(f"plot: {path}")
    if args.readme:
        with open(args.readme, encoding="utf-8") as f:
            text = f.read()
        notes = [*results.notes, *(f"PROBLEM: {p}" for p in results.problems)]
        section = readme_section(env, sizes["name"], goals, plots, args.readme, args.table, notes)
        _write(args.readme, replace_section(text, section))
        print(f"README section: {args.readme}")


def _against(
    before: Earlier, sizes: dict[str, Any], goals: list[dict[str, Any]], *, markdown: bool
) -> str:
    """How the goals of this run compare with those of an earlier one (`--against`)."""
    path, env, then_sizes, then = before
    changes = compare(goals, then)
    commit = (env.get("git_commit") or "unknown")[:10]
    text = (
        f"against {os.path.basename(path)} (git {commit}, {env.get('started_at', '?')}): "
        f"{sum(1 for g in goals if g['met'])} of {len(goals)} issue targets met in this run, "
        f"{sum(1 for g in then if g['met'])} of {len(then)} in that one; "
        f"{len(changes)} decided differently\n"
    )
    here, there = sizes.get("name"), then_sizes.get("name")
    if here != there:
        text += (
            f"(the runs have different sizes, {here} here and {there} there: a row may compare "
            "different thread lengths or rounds)\n"
        )
    if changes:
        text += ("\n" if markdown else "") + changes_table(changes, markdown=markdown)
    return text


def _write(path: str, text: str) -> None:
    directory = os.path.dirname(path)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the benchmarks; returns the exit status (0: every check passed).

    Args:
        argv: Command-line arguments (without the program name); None reads `sys.argv`.

    Returns:
        0 on success, 1 when a check failed or a workload could not run, 2 on a bad
        command line.
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    try:
        args = parser().parse_args(args_list)
    except SystemExit as exc:  # --help, or argparse's own usage error
        return int(exc.code or 0)
    try:
        return asyncio.run(_run(args, args_list))
    except UsageError as exc:
        print(f"checkpointers bench: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("checkpointers bench: interrupted", file=sys.stderr)
        return 130

"""The benchmark harness at its smallest size, on the memory and SQLite targets.

Every workload must produce samples (positive numbers) for ours, the official saver and,
where the backend has one, the raw-driver floor; the plots must be PNG files.
"""

from __future__ import annotations

import asyncio
import json
import os
import uuid
from pathlib import Path

import pytest

from benchmarks import main
from benchmarks._w_migration import migrate_function
from checkpoint_base.testing.targets import all_targets

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
WORKLOADS = ("ops", "e2e", "concurrency", "storage", "serializer")
OPS = (
    "put",
    "put_writes",
    "get_tuple latest",
    "get_tuple by id",
    "list limit=10",
    "list filter 1 of N",
    "list all",
    "delete_thread",
)


def _families() -> list[str]:
    present = {t.backend for t in all_targets()}
    return [f for f in ("memory", "sqlite") if f in present]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[int, dict, Path]:
    out = tmp_path_factory.mktemp("bench")
    status = main(
        [
            "--size",
            "smallest",
            "--backend",
            *_families(),
            "--json",
            str(out / "report.json"),
            "--table",
            str(out / "table.md"),
            "--plot",
            str(out / "plots"),
            "--no-progress",
        ]
    )
    report = json.loads((out / "report.json").read_text())
    return status, report, out


def test_run_passes_its_own_checks(run: tuple[int, dict, Path]) -> None:
    status, report, _ = run
    assert report["problems"] == []
    assert status == 0


def test_every_workload_produced_positive_samples(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    series = report["series"]
    for workload in WORKLOADS:
        mine = [s for s in series if s["workload"] == workload]
        assert mine, f"no series for workload {workload}"
        for s in mine:
            where = f"{workload} {s['op']} {s['params']} {s['target']}-{s['flavor']} {s['kind']}"
            assert s["samples"], f"no samples: {where}"
            assert all(v > 0 for v in s["samples"]), f"a sample is not positive: {where}"
            assert s["summary"]["median"] > 0


def test_each_target_compared_with_official_and_floor(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    series = report["series"]
    targets = {s["target"] for s in series if s["workload"] == "ops"}
    assert "memory" in targets
    if "sqlite" in _families():
        assert "sqlite" in targets
    for target in targets:
        for flavor in ("sync", "async"):
            for op in OPS:
                kinds = {
                    s["kind"]
                    for s in series
                    if s["workload"] == "ops"
                    and s["op"] == op
                    and s["target"] == target
                    and s["flavor"] == flavor
                }
                wanted = {"ours", "official"} | (
                    {"floor"} if target.startswith("sqlite") else set()
                )
                assert kinds == wanted, f"{target}-{flavor} {op}: {kinds}"


def test_e2e_covers_every_durability_mode(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    modes = {s["params"]["durability"] for s in report["series"] if s["workload"] == "e2e"}
    assert modes == {"sync", "async", "exit"}


def test_migration_measured_or_explained(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    measured = [s for s in report["series"] if s["workload"] == "migration"]
    if migrate_function() is None:
        assert any("migration: skipped" in note for note in report["notes"])
        assert not measured
    elif len(_families()) > 1:
        assert measured and all(s["samples"] for s in measured)


def test_environment_is_recorded(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    env = report["environment"]
    assert env["machine"]["cpu_count"] >= 1
    assert env["python"]
    assert env["packages"]["langgraph"]
    assert report["sizes"]["name"] == "smallest"


def test_plots_are_png_files(run: tuple[int, dict, Path]) -> None:
    _, _, out = run
    names = ["storage.png", "throughput.png", "e2e.png", "serializer.png", "latency-memory.png"]
    if "sqlite" in _families():
        names.append("latency-sqlite.png")
    for name in names:
        path = out / "plots" / name
        assert path.is_file(), f"missing plot {name}"
        assert path.read_bytes()[:8] == PNG_MAGIC, f"{name} is not a PNG"
    assert (out / "table.md").read_text().startswith("checkpointers benchmarks")


def test_bad_command_lines() -> None:
    assert main(["--help"]) == 0
    assert main(["--backend", "no-such-backend", "--json", "-", "--no-progress"]) == 2


def test_a_backend_url_may_name_its_driver() -> None:
    """`--backend postgresql+asyncpg://...?ssl=...` points the PostgreSQL targets (ours and
    the official saver, which reads the same variable) at that server in libpq's form."""
    import argparse

    from benchmarks._cli import UsageError, _select

    registry = all_targets()
    variable = "CHECKPOINTERS_TEST_POSTGRES_URL"
    before = os.environ.get(variable)
    wanted = argparse.Namespace(backend=["postgresql+asyncpg://me@db.example/b?ssl=require"])
    with _select(wanted, registry) as names:
        assert os.environ[variable] == "postgresql://me@db.example/b?sslmode=require"
        assert names and all(t.backend == "postgres" for t in registry if t.name in names), names
    assert os.environ.get(variable) == before
    refused = argparse.Namespace(backend=["postgresql+asyncpg://db/b?command_timeout=5"])
    with (
        pytest.raises(UsageError, match="command_timeout= in the PostgreSQL URL"),
        _select(refused, registry),
    ):
        pass


def test_goals_give_each_rounds_ratio(run: tuple[int, dict, Path]) -> None:
    _, report, _ = run
    rounds = report["sizes"]["rounds"]
    assert rounds >= 2
    with_ratio = [g for g in report["goals"] if g["ratio"] is not None and g["issue"] == 5]
    assert with_ratio, "no SQLite goal was evaluated"
    for g in with_ratio:
        if g["unit"] == "bytes":  # storage: one sample, no rounds
            continue
        assert len(g["round_ratios"]) == rounds, g
        assert all(r > 0 for r in g["round_ratios"]), g
        met = sum((r >= g["bound"]) if g["ratio_kind"] == "speed-up" else (r <= g["bound"])
                  for r in g["round_ratios"])  # fmt: skip
        assert f"{met} of {rounds} met" in g["caveat"], g
    e2e = [g for g in with_ratio if "end-to-end" in g["goal"]]
    assert e2e and all(g["ceiling"] > 0 and "InMemorySaver" in g["caveat"] for g in e2e)


def test_round_ratios_split_the_samples_by_round() -> None:
    from benchmarks._goals import GOALS, round_ratios
    from benchmarks._results import SECONDS, Series, SubjectId

    get = next(g for g in GOALS if g.family == "sqlite" and g.op == "get_tuple latest")
    put = next(g for g in GOALS if g.family == "sqlite" and g.op == "put")

    def series(kind: str, samples: list[float]) -> Series:
        return Series("ops", "x", {}, SubjectId("sqlite", "sync", kind), SECONDS, samples)

    ours = series("ours", [1.0, 1.0, 3.0, 2.0, 2.0, 9.0])
    official = series("official", [3.0, 3.0, 0.0, 8.0, 8.0, 8.0])
    # Round 1: medians 1 and 3 (speed-up 3x); round 2: medians 2 and 8 (4x).
    assert round_ratios(get, ours, official, 2) == [3.0, 4.0]
    # A bound of "ours / floor <= x" divides the other way.
    assert round_ratios(put, ours, official, 2) == [1 / 3, 2 / 8]
    # Samples that do not split evenly, or a subject that lost samples: no per-round ratios.
    assert round_ratios(get, ours, official, 4) == []
    assert round_ratios(get, ours, series("official", [3.0] * 4), 2) == []
    assert round_ratios(get, ours, official, 1) == []


def test_a_goal_is_decided_by_the_median_of_its_rounds_ratios() -> None:
    from benchmarks._goals import evaluate
    from benchmarks._results import SECONDS, Results, SubjectId

    # Three rounds of three samples, the first in a slow spell (everything twice as slow),
    # each round 4x in favour of ours, ours with a slow tail in the fast rounds.
    samples = {
        "ours": [2.0, 2.0, 2.0, 1.0, 1.0, 1.9, 1.0, 1.0, 1.9],
        "official": [8.0, 8.0, 8.0, 4.0, 4.0, 4.0, 4.0, 4.0, 4.0],
    }
    results = Results()
    params = {"steps": 100, "payload": 512}
    for kind, values in samples.items():
        subject = SubjectId("redis", "sync", kind)
        results.series("ops", "get_tuple latest", params, subject, SECONDS).samples.extend(
            v * 1e-3 for v in values
        )

    def row(rounds: int) -> dict:  # type: ignore[type-arg]
        return next(
            r
            for r in evaluate(results, [("redis", "redis")], rounds=rounds)
            if r["goal"].startswith("get_tuple latest") and r["target"] == "redis-sync"
        )

    paired = row(3)
    assert paired["round_ratios"] == pytest.approx([4.0, 4.0, 4.0])
    assert paired["ratio"] == pytest.approx(4.0) and paired["met"] is True
    # Pooled, ours' median lands in its tail (1.9) and the official one in its fast rounds
    # (4.0): a ratio below every round's, shown in the note but not deciding.
    assert paired["pooled_ratio"] == pytest.approx(4.0 / 1.9)
    assert paired["ours"] == pytest.approx(1.9e-3)  # the columns stay the pooled medians
    assert "rounds 4.00x-4.00x, 3 of 3 met; pooled medians 2.11x" in paired["caveat"]

    # With one round the pooled ratio decides.
    lone = row(1)
    assert lone["round_ratios"] == []
    assert lone["ratio"] == lone["pooled_ratio"] == pytest.approx(4.0 / 1.9)
    assert lone["met"] is False


def test_compare_lists_the_rows_decided_differently() -> None:
    from benchmarks._goals import compare

    def row(target: str, met: bool | None, ratio: float | None) -> dict:  # type: ignore[type-arg]
        return {
            "issue": 5,
            "target": target,
            "goal": "get_tuple latest >= 3x faster than official",
            "ratio_kind": "speed-up",
            "ratio": ratio,
            "met": met,
            "round_ratios": [] if ratio is None else [ratio - 0.1, ratio + 0.1],
        }

    now = [
        row("a-sync", True, 3.2),  # missed before
        row("b-sync", False, 2.9),  # met before
        row("c-sync", True, 3.5),  # met both times
        row("d-sync", True, 3.1),  # not in the earlier run
        row("e-sync", None, None),  # decided in neither
    ]
    before = [
        row("a-sync", False, 2.8),
        row("b-sync", True, 3.05),
        row("c-sync", True, 3.4),
        row("e-sync", None, None),
    ]
    changed = compare(now, before)
    assert [c["target"] for c in changed] == ["a-sync", "b-sync", "d-sync"]
    assert changed[0]["then"]["met"] is False and changed[0]["now"]["met"] is True
    assert changed[1]["then"]["ratio"] == 3.05 and changed[1]["now"]["ratio"] == 2.9
    assert changed[2]["then"] is None
    assert compare(before, before) == []


def test_against_lists_the_targets_an_earlier_run_decided_differently(
    run: tuple[int, dict, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _, report, out = run
    decided = [g for g in report["goals"] if g["against"] == "official" and g["met"] is not None]
    assert decided, "no goal against an official saver was decided"

    def scaled(name: str, slower: float) -> Path:
        """The run with every official saver `slower` times slower (or bigger)."""
        copy = json.loads(json.dumps(report))
        for series in copy["series"]:
            if series["kind"] == "official":
                factor = 1 / slower if series["unit"] == "ops/s" else slower
                series["samples"] = [v * factor for v in series["samples"]]
        path = tmp_path / name
        path.write_text(json.dumps(copy))
        return path

    # The official savers 1000x slower: every goal against them met; 1000x faster: none.
    slow, fast = scaled("slow.json", 1000.0), scaled("fast.json", 0.001)
    capsys.readouterr()
    args = ["--from-json", str(out / "report.json"), "--json", "-", "--no-progress"]
    assert main([*args, "--against", str(out / "report.json")]) == 0
    assert "; 0 decided differently" in capsys.readouterr().out

    table_md = tmp_path / "t.md"
    argv = ["--from-json", str(slow), "--against", str(fast), "--table", str(table_md)]
    assert main([*argv, "--json", "-", "--no-progress"]) == 0
    text = capsys.readouterr().out
    lines = [x for x in table_md.read_text().splitlines() if x.startswith("| #")]
    summary = next(x for x in text.splitlines() if x.startswith("against fast.json"))
    count = int(summary.rsplit("; ", 1)[1].split()[0])
    assert count > 0 and f"{count} decided differently" in summary
    rows = [x for x in lines if x.count(" | ") == 6]  # the changes table has 7 columns
    assert len(rows) == count
    assert all(r.split(" | ")[4] == "NO" and r.endswith(" | yes |") for r in rows), rows
    assert count == sum(1 for g in decided if g["against"] == "official")
    assert "different sizes" not in text
    # Runs of different sizes are compared all the same, with a word of warning.
    other = json.loads(slow.read_text())
    other["sizes"]["name"] = "full"
    (tmp_path / "full.json").write_text(json.dumps(other))
    assert main([*args, "--against", str(tmp_path / "full.json")]) == 0
    assert "different sizes, smallest here and full there" in capsys.readouterr().out
    # A report it cannot read is a usage error, found before anything runs.
    assert main([*args, "--against", str(tmp_path / "none.json")]) == 2


def test_a_saved_report_is_written_again_without_measuring(
    run: tuple[int, dict, Path], tmp_path: Path
) -> None:
    _, report, out = run
    again = tmp_path / "again.json"
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- results:start -->\nold\n<!-- results:end -->\n")
    status = main(
        [
            *("--from-json", str(out / "report.json"), "--json", str(again)),
            *("--table", str(tmp_path / "t.md"), "--readme", str(readme), "--no-progress"),
        ]
    )
    assert status == 0
    rewritten = json.loads(again.read_text())
    assert isinstance(report["environment"]["git_changed"], list)
    assert rewritten["environment"] == report["environment"]  # the run's, not this one's
    assert [(s["target"], s["op"], s["params"]) for s in rewritten["series"]] == [
        (s["target"], s["op"], s["params"]) for s in report["series"]
    ]
    assert [s["samples"] for s in rewritten["series"]] == [s["samples"] for s in report["series"]]
    assert [(g["target"], g["goal"], g["met"]) for g in rewritten["goals"]] == [
        (g["target"], g["goal"], g["met"]) for g in report["goals"]
    ]
    assert any("report written from report.json" in n for n in rewritten["notes"])
    section = readme.read_text()
    assert "\nold\n" not in section
    assert f"Generated by the harness on {report['environment']['started_at']}" in section
    assert (tmp_path / "t.md").read_text().count("| #5 |") == sum(
        1 for g in report["goals"] if g["issue"] == 5
    )
    # It never overwrites what it reads, and says what it could not read.
    assert main(["--from-json", str(again), "--json", str(again), "--no-progress"]) == 2
    assert main(["--from-json", str(tmp_path / "none.json"), "--json", "-"]) == 2
    (tmp_path / "bad.json").write_text('{"sizes": {}}')
    assert main(["--from-json", str(tmp_path / "bad.json"), "--json", "-"]) == 2


def test_the_readme_section_names_the_commit_and_changed_files(tmp_path: Path) -> None:
    from benchmarks._report import readme_section

    env = {
        "started_at": "2026-12-03T15:00:00+00:00",
        "git_commit": "0123456789abcdef",
        "git_changed": [],
        "command": ["python", "-m", "benchmarks"],
        "machine": {"cpu_count": 2, "cpu_model": "x", "memory_bytes": 2**30, "os": "linux"},
        "python": "3.11",
        "sqlite_library": "3.40",
    }
    readme = str(tmp_path / "README.md")
    clean = readme_section(env, "full", [], [], readme, None)
    assert "(git 0123456789), size `full`" in clean
    changed = readme_section(
        {**env, "git_changed": ["benchmarks/_cli.py"]}, "full", [], [], readme, None
    )
    assert "(git 0123456789 with changes to benchmarks/_cli.py), size `full`" in changed


def test_end_to_end_goals_show_what_inmemorysaver_ran() -> None:
    from benchmarks._goals import evaluate
    from benchmarks._results import THROUGHPUT, Results, SubjectId

    results = Results()
    params = {"durability": "exit", "payload": 512, "turns": 3}
    for target, kind, turns in (
        ("sqlite", "ours", [270.0, 280.0, 275.0]),
        ("sqlite", "official", [220.0, 230.0, 225.0]),
        ("memory", "ours", [280.0, 290.0, 285.0]),
        ("memory", "official", [290.0, 300.0, 292.5]),
    ):
        series = results.series(
            "e2e", "turns/s", params, SubjectId(target, "sync", kind), THROUGHPUT
        )
        series.samples.extend(turns)
    # Another thread length: its own reference, never this one's.
    other = {**params, "turns": 20}
    for kind in ("ours", "official"):
        subject = SubjectId("sqlite", "sync", kind)
        results.series("e2e", "turns/s", other, subject, THROUGHPUT).samples.append(100.0)

    rows = [
        r for r in evaluate(results, [("sqlite", "sqlite")], rounds=3) if "end-to-end" in r["goal"]
    ]
    row = next(r for r in rows if r["params"] == params)
    assert row["ratio"] == 275.0 / 225.0 and row["met"] is False
    assert row["reference"] == 292.5
    assert row["ceiling"] == 292.5 / 225.0
    assert "InMemorySaver 292.5/s: as fast would be 1.30x" in row["caveat"]
    assert "rounds " in row["caveat"]
    lone = next(r for r in rows if r["params"] == other)
    assert lone["ratio"] == 1.0
    assert "ceiling" not in lone and "InMemorySaver" not in lone["caveat"]


def test_interleave_runs_each_block_for_every_subject_turning_the_order() -> None:
    import asyncio
    from types import SimpleNamespace

    from benchmarks._runner import interleave

    problems: list[str] = []
    ctx = SimpleNamespace(
        sizes=SimpleNamespace(warmup=1, rounds=2),
        results=SimpleNamespace(problem=problems.append),
        progress=SimpleNamespace(phase="test", note=lambda _: None, advance=lambda: None),
    )
    subjects = [SimpleNamespace(id=SimpleNamespace(label=name)) for name in "ABC"]
    calls: list[tuple[str, str, bool]] = []

    def block(name: str, fail_on: tuple[str, bool] | None = None):  # type: ignore[no-untyped-def]
        async def run(subject: SimpleNamespace, measured: bool) -> None:
            calls.append((name, subject.id.label, measured))
            if (subject.id.label, measured) == fail_on:
                raise RuntimeError("boom")

        return run

    asyncio.run(interleave(ctx, subjects, block("1", fail_on=("C", True)), block("2")))  # type: ignore[arg-type]
    assert calls == [
        # warm-up round, not measured: A B C for each block
        ("1", "A", False), ("1", "B", False), ("1", "C", False),
        ("2", "A", False), ("2", "B", False), ("2", "C", False),
        # round 2 starts with B; C fails in block 1 and is left out from then on
        ("1", "B", True), ("1", "C", True), ("1", "A", True),
        ("2", "B", True), ("2", "A", True),
        # round 3 starts with C (gone), then A, B
        ("1", "A", True), ("1", "B", True),
        ("2", "A", True), ("2", "B", True),
    ]  # fmt: skip
    assert len(problems) == 1 and "C failed in 'test'" in problems[0], problems


def test_interleave_runs_the_rounds_with_the_heap_made_before_them_frozen() -> None:
    """The harness's own objects (made before the rounds) stay out of full collections,
    whose pauses fell on whichever subject was running; what the rounds make does not."""
    import asyncio
    import gc
    from types import SimpleNamespace

    from benchmarks._runner import interleave

    ctx = SimpleNamespace(
        sizes=SimpleNamespace(warmup=0, rounds=1),
        results=SimpleNamespace(problem=lambda _: None),
        progress=SimpleNamespace(phase="test", note=lambda _: None, advance=lambda: None),
    )
    frozen_before = gc.get_freeze_count()
    harness_object: list[object] = []
    harness_object.append(harness_object)  # a cycle: tracked by the collector
    seen: list[tuple[int, bool, bool]] = []

    async def block(subject: object, measured: bool) -> None:
        made_in_round: list[object] = []
        made_in_round.append(made_in_round)
        tracked = gc.get_objects()
        seen.append(
            (
                gc.get_freeze_count(),
                any(o is harness_object for o in tracked),
                any(o is made_in_round for o in tracked),
            )
        )
        raise RuntimeError("a failing block still unfreezes")

    subject = SimpleNamespace(id=SimpleNamespace(label="A"))
    asyncio.run(interleave(ctx, [subject], block))  # type: ignore[arg-type, list-item]
    assert len(seen) == 1
    frozen, harness_visited, round_visited = seen[0]
    assert frozen > frozen_before
    assert not harness_visited and round_visited
    assert gc.get_freeze_count() == frozen_before
    assert any(o is harness_object for o in gc.get_objects())


def test_retention_bench_reports_each_setting(tmp_path: Path) -> None:
    from benchmarks import retention_bench

    out = tmp_path / "retention.md"
    assert (
        retention_bench.main(
            ["--target", "sqlite", "--steps", "8", "--rounds", "1", "--out", str(out)]
        )
        == 0
    )
    rows = [line.split("|") for line in out.read_text().splitlines() if line.startswith("| sqlite")]
    assert [r[2].strip() for r in rows] == ["keep_last=None", "keep_last=20", "keep_last=1"]
    kept = [int(r[7]) for r in rows]
    assert kept == [8, 8, 1]
    sizes = [float(r[8].split()[0]) for r in rows]
    assert sizes[2] < sizes[0]  # one checkpoint kept holds less than eight


def test_sweep_bench_prunes_then_deletes_every_thread(tmp_path: Path) -> None:
    from benchmarks import sweep_bench

    out = tmp_path / "sweep.md"
    argv = ["--target", "sqlite", "--threads", "6", "--steps", "4", "--rounds", "1"]
    assert sweep_bench.main([*argv, "--out", str(out)]) == 0
    (row,) = [line.split("|") for line in out.read_text().splitlines() if line.startswith("| s")]
    assert row[1].strip() == "sqlite"
    assert row[2].strip() == "24"  # 6 threads of 4 checkpoints, counted before the sweeps
    # Each column a time; the run itself asserted what each sweep found and left.
    assert all(cell.strip().endswith(("ms", "µs")) for cell in row[3:-1])


def test_lists_bench_stores_less_in_segments_and_reads_every_checkpoint(tmp_path: Path) -> None:
    from benchmarks import lists_bench

    out = tmp_path / "lists.md"
    argv = ["--target", "sqlite", "--steps", "40", "--rounds", "1", "--reads", "2", "--turns", "3"]
    assert lists_bench.main([*argv, "--out", str(out)]) == 0  # it read back every checkpoint
    rows = {
        r[2].strip(): r
        for r in (line.split("|") for line in out.read_text().splitlines())
        if r[1:2] == [" sqlite "]
    }
    assert set(rows) == {"segments", "whole"}
    assert [rows["whole"][i].strip() for i in (4, 6, 8, 10)] == ["1.00x"] * 3 + ["1.000x"]
    assert float(rows["segments"][10].strip().rstrip("x")) < 0.8  # 40 steps: lists of 30
    assert float(rows["segments"][7]) > 0  # turns per second of the graph


def test_cold_bench_times_each_read_both_ways_against_the_official_saver(tmp_path: Path) -> None:
    from benchmarks import cold_bench

    out = tmp_path / "cold.md"
    argv = ["--target", "sqlite", "memory", "--steps", "12", "--rounds", "2", "--reads", "2"]
    assert cold_bench.main([*argv, "--out", str(out)]) == 0  # every read found what it should
    lines = out.read_text().splitlines()
    rows = [[cell.strip() for cell in line.split("|")[1:-1]] for line in lines]
    rows = [row for row in rows if row and row[0] in {"sqlite", "memory"}]
    assert [tuple(r[:3]) for r in rows] == [
        (target, flavor, read)
        for target in ("sqlite", "memory")
        for flavor in ("sync", "async")
        for read in ("get_tuple latest", "list(limit=10)")
    ]
    for row in rows:
        # ours, official, speed-up; after a turn the same; then after / back to back
        assert all(cell.endswith(("ms", "µs")) for cell in (row[3], row[4], row[6], row[7]))
        ratios = [float(row[i].rstrip("x")) for i in (5, 8, 9)]
        assert all(r > 0 for r in ratios)


@pytest.mark.parametrize("sync", [True, False])
def test_cold_bench_reads_fail_on_a_missing_checkpoint_or_a_short_page(sync: bool) -> None:
    from langgraph.checkpoint.memory import InMemorySaver

    from benchmarks._handles import SaverHandle
    from benchmarks.cold_bench import _read

    empty = SaverHandle(InMemorySaver(), sync=sync)
    with pytest.raises(AssertionError, match="latest checkpoint is missing"):
        asyncio.run(_read(empty, "get_tuple latest", "nobody", 10)())
    with pytest.raises(AssertionError, match="a page of 0, not 10"):
        asyncio.run(_read(empty, "list(limit=10)", "nobody", 10)())


def test_cold_bench_speed_up_is_the_median_of_the_rounds_ratios() -> None:
    from benchmarks.cold_bench import READS, SAVERS, WAYS, rows

    # Three rounds: official / ours = 2, 4 and 3 (back to back); a slow round of ours
    # (the third) must not move the ratio the way pooled medians would.
    ours = [[1.0, 1.0], [1.0, 1.0], [4.0, 4.0]]
    theirs = [[2.0, 2.0], [4.0, 4.0], [12.0, 12.0]]
    samples = {(n, w, s): [] for n in READS for w in WAYS for s in SAVERS}
    for name in READS:
        for way in WAYS:
            samples[name, way, "ours"] = ours if way == WAYS[0] else [[2.0, 2.0]] * 3
            samples[name, way, "official"] = theirs if way == WAYS[0] else [[3.0, 3.0]] * 3
    (row, _) = (r.split("|")[1:-1] for r in rows("t", "sync", samples))
    cells = [c.strip() for c in row]
    assert cells[:3] == ["t", "sync", "get_tuple latest"]
    assert cells[5] == "3.00x"  # median of 2, 4, 3
    assert cells[8] == "1.50x"
    assert cells[9] == "2.00x"  # ours after a turn against back to back: 2, 2 and 0.5


async def test_the_postgres_floor_compresses_its_bytes_as_our_tables_do() -> None:
    """The floor's tables use lz4 where the server has it (as checkpoint_postgres' do since
    its migration 3), not pglz, which costs a put of a few KB more than lz4 does."""
    from benchmarks._floors import PostgresFloor
    from checkpoint_base.testing import servers
    from checkpoint_postgres._migrations import HAS_LZ4

    floor = await PostgresFloor(servers.postgres_url(), sync=False).open()
    try:
        has_lz4 = bool(await floor._run(HAS_LZ4, ()))
        rows = await floor._run(
            "SELECT c.relname, a.attcompression FROM pg_catalog.pg_attribute a"
            " JOIN pg_catalog.pg_class c ON c.oid = a.attrelid"
            " JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace"
            " WHERE n.nspname = %s AND a.attname = 'data' ORDER BY c.relname",
            (floor.schema,),
        )
        assert [r[0] for r in rows] == ["floor_cp", "floor_wr"]
        assert {r[1] for r in rows} == ({"l"} if has_lz4 else {""})
        if not os.environ.get("CHECKPOINTERS_TEST_POSTGRES_URL"):
            assert has_lz4  # Debian's PostgreSQL 15, which the test run starts, has it
    finally:
        await floor.aclose()


@pytest.mark.parametrize("sync", [True, False])
def test_the_redis_floor_reaches_a_cluster_with_credentials_and_tls(sync: bool) -> None:
    """The floor's client takes what the saver's URL gives (it read host:port pairs alone, so
    a password or TLS option failed it); the saver's own options stay out."""
    from benchmarks._floor_redis import redis_client
    from checkpoint_base.testing import servers

    url = f"{servers.redis_cluster_url(tls=True)}&key_prefix=bench"
    client = redis_client(url, sync=sync)
    key = f"{{floor}}:{uuid.uuid4()}"
    if sync:
        try:
            assert client.set(key, b"v") and client.get(key) == b"v"
            client.delete(key)
        finally:
            client.close()
        return

    async def roundtrip() -> None:
        try:
            assert await client.set(key, b"v") and await client.get(key) == b"v"
            await client.delete(key)
        finally:
            await client.aclose()

    asyncio.run(roundtrip())

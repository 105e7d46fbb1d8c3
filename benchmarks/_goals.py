"""The targets the backend issues set, checked against a run's medians.

Each goal compares our median with the official saver's (same target, same flavor) or with
the raw-driver floor, on the parameters the issue names (100-step thread, 200-step storage,
the first payload); when the run did not measure those parameters (a smaller size), the
largest thread length measured is used and the row says so.

The verdict is paired: each round gives the ratio of our median and the other subject's in
that round (their blocks ran next to each other), and the goal's ratio is the median of
those per-round ratios. The ratio of the medians of all rounds pooled is kept beside it
(`pooled_ratio`) but decides nothing: when the machine has a slow spell during some rounds,
each pooled median falls wherever its own samples split between the slow and the fast
rounds, and the pooled ratio can lie outside every round's ratio (the full run at 7833370,
Redis `get_tuple` latest, sync: rounds 3.57x, 3.62x, 3.62x, 2.99x, 3.49x; pooled 2.73x).
With one round, or samples that do not split evenly by round (storage bytes), the pooled
ratio is the verdict.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from typing import Any

from ._results import BYTES, SECONDS, THROUGHPUT, Results, Series, summarize

__all__ = ["GOALS", "Goal", "compare", "evaluate"]


@dataclass(frozen=True)
class Goal:
    """One target of an issue.

    Attributes:
        family: Backend family the goal applies to.
        issue: The issue that sets it.
        text: What the issue asks, in its words.
        workload: Workload of the series.
        op: Operation of the series.
        unit: Unit of the series.
        against: "official" or "floor".
        bound: The ratio the issue asks for.
        speedup: True: `against / ours >= bound` (ours faster, latency) or
            `ours / against >= bound` (throughput); False: `ours / against <= bound`.
        params: Parameters the series must have (others: the first payload, largest steps).
        only: The goal applies only to targets whose name contains one of these.
    """

    family: str
    issue: int
    text: str
    workload: str
    op: str
    unit: str
    against: str
    bound: float
    speedup: bool
    params: tuple[tuple[str, Any], ...] = ()
    only: tuple[str, ...] = ()


def _g(
    family: str,
    issue: int,
    text: str,
    op: str,
    against: str,
    bound: float,
    speedup: bool,
    workload: str = "ops",
    unit: str = SECONDS,
    only: tuple[str, ...] = (),
    **params: Any,
) -> Goal:
    return Goal(
        family,
        issue,
        text,
        workload,
        op,
        unit,
        against,
        bound,
        speedup,
        tuple(params.items()),
        only,
    )


# Targets whose saver holds a pool (the official saver gets one too): issue 6 asks for
# "concurrent writers through a pool".
POOLED = ("pool", "pgbouncer")

GOALS = (
    _g(
        "sqlite",
        5,
        "put within 1.2x of a raw sqlite3 INSERT",
        "put",
        "floor",
        1.2,
        False,
        steps=100,
    ),
    _g(
        "sqlite",
        5,
        "get_tuple latest >= 3x faster than official",
        "get_tuple latest",
        "official",
        3.0,
        True,
        steps=100,
    ),
    _g(
        "sqlite",
        5,
        "list(limit=10) >= 3x faster than official",
        "list limit=10",
        "official",
        3.0,
        True,
        steps=100,
    ),
    _g(
        "sqlite",
        5,
        "end-to-end >= 1.3x official turns/s",
        "turns/s",
        "official",
        1.3,
        True,
        workload="e2e",
        unit=THROUGHPUT,
    ),
    _g(
        "sqlite",
        5,
        "bytes for 200 steps <= official",
        "bytes",
        "official",
        1.0,
        False,
        workload="storage",
        unit=BYTES,
        steps=200,
    ),
    _g(
        "postgres",
        6,
        "put within 1.2x of a raw psycopg INSERT",
        "put",
        "floor",
        1.2,
        False,
        steps=100,
    ),
    _g(
        "postgres",
        6,
        "get_tuple latest >= 2x faster than official",
        "get_tuple latest",
        "official",
        2.0,
        True,
        steps=100,
    ),
    _g(
        "postgres",
        6,
        "list(limit=10) >= 2.5x faster than official",
        "list limit=10",
        "official",
        2.5,
        True,
        steps=100,
    ),
    _g(
        "postgres",
        6,
        "8 writers via a pool >= 2.5x official throughput",
        "put",
        "official",
        2.5,
        True,
        workload="concurrency",
        unit=THROUGHPUT,
        only=POOLED,
        writers=8,
    ),
    _g(
        "postgres",
        6,
        "16 writers via a pool >= 2.5x official throughput",
        "put",
        "official",
        2.5,
        True,
        workload="concurrency",
        unit=THROUGHPUT,
        only=POOLED,
        writers=16,
    ),
    _g(
        "postgres",
        6,
        "end-to-end >= 1.5x official turns/s",
        "turns/s",
        "official",
        1.5,
        True,
        workload="e2e",
        unit=THROUGHPUT,
    ),
    _g(
        "postgres",
        6,
        "bytes for 200 steps <= official",
        "bytes",
        "official",
        1.0,
        False,
        workload="storage",
        unit=BYTES,
        steps=200,
    ),
    _g("redis", 7, "put within 1.5x of a raw redis-py SET", "put", "floor", 1.5, False, steps=100),
    _g(
        "redis",
        7,
        "get_tuple latest >= 3x faster than plainredis",
        "get_tuple latest",
        "official",
        3.0,
        True,
        steps=100,
    ),
    _g(
        "redis",
        7,
        "list(limit=10) >= 5x faster than plainredis",
        "list limit=10",
        "official",
        5.0,
        True,
        steps=100,
    ),
    _g(
        "redis",
        7,
        "list(filter step) 1 of 100 >= 20x faster than plainredis",
        "list filter 1 of N",
        "official",
        20.0,
        True,
        steps=100,
    ),
    _g(
        "redis",
        7,
        "memory for 200 steps <= plainredis",
        "bytes",
        "official",
        1.0,
        False,
        workload="storage",
        unit=BYTES,
        steps=200,
    ),
)


MIGRATION_GOAL = 1000.0  # checkpoints per second, SQLite to PostgreSQL (issue 8)


def _migration_rows(results: Results) -> list[dict[str, Any]]:
    rows = []
    for s in results:
        if s.workload != "migration" or s.op != "checkpoints/s" or not s.samples:
            continue
        if not (s.subject.target.startswith("sqlite") and "->postgres" in s.subject.target):
            continue
        median = summarize(s)["median"]
        rows.append(
            {
                "issue": 8,
                "target": s.subject.target,
                "goal": f">= {MIGRATION_GOAL:g} checkpoints/s SQLite -> PostgreSQL",
                "params": s.params,
                "ours": median,
                "against": "absolute",
                "absolute": MIGRATION_GOAL,
                "unit": THROUGHPUT,
                "ratio": None if median is None else median / MIGRATION_GOAL,
                "ratio_kind": "of the goal",
                "bound": 1.0,
                "met": None if median is None else median >= MIGRATION_GOAL,
                "caveat": "" if s.params.get("threads") == 1000 else "not 1,000 x 50 checkpoints",
            }
        )
    return rows


def _pick(candidates: list[Series], goal: Goal) -> tuple[Series | None, str]:
    wanted = dict(goal.params)
    exact = [s for s in candidates if all(s.params.get(k) == v for k, v in wanted.items())]
    if exact:
        return exact[0], ""
    if "steps" in wanted:
        others = {k: v for k, v in wanted.items() if k != "steps"}
        near = [s for s in candidates if all(s.params.get(k) == v for k, v in others.items())]
        if near:
            best = max(near, key=lambda s: s.params.get("steps", 0))
            return best, f"measured at steps={best.params.get('steps')}, not {wanted['steps']}"
    return None, ""


def _series(results: Results, goal: Goal, target: str, flavor: str, kind: str) -> list[Series]:
    found = results.find(goal.workload, goal.op, target, flavor, kind, goal.unit)
    if not found:
        return []
    first_payload = min(s.params.get("payload", 0) for s in found)
    return [s for s in found if s.params.get("payload", 0) == first_payload]


def evaluate(
    results: Results, targets: list[tuple[str, str]], rounds: int = 1
) -> list[dict[str, Any]]:
    """Every applicable goal for each measured (target name, family), per flavor and mode.

    `rounds`: the run's measured rounds. With more than one, each row gives the ratio of
    each round's medians (`round_ratios`), and its `ratio` and verdict are their median (see
    the module's docstring); the note says how many rounds met the bound and what the
    medians of all rounds pooled give.
    """
    rows: list[dict[str, Any]] = []
    for name, family in targets:
        for goal in GOALS:
            if goal.family != family or (goal.only and not any(o in name for o in goal.only)):
                continue
            for flavor in ("sync", "async"):
                ours_all = _series(results, goal, name, flavor, "ours")
                groups: dict[Any, list[Series]] = {}
                for s in ours_all:  # e2e: one row per durability mode and thread length
                    mode = s.params.get("durability")
                    if mode is not None:
                        mode = f"durability={mode}, {s.params.get('turns')} turns per thread"
                    groups.setdefault(mode, []).append(s)
                for mode, group in groups.items():
                    measured = [s for s in group if s.samples]
                    ours, caveat = _pick(measured, goal)
                    if ours is None:
                        if group and not measured:  # e.g. storage of a backend with no measure
                            rows.append(
                                _row(
                                    goal,
                                    name,
                                    flavor,
                                    mode,
                                    group[0],
                                    None,
                                    group[0].note or "not measured",
                                    rounds,
                                )
                            )
                        continue
                    other_all = _series(results, goal, name, flavor, goal.against)
                    other = next((s for s in other_all if s.params == ours.params), None)
                    row = _row(goal, name, flavor, mode, ours, other, caveat, rounds)
                    if goal.workload == "e2e":
                        _add_reference(row, results, goal, flavor, ours.params)
                    rows.append(row)
    return rows + _migration_rows(results)


def _add_reference(
    row: dict[str, Any], results: Results, goal: Goal, flavor: str, params: dict[str, Any]
) -> None:
    """Add what LangGraph's `InMemorySaver` ran under the same end-to-end parameters.

    It stores nothing and only pays its serializer, so it shows how much of a turn is the
    graph's own work: a saver as fast as it would reach `ceiling` times the official
    saver's turns/s. Not a strict bound (our serializer is faster than its own), but a goal
    above it asks for a saver faster than keeping the checkpoints in a dict.
    """
    if goal.unit != THROUGHPUT:  # turns/s: a higher reference is a higher ceiling
        return
    found = results.find(goal.workload, goal.op, "memory", flavor, "official", goal.unit)
    memory = next((s for s in found if s.params == params and s.samples), None)
    theirs = row.get(goal.against)
    if memory is None or not theirs:
        return
    reference = summarize(memory)["median"]
    if not reference:
        return
    row["reference"] = reference
    row["ceiling"] = reference / theirs
    note = f"InMemorySaver {reference:,.1f}/s: as fast would be {row['ceiling']:.2f}x"
    row["caveat"] = "; ".join(n for n in (row["caveat"], note) if n)


def _ratio(goal: Goal, mine: float, theirs: float) -> float:
    """The goal's ratio of our value and the other subject's (see `Goal.speedup`)."""
    if goal.speedup:
        return theirs / mine if goal.unit == SECONDS else mine / theirs
    return mine / theirs


def _met(goal: Goal, ratio: float) -> bool:
    return ratio >= goal.bound if goal.speedup else ratio <= goal.bound


def round_ratios(goal: Goal, ours: Series, other: Series, rounds: int) -> list[float]:
    """The goal's ratio of each round's medians; empty when the samples do not split evenly.

    Every workload records the same number of samples per subject and round, round after
    round, so sample i of a series belongs to round i // (n / rounds).
    """
    n = len(ours.samples)
    if rounds < 2 or n < rounds or n % rounds or len(other.samples) != n:
        return []
    per = n // rounds
    out = []
    for r in range(rounds):
        mine = statistics.median(ours.samples[r * per : (r + 1) * per])
        theirs = statistics.median(other.samples[r * per : (r + 1) * per])
        if not mine or not theirs:
            return []
        out.append(_ratio(goal, mine, theirs))
    return out


def _row(
    goal: Goal,
    target: str,
    flavor: str,
    mode: Any,
    ours: Series,
    other: Series | None,
    caveat: str,
    rounds: int = 1,
) -> dict[str, Any]:
    mine = summarize(ours)["median"] if ours.samples else None
    theirs = summarize(other)["median"] if other is not None else None
    pooled = _ratio(goal, mine, theirs) if mine and theirs else None
    per_round = round_ratios(goal, ours, other, rounds) if pooled is not None and other else []
    ratio = statistics.median(per_round) if per_round else pooled
    met = None if ratio is None else _met(goal, ratio)
    notes = [caveat if other is not None else (caveat or f"no {goal.against} measured")]
    if per_round:
        kept = sum(_met(goal, r) for r in per_round)
        notes.append(
            f"rounds {min(per_round):.2f}x-{max(per_round):.2f}x, {kept} of {len(per_round)} "
            f"met; pooled medians {pooled:.2f}x"
        )
    label = goal.text + (f" [{mode}]" if mode is not None else "")
    return {
        "issue": goal.issue,
        "target": f"{target}-{flavor}",
        "goal": label,
        "params": ours.params,
        "ours": mine,
        goal.against: theirs,
        "against": goal.against,
        "unit": goal.unit,
        "ratio": ratio,
        "pooled_ratio": pooled,
        "ratio_kind": ("speed-up" if goal.speedup else "ours/" + goal.against),
        "bound": goal.bound,
        "met": met,
        "round_ratios": per_round,
        "caveat": "; ".join(n for n in notes if n),
    }


def compare(goals: list[dict[str, Any]], before: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of `goals` whose verdict differs from the same row in `before` (another run's
    goals, checked by the same code), in `goals`' order.

    Rows are the same when they name the same target and goal (an end-to-end goal's label
    names its mode). A row met in one run and missed or not measured in the other differs;
    rows decided in neither (no ratio) are left out, and so are rows of targets that only the
    earlier run measured. Each result has the row's `target`, `goal` and `issue`, and
    `ratio`, `met`, `round_ratios` of `now` and of `then` (None for a row that run does not
    have).
    """
    then = {(g["target"], g["goal"]): g for g in before}
    changed = []
    for g in goals:
        old = then.get((g["target"], g["goal"]))
        if (old["met"] if old is not None else None) == g["met"]:
            continue
        changed.append(
            {
                "issue": g["issue"],
                "target": g["target"],
                "goal": g["goal"],
                "ratio_kind": g["ratio_kind"],
                "now": {k: g.get(k) for k in ("ratio", "met", "round_ratios")},
                "then": None
                if old is None
                else {k: old.get(k) for k in ("ratio", "met", "round_ratios")},
            }
        )
    return changed

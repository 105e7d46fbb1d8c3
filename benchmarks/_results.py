"""Samples, as measured, and their summaries.

A `Series` is every sample of one (workload, operation, parameters, subject) in one unit:
seconds per operation, operations per second (throughput of a whole round), or bytes.
Warm-up rounds never reach a series. Summaries are computed from the samples only.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Results", "Series", "SubjectId", "summarize"]

SECONDS = "s"
THROUGHPUT = "ops/s"
BYTES = "bytes"


@dataclass(frozen=True)
class SubjectId:
    """Who was measured: a target (or "serializer"), a flavor, and ours/official/floor."""

    target: str
    flavor: str
    kind: str

    @property
    def label(self) -> str:
        """`sqlite-sync ours`."""
        return (
            f"{self.target}-{self.flavor} {self.kind}"
            if self.flavor
            else f"{self.target} {self.kind}"
        )


@dataclass
class Series:
    """Every sample of one measurement, in `unit`."""

    workload: str
    op: str
    params: dict[str, Any]
    subject: SubjectId
    unit: str
    samples: list[float] = field(default_factory=list)
    note: str = ""

    @property
    def params_text(self) -> str:
        """`steps=100 payload=512`."""
        return " ".join(f"{k}={v}" for k, v in self.params.items())

    def to_json(self) -> dict[str, Any]:
        """The series with its summary, for the JSON report."""
        return {
            "workload": self.workload,
            "op": self.op,
            "params": self.params,
            "target": self.subject.target,
            "flavor": self.subject.flavor,
            "kind": self.subject.kind,
            "unit": self.unit,
            "note": self.note,
            "summary": summarize(self),
            "samples": self.samples,
        }


def _percentile(ordered: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if len(ordered) == 1:
        return ordered[0]
    pos = (len(ordered) - 1) * q
    lo = math.floor(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def summarize(series: Series) -> dict[str, float | int | None]:
    """Median, p95, p99 and (for latencies) operations per second; None without samples."""
    samples = series.samples
    if not samples:
        return {"n": 0, "median": None, "p95": None, "p99": None, "ops_per_s": None}
    ordered = sorted(samples)
    out: dict[str, float | int | None] = {
        "n": len(samples),
        "median": statistics.median(ordered),
        "p95": _percentile(ordered, 0.95),
        "p99": _percentile(ordered, 0.99),
        "min": ordered[0],
        "max": ordered[-1],
    }
    if series.unit == SECONDS:
        total = sum(samples)
        out["ops_per_s"] = len(samples) / total if total > 0 else None
    elif series.unit == THROUGHPUT:
        out["ops_per_s"] = out["median"]
    else:
        out["ops_per_s"] = None
    return out


class Results:
    """Every series of a run, in the order they were first measured."""

    def __init__(self) -> None:
        self._series: dict[tuple[Any, ...], Series] = {}
        self.problems: list[str] = []
        self.notes: list[str] = []

    def series(
        self,
        workload: str,
        op: str,
        params: Mapping[str, Any],
        subject: SubjectId,
        unit: str = SECONDS,
        note: str = "",
    ) -> Series:
        """The series of this measurement, created empty on first use."""
        key = (workload, op, tuple(params.items()), subject, unit)
        found = self._series.get(key)
        if found is None:
            found = Series(workload, op, dict(params), subject, unit, note=note)
            self._series[key] = found
        return found

    def add(
        self,
        workload: str,
        op: str,
        params: Mapping[str, Any],
        subject: SubjectId,
        value: float,
        unit: str = SECONDS,
    ) -> None:
        """Record one sample."""
        self.series(workload, op, params, subject, unit).samples.append(value)

    def problem(self, text: str) -> None:
        """Record a failed check (the run then exits non-zero)."""
        self.problems.append(text)

    @classmethod
    def from_json(cls, report: Mapping[str, Any]) -> Results:
        """The series, notes and problems of a JSON report (`Series.to_json` read back).

        Raises:
            KeyError, TypeError: `report` is not such a report.
        """
        results = cls()
        for record in report["series"]:
            subject = SubjectId(record["target"], record["flavor"], record["kind"])
            found = results.series(
                record["workload"],
                record["op"],
                record["params"],
                subject,
                record["unit"],
                record.get("note", ""),
            )
            found.samples.extend(record["samples"])
        results.notes.extend(report.get("notes", ()))
        results.problems.extend(report.get("problems", ()))
        return results

    def __iter__(self) -> Iterator[Series]:
        return iter(self._series.values())

    def find(
        self, workload: str, op: str, target: str, flavor: str, kind: str, unit: str = SECONDS
    ) -> list[Series]:
        """Series of this measurement for every parameter set."""
        return [
            s
            for s in self
            if s.workload == workload
            and s.op == op
            and s.unit == unit
            and s.subject == SubjectId(target, flavor, kind)
        ]

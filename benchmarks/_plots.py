"""PNG plots of a run (matplotlib, Agg backend): what `--plot DIR` writes.

- `latency-<target>.png`: median latency of each storage operation per subject (bars, with
  the p95 as a whisker), for the longest thread and the first payload measured;
- `storage.png`: bytes stored against thread length, one panel per target;
- `throughput.png`: checkpoints per second against concurrent writers, one panel per target;
- `e2e.png`: end-to-end turns per second for each durability mode (the longest threads),
  one panel per target;
- `serializer.png`: dumps+loads latency against thread length.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from ._results import BYTES, THROUGHPUT, Results, Series, summarize

__all__ = ["write_plots"]

OPS_ORDER = (
    "put",
    "put_writes",
    "get_tuple latest",
    "get_tuple by id",
    "list limit=10",
    "list filter 1 of N",
    "list all",
    "delete_thread",
)
KIND_STYLE = {"ours": "-", "official": "--", "floor": ":"}
# One colour per subject label in every panel and plot.
COLORS = {
    f"{flavor} {kind}": f"C{i}"
    for i, (flavor, kind) in enumerate(
        (f, k) for f in ("sync", "async") for k in ("ours", "official", "floor")
    )
}


def _plt() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _targets(results: Results, workload: str) -> list[str]:
    return list(dict.fromkeys(s.subject.target for s in results if s.workload == workload))


def _labels(series: Sequence[Series]) -> list[str]:
    return list(dict.fromkeys(f"{s.subject.flavor} {s.subject.kind}" for s in series))


def _latency(plt: Any, results: Results, target: str, path: str) -> bool:
    series = [s for s in results if s.workload == "ops" and s.subject.target == target]
    series = [s for s in series if s.samples and s.unit == "s"]
    if not series:
        return False
    payload = min(s.params["payload"] for s in series)
    longest = max(s.params["steps"] for s in series if s.op != "list all")
    chosen = [
        s
        for s in series
        if s.params["payload"] == payload and (s.op == "list all" or s.params["steps"] == longest)
    ]
    ops = [op for op in OPS_ORDER if any(s.op == op for s in chosen)]
    labels = _labels(chosen)
    fig, ax = plt.subplots(figsize=(11, 5))
    width = 0.8 / max(len(labels), 1)
    for j, label in enumerate(labels):
        xs, medians, whiskers = [], [], []
        for i, op in enumerate(ops):
            s = next(
                (
                    s
                    for s in chosen
                    if s.op == op and f"{s.subject.flavor} {s.subject.kind}" == label
                ),
                None,
            )
            if s is None:
                continue
            m = summarize(s)
            xs.append(i + (j - (len(labels) - 1) / 2) * width)
            medians.append(float(m["median"] or 0) * 1e3)
            whiskers.append(max(float(m["p95"] or 0) * 1e3 - medians[-1], 0))
        ax.bar(
            xs,
            medians,
            width,
            yerr=[[0] * len(whiskers), whiskers],
            label=label,
            capsize=2,
            color=COLORS.get(label),
        )
    ax.set_xticks(range(len(ops)))
    ax.set_xticklabels(ops, rotation=20, ha="right")
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (log; whisker: p95)")
    ax.set_title(f"{target}: storage operations, {longest}-step thread, payload {payload}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _grid(plt: Any, n: int) -> tuple[Any, list[Any]]:
    """A figure with `n` panels, three per row; the unused ones hidden."""
    cols = min(3, n)
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(5.5 * cols, 4.2 * rows), squeeze=False)
    flat = [ax for row in axes for ax in row]
    for ax in flat[n:]:
        ax.set_visible(False)
    return fig, flat[:n]


def _storage(plt: Any, results: Results, path: str) -> bool:
    series = [s for s in results if s.workload == "storage" and s.unit == BYTES and s.samples]
    if not series:
        return False
    targets = list(dict.fromkeys(s.subject.target for s in series))
    payloads = sorted({s.params["payload"] for s in series})
    fig, axes = _grid(plt, len(targets))
    for ax, target in zip(axes, targets, strict=True):
        for payload in payloads:
            lines: dict[str, list[tuple[int, float]]] = {}
            for s in series:
                if s.subject.target == target and s.params["payload"] == payload:
                    lines.setdefault(s.subject.kind, []).append((s.params["steps"], s.samples[0]))
            for kind, points in lines.items():
                points.sort()
                ax.plot(
                    [p[0] for p in points],
                    [max(p[1], 1.0) / 2**20 for p in points],
                    marker="o" if payload == payloads[0] else "s",
                    linestyle=KIND_STYLE.get(kind, "-"),
                    label=f"{kind}, payload {payload}",
                )
        ax.set_yscale("log")
        ax.set_xlabel("thread length (checkpoints)")
        ax.set_ylabel("bytes stored, MiB (log)")
        ax.set_title(f"{target}: storage")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _panels(
    plt: Any,
    results: Results,
    workload: str,
    op: str,
    path: str,
    x_key: str,
    xlabel: str,
    ylabel: str,
    bars: bool,
) -> bool:
    targets = _targets(results, workload)
    series = [
        s
        for s in results
        if s.workload == workload and s.op == op and s.samples and s.unit == THROUGHPUT
    ]
    if not series:
        return False
    fig, flat = _grid(plt, len(targets))
    for ax, target in zip(flat, targets, strict=True):
        mine = [s for s in series if s.subject.target == target]
        payload = min((s.params.get("payload", 0) for s in mine), default=0)
        mine = [s for s in mine if s.params.get("payload", 0) == payload]
        turns = max((s.params.get("turns", 0) for s in mine), default=0)  # e2e: longest threads
        mine = [s for s in mine if s.params.get("turns", 0) == turns]
        xs = list(dict.fromkeys(s.params[x_key] for s in mine))  # durability: as run
        if all(isinstance(x, (int, float)) for x in xs):
            xs.sort()
        labels = _labels(mine)
        width = 0.8 / max(len(labels), 1)
        for j, label in enumerate(labels):
            pts = []
            for i, x in enumerate(xs):
                s = next(
                    (
                        s
                        for s in mine
                        if s.params[x_key] == x and f"{s.subject.flavor} {s.subject.kind}" == label
                    ),
                    None,
                )
                if s is not None:
                    pts.append((i, x, float(summarize(s)["median"] or 0)))
            if bars:
                ax.bar(
                    [p[0] + (j - (len(labels) - 1) / 2) * width for p in pts],
                    [p[2] for p in pts],
                    width,
                    label=label,
                    color=COLORS.get(label),
                )
            else:
                kind = label.split()[-1]
                ax.plot(
                    [p[1] for p in pts],
                    [p[2] for p in pts],
                    marker="o",
                    linestyle=KIND_STYLE.get(kind, "-"),
                    label=label,
                    color=COLORS.get(label),
                )
        if bars:
            ax.set_xticks(range(len(xs)))
            ax.set_xticklabels([str(x) for x in xs])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.set_title(target)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _serializer(plt: Any, results: Results, path: str) -> bool:
    series = [s for s in results if s.workload == "serializer" and s.unit == "s" and s.samples]
    if not series:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.5))
    groups = dict.fromkeys((s.params.get("value", ""), s.params.get("payload")) for s in series)
    for value, payload in groups:
        for kind in ("ours", "official"):
            pts = sorted(
                (s.params["steps"], float(summarize(s)["median"] or 0) * 1e3)
                for s in series
                if s.subject.kind == kind
                and s.params.get("value", "") == value
                and s.params.get("payload") == payload
            )
            label = f"{kind}, {value}" + (f" payload {payload}" if payload else "")
            ax.plot(
                [p[0] for p in pts],
                [p[1] for p in pts],
                marker="o",
                linestyle=KIND_STYLE[kind],
                label=label,
            )
    ax.set_yscale("log")
    ax.set_xlabel("messages in the value (thread length)")
    ax.set_ylabel("dumps+loads median, ms")
    ax.set_title("serializer: ours vs JsonPlusSerializer")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def write_plots(results: Results, directory: str) -> list[str]:
    """Write every plot the run has data for into `directory`; returns the paths written."""
    plt = _plt()
    os.makedirs(directory, exist_ok=True)
    written: list[str] = []

    def out(name: str) -> str:
        return os.path.join(directory, name)

    for target in _targets(results, "ops"):
        path = out(f"latency-{target}.png")
        if _latency(plt, results, target, path):
            written.append(path)
    if _storage(plt, results, out("storage.png")):
        written.append(out("storage.png"))
    if _panels(
        plt,
        results,
        "concurrency",
        "put",
        out("throughput.png"),
        "writers",
        "concurrent writers",
        "checkpoints per second (median)",
        bars=False,
    ):
        written.append(out("throughput.png"))
    if _panels(
        plt,
        results,
        "e2e",
        "turns/s",
        out("e2e.png"),
        "durability",
        "durability",
        "turns per second (median)",
        bars=True,
    ):
        written.append(out("e2e.png"))
    if _serializer(plt, results, out("serializer.png")):
        written.append(out("serializer.png"))
    return written

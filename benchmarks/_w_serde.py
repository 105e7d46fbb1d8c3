"""Serializer: `dumps_typed` + `loads_typed` of a real checkpoint's channel values.

The value is the `channel_values` of the newest recorded checkpoint of a `steps`-long
thread (LangChain messages, growing one per step), serialized and read back by the
package's default serializer ("ours") and by LangGraph's `JsonPlusSerializer` ("official"),
interleaved. Samples: seconds per dumps+loads; bytes of the serialized value.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_base import default_serde

from ._context import Context
from ._results import BYTES, SubjectId
from ._subjects import Subject

__all__ = ["run", "units"]

WORKLOAD = "serializer"


def _serializers() -> list[tuple[SubjectId, Any]]:
    ours = default_serde()
    return [
        (SubjectId("serializer", "", "ours"), ours),
        (SubjectId("serializer", "", "official"), JsonPlusSerializer()),
    ]


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    sizes = ctx.sizes
    return (sizes.warmup + sizes.rounds) * 2 * len(sizes.steps) * len(sizes.payloads)


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure both serializers for every (steps, payload)."""
    sizes = ctx.sizes
    serializers = _serializers()
    ours_type = type(serializers[0][1])
    note = f"ours = {ours_type.__module__}.{ours_type.__qualname__}"
    if note not in ctx.results.notes:
        ctx.results.notes.append(f"serializer: {note}")
    for payload in sizes.payloads:
        for steps in sizes.steps:
            ctx.progress.begin(f"serializer: steps={steps} payload={payload}")
            value = ctx.recording(steps, payload).last_checkpoint["channel_values"]
            params = {"steps": steps, "payload": payload}
            for round_index in range(sizes.warmup + sizes.rounds):
                measured = round_index >= sizes.warmup
                for sid, serde in serializers:
                    for _ in range(sizes.serde_reps):
                        start = time.perf_counter()
                        loaded = serde.loads_typed(serde.dumps_typed(value))
                        seconds = time.perf_counter() - start
                        if measured:
                            ctx.results.add(WORKLOAD, "dumps+loads", params, sid, seconds)
                    if loaded != value:
                        ctx.results.problem(f"{sid.label} {params}: value changed in a round trip")
                    if measured and round_index == sizes.warmup:
                        size = len(serde.dumps_typed(value)[1])
                        ctx.results.add(WORKLOAD, "bytes", params, sid, float(size), BYTES)
                    ctx.progress.advance()

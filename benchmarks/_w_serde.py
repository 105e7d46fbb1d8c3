"""Serializer: `dumps_typed` + `loads_typed`, the package's default against `JsonPlusSerializer`.

Two kinds of value, each at every thread length of the run:

- `agent`: the `channel_values` of the newest recorded checkpoint of a `steps`-long thread of
  the benchmark's agent graph (LangChain messages, growing one per step), as savers store it;
- `rich`: the checkpoint of the serializer's own benchmark (`benchmarks/serde_bench.py`:
  messages with tool calls and usage metadata, a pydantic model, a dataclass, an enum), with
  its types allowlisted for both serializers. Skipped with a note when that module is absent.

Serializers run interleaved, `serde_reps` times each per round. Samples: seconds per
dumps+loads, and the serialized size. A value that does not come back equal is a problem
of the run for ours, a note for the official serializer.
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
OURS = SubjectId("serializer", "", "ours")
OFFICIAL = SubjectId("serializer", "", "official")


def _rich() -> tuple[Any, Any, Any] | None:
    """(checkpoint builder, ours, official) allowing its types, or None without serde_bench."""
    try:
        from checkpoint_base.serde import MsgpackSerializer

        from . import serde_bench
    except ImportError:
        return None
    types = serde_bench.USER_TYPES
    # Both allowlist the value's types: the same safety, and no warning per load.
    official = JsonPlusSerializer(allowed_msgpack_modules=types)
    return serde_bench.checkpoint, MsgpackSerializer(allowed=types), official


def _cases(ctx: Context, payload: int) -> list[tuple[dict[str, Any], Any, list[tuple[Any, Any]]]]:
    """(params, value, [(subject, serializer)]) for every value of the run."""
    official = JsonPlusSerializer()
    cases = []
    for steps in ctx.sizes.steps:
        value = ctx.recording(steps, payload).last_checkpoint["channel_values"]
        params = {"value": "agent", "steps": steps, "payload": payload}
        cases.append((params, value, [(OURS, default_serde()), (OFFICIAL, official)]))
    rich = _rich()
    if rich is None:
        ctx.results.notes.append("serializer: rich values skipped, benchmarks.serde_bench absent")
    elif payload == ctx.sizes.payloads[0]:  # rich values do not depend on the payload
        build, ours, strict = rich
        for steps in ctx.sizes.steps:
            params = {"value": "rich", "steps": steps}
            cases.append((params, build(steps), [(OURS, ours), (OFFICIAL, strict)]))
    return cases


def units(ctx: Context, subjects: Sequence[Subject]) -> int:
    """Progress units of this workload."""
    sizes = ctx.sizes
    per_payload = 2 * len(sizes.steps) * 2  # agent and rich values, two serializers
    return (sizes.warmup + sizes.rounds) * per_payload * len(sizes.payloads)


async def run(ctx: Context, subjects: Sequence[Subject]) -> None:
    """Measure both serializers on every value."""
    sizes = ctx.sizes
    ours_type = type(default_serde())
    ctx.results.notes.append(f"serializer: ours = {ours_type.__module__}.{ours_type.__qualname__}")
    for payload in sizes.payloads:
        for params, value, serializers in _cases(ctx, payload):
            ctx.progress.begin(f"serializer: {' '.join(f'{k}={v}' for k, v in params.items())}")
            for sid, serde in serializers:
                dumped = serde.dumps_typed(value)
                ctx.results.add(WORKLOAD, "bytes", params, sid, float(len(dumped[1])), BYTES)
                if serde.loads_typed(dumped) != value:
                    text = f"{sid.label} {params}: the value changed in a round trip"
                    if sid == OURS:
                        ctx.results.problem(text)
                    elif text not in ctx.results.notes:
                        ctx.results.notes.append(text)
            for round_index in range(sizes.warmup + sizes.rounds):
                measured = round_index >= sizes.warmup
                for sid, serde in serializers:
                    for _ in range(sizes.serde_reps):
                        start = time.perf_counter()
                        serde.loads_typed(serde.dumps_typed(value))
                        seconds = time.perf_counter() - start
                        if measured:
                            ctx.results.add(WORKLOAD, "dumps+loads", params, sid, seconds)
                    ctx.progress.advance()

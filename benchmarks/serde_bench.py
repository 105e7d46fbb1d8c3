"""Serializer benchmark: `MsgpackSerializer` against LangGraph's `JsonPlusSerializer`, and
the msgpack engine choice (msgpack-python against ormsgpack), in one interleaved run.

Payloads are realistic checkpoints: a message list growing to 200 messages (human turns, AI
turns with tool calls and usage metadata, tool results), a pydantic model with nested models
and an enum, a dataclass, and the checkpoint's own bookkeeping (versions, versions seen).
Each round runs every case once, in a shuffled order; warm-up rounds are dropped; medians and
95th percentiles are reported. Timing is `time.perf_counter`; garbage collection stays on (it is
part of the cost) but runs fully between rounds, outside the timings.

    python -m benchmarks.serde_bench            # full run, writes benchmarks/results/serde.*
    python -m benchmarks.serde_bench --quick    # a smoke run, writes nothing
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import enum
import gc
import importlib.metadata
import json
import logging
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgpack
import ormsgpack
import pydantic
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from checkpoint_base.serde import MsgpackSerializer
from checkpoint_base.serde._classes import class_builder, class_kind
from checkpoint_base.serde._decode import _list_hook
from checkpoint_base.serde._encode import _default, _new_packer, encode

RESULTS = Path(__file__).parent / "results"
SIZES = (10, 50, 100, 200)


class Tier(enum.Enum):
    FREE = "free"
    PRO = "pro"


class Address(pydantic.BaseModel):
    street: str
    city: str
    country: str = "FR"


class Customer(pydantic.BaseModel):
    name: str
    email: str
    tier: Tier = Tier.FREE
    addresses: list[Address] = []
    preferences: dict[str, Any] = {}


@dataclasses.dataclass
class Plan:
    goal: str
    steps: list[str]
    done: list[bool]
    budget: float = 10.0


USER_TYPES: list[type] = [Tier, Address, Customer, Plan]


def messages(n: int) -> list[Any]:
    """A conversation of `n` messages: a human turn, an AI tool call, a tool result, ..."""
    out: list[Any] = []
    for i in range(n):
        if i % 3 == 0:
            text = f"Turn {i}: what is the weather in city number {i}, and should I bring a coat?"
            out.append(HumanMessage(content=text, id=f"h-{i:04}"))
        elif i % 3 == 1:
            call = {"name": "get_weather", "args": {"city": f"c{i}", "units": "metric"}}
            out.append(
                AIMessage(
                    content="",
                    id=f"a-{i:04}",
                    tool_calls=[{**call, "id": f"call_{i}", "type": "tool_call"}],
                    usage_metadata={
                        "input_tokens": 900 + i,
                        "output_tokens": 40,
                        "total_tokens": 940 + i,
                    },
                    response_metadata={
                        "model_name": "gpt-4o-2024-08-06",
                        "finish_reason": "tool_calls",
                    },
                )
            )
        else:
            content = f"Sunny, {i % 30} degrees, wind 12 km/h, humidity 40%."
            out.append(ToolMessage(content=content, tool_call_id=f"call_{i - 1}", id=f"t-{i:04}"))
    return out


def checkpoint(n: int) -> dict[str, Any]:
    """A LangGraph checkpoint after `n` messages, with its channel values inline."""
    customer = Customer(
        name="Ada Lovelace",
        email="ada@example.com",
        tier=Tier.PRO,
        addresses=[Address(street="1 rue de Rivoli", city="Paris")],
        preferences={"units": "metric", "language": "fr", "notify": True},
    )
    plan = Plan(goal="answer", steps=[f"step {i}" for i in range(8)], done=[True] * 4 + [False] * 4)
    channels = ["messages", "customer", "plan", "tier", "branch:to:agent"]
    return {
        "v": 4,
        "id": "1ef8d5c2-3a4b-6c7d-8e9f-0a1b2c3d4e5f",
        "ts": "2024-11-24T10:00:00.000000+00:00",
        "channel_values": {
            "messages": messages(n),
            "customer": customer,
            "plan": plan,
            "tier": Tier.PRO,
        },
        "channel_versions": {c: f"{n:032}.{i:016}" for i, c in enumerate(channels)},
        "versions_seen": {"agent": {c: f"{n - 1:032}.0" for c in channels}, "__input__": {}},
        "updated_channels": ["messages", "plan"],
    }


# The same format (msgpack.cp2) on the other engine: ormsgpack packs and unpacks, and since it
# has no list hook, markers are applied by a Python walk after unpacking.
_ORM_OPTS = (
    ormsgpack.OPT_NON_STR_KEYS
    | ormsgpack.OPT_PASSTHROUGH_TUPLE
    | ormsgpack.OPT_PASSTHROUGH_SUBCLASS
    | ormsgpack.OPT_PASSTHROUGH_DATACLASS
    | ormsgpack.OPT_PASSTHROUGH_DATETIME
    | ormsgpack.OPT_PASSTHROUGH_ENUM
    | ormsgpack.OPT_PASSTHROUGH_UUID
    | ormsgpack.OPT_PASSTHROUGH_BIG_INT
)


def _orm_default(obj: Any) -> Any:
    if type(obj) is msgpack.ExtType:
        return ormsgpack.Ext(obj.code, obj.data)
    return _default(obj)


def _walk(value: Any) -> Any:
    kind = type(value)
    if kind is list:
        for i, item in enumerate(value):
            if type(item) is list or type(item) is dict:
                value[i] = _walk(item)
        return _list_hook(value)
    if kind is dict:
        for key, item in value.items():
            if type(item) is list or type(item) is dict:
                value[key] = _walk(item)
    return value


class OrmsgpackEngine:
    """`MsgpackSerializer`'s format and allowlist, on ormsgpack instead of msgpack-python."""

    def __init__(self, serde: MsgpackSerializer) -> None:
        self._serde = serde
        self._hook = serde._decoder._ext_hook

    def dumps_typed(self, obj: Any) -> tuple[str, bytes]:
        if obj is None or type(obj) in (bytes, bytearray):  # same top-level tags as ours
            return self._serde.dumps_typed(obj)
        return "msgpack.cp2", ormsgpack.packb(obj, default=_orm_default, option=_ORM_OPTS)

    def loads_typed(self, data: tuple[str, bytes]) -> Any:
        if data[0] != "msgpack.cp2":
            return self._serde.loads_typed(data)
        raw = ormsgpack.unpackb(data[1], ext_hook=self._hook, option=ormsgpack.OPT_NON_STR_KEYS)
        return _walk(raw)


def _stats(samples: list[float]) -> dict[str, float]:
    ordered = sorted(samples)
    p95 = ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]
    ms = 1000.0
    return {
        "median_ms": statistics.median(ordered) * ms,
        "p95_ms": p95 * ms,
        "min_ms": ordered[0] * ms,
        "n": len(ordered),
    }


def interleaved(
    cases: dict[str, Callable[[], Any]], rounds: int, warmup: int
) -> dict[str, dict[str, float]]:
    """Run every case once per round, in a fresh random order; drop the warm-up rounds."""
    names = list(cases)
    samples: dict[str, list[float]] = {n: [] for n in names}
    rng = random.Random(1234)
    clock = time.perf_counter
    for round_index in range(warmup + rounds):
        gc.collect()  # outside the timings: each round starts without garbage of the last
        rng.shuffle(names)
        for name in names:
            fn = cases[name]
            start = clock()
            fn()
            elapsed = clock() - start
            if round_index >= warmup:
                samples[name].append(elapsed)
    return {n: _stats(s) for n, s in samples.items()}


def _contenders() -> dict[str, Any]:
    ours = MsgpackSerializer(allowed=USER_TYPES)
    return {
        OURS: ours,
        "ours on ormsgpack (same format)": OrmsgpackEngine(ours),
        "JsonPlusSerializer (default)": JsonPlusSerializer(),
        "JsonPlusSerializer (strict allowlist)": JsonPlusSerializer(
            allowed_msgpack_modules=USER_TYPES
        ),
    }


def bench_checkpoints(rounds: int, warmup: int) -> dict[str, Any]:
    """dumps, loads and dumps+loads of whole checkpoints, every contender, per size."""
    out: dict[str, Any] = {}
    for size in SIZES:
        value = checkpoint(size)
        cases: dict[str, Callable[[], Any]] = {}
        sizes: dict[str, int] = {}
        faithful: dict[str, bool] = {}
        for name, serde in _contenders().items():
            blob = serde.dumps_typed(value)
            sizes[name] = len(blob[1])
            faithful[name] = serde.loads_typed(blob) == value
            cases[f"{name}|dumps"] = lambda s=serde, v=value: s.dumps_typed(v)
            cases[f"{name}|loads"] = lambda s=serde, b=blob: s.loads_typed(b)
            cases[f"{name}|dumps+loads"] = lambda s=serde, v=value: s.loads_typed(s.dumps_typed(v))
        stats = interleaved(cases, rounds, warmup)
        per: dict[str, Any] = {}
        for key, st in stats.items():
            name, op = key.split("|")
            per.setdefault(name, {"bytes": sizes[name], "equal_after_round_trip": faithful[name]})[
                op
            ] = st
        out[str(size)] = per
        print(f"  checkpoint with {size} messages: done", file=sys.stderr)
    return out


def _by_serializer(stats: dict[str, dict[str, float]]) -> dict[str, Any]:
    """`interleaved`'s stats of cases named `serializer|op`, as {serializer: {op: stats}}."""
    per: dict[str, Any] = {}
    for key, st in stats.items():
        name, op = key.split("|")
        per.setdefault(name, {})[op] = st
    return per


ENCRYPTION_KEY = b"serde-bench-aes-key-of-32-bytes!"


def _encrypted_contenders() -> dict[str, Any]:
    """Ours and the official serializer, each alone and inside LangGraph's
    `EncryptedSerializer` (AES-EAX from pycryptodome, as `from_pycryptodome_aes` makes it)."""
    from langgraph.checkpoint.serde.encrypted import EncryptedSerializer

    ours = MsgpackSerializer(allowed=USER_TYPES)
    official = JsonPlusSerializer()
    aes = EncryptedSerializer.from_pycryptodome_aes
    return {
        OURS: ours,
        f"{OURS} + AES": aes(serde=ours, key=ENCRYPTION_KEY),
        "JsonPlusSerializer (default)": official,
        "JsonPlusSerializer (default) + AES": aes(serde=official, key=ENCRYPTION_KEY),
    }


def bench_encrypted(rounds: int, warmup: int) -> dict[str, Any]:
    """dumps and loads of whole checkpoints, plain and encrypted, per size."""
    out: dict[str, Any] = {}
    for size in SIZES:
        value = checkpoint(size)
        cases: dict[str, Callable[[], Any]] = {}
        for name, serde in _encrypted_contenders().items():
            blob = serde.dumps_typed(value)
            if serde.loads_typed(blob) != value:
                raise AssertionError(f"{name} does not give back the {size}-message checkpoint")
            cases[f"{name}|dumps"] = lambda s=serde, v=value: s.dumps_typed(v)
            cases[f"{name}|loads"] = lambda s=serde, b=blob: s.loads_typed(b)
        out[str(size)] = _by_serializer(interleaved(cases, rounds, warmup))
        print(f"  encrypted checkpoint with {size} messages: done", file=sys.stderr)
    return out


MESSAGE_LIST_SIZES = (10, 100, 200)


def message_list(n: int) -> list[Any]:
    """The backend issues' payload: alternating Human/AI messages with 512-character contents."""
    return [
        (HumanMessage if i % 2 == 0 else AIMessage)(content="x" * 512, id=f"m{i}") for i in range(n)
    ]


def bench_message_lists(rounds: int, warmup: int) -> dict[str, Any]:
    """dumps and loads of a message list: ours, JsonPlusSerializer, and the raw msgpack floor.

    The floor is msgpack-python on the same bytes with no hooks at all (loads), and packing the
    hook-free result of that (dumps): what any serializer on msgpack-python pays at least.
    """
    out: dict[str, Any] = {}
    ours, official = MsgpackSerializer(), JsonPlusSerializer()
    for size in MESSAGE_LIST_SIZES:
        value = message_list(size)
        blob, jblob = ours.dumps_typed(value), official.dumps_typed(value)
        if ours.loads_typed(blob) != value or official.loads_typed(jblob) != value:
            raise RuntimeError(f"a {size}-message list does not round-trip")
        raw = msgpack.unpackb(blob[1], strict_map_key=False)
        cases: dict[str, Callable[[], Any]] = {
            f"{OURS}|dumps": lambda v=value: ours.dumps_typed(v),
            f"{OURS}|loads": lambda b=blob: ours.loads_typed(b),
            "JsonPlusSerializer (default)|dumps": lambda v=value: official.dumps_typed(v),
            "JsonPlusSerializer (default)|loads": lambda b=jblob: official.loads_typed(b),
            "raw msgpack floor (no hooks)|dumps": lambda r=raw: msgpack.packb(r),
            "raw msgpack floor (no hooks)|loads": lambda b=blob[1]: msgpack.unpackb(
                b, strict_map_key=False
            ),
        }
        out[str(size)] = _by_serializer(interleaved(cases, rounds, warmup))
        print(f"  message list of {size}: done", file=sys.stderr)
    return out


def bench_engines(rounds: int, warmup: int) -> dict[str, Any]:
    """The raw engines on the plain (model_dump) form of the 200-message checkpoint."""
    plain = json.loads(
        json.dumps(
            checkpoint(200),
            default=lambda o: (
                o.model_dump()
                if hasattr(o, "model_dump")
                else (dataclasses.asdict(o) if dataclasses.is_dataclass(o) else o.value)
            ),
        )
    )
    mp, om = msgpack.packb(plain), ormsgpack.packb(plain)
    cases = {
        "msgpack packb": lambda: msgpack.packb(plain),
        "ormsgpack packb": lambda: ormsgpack.packb(plain),
        "msgpack unpackb": lambda: msgpack.unpackb(mp),
        "ormsgpack unpackb": lambda: ormsgpack.unpackb(om),
    }
    return interleaved(cases, rounds, warmup)


def bench_micro(rounds: int, warmup: int) -> dict[str, Any]:
    """The measurements behind choices in checkpoint_base/serde (cited in their comments)."""
    small = {"source": "loop", "step": 3, "parents": {}, "writes": {"agent": {"messages": 1}}}
    big = checkpoint(200)
    reused, strict, lenient = _new_packer(), _new_packer(), _new_packer("surrogatepass")
    ai_messages = [m for m in messages(200) if isinstance(m, AIMessage)]
    dumped = [m.model_dump() for m in ai_messages]
    states = [[dict(m.__dict__), None, list(m.model_fields_set)] for m in ai_messages]
    rebuild = class_builder(AIMessage, class_kind(AIMessage) or 0)
    # The same 80 messages (the get_tuple payload of the backend issues) in the map layout of
    # cp1, the row layout of cp2 (a marker per message) and cp5's one list of rows, read by the
    # same decoder.
    listed = message_list(80)
    serde = MsgpackSerializer()
    as_rows = ("msgpack.cp2", encode(listed))
    as_list = serde.dumps_typed(listed)
    as_maps = (
        "msgpack.cp1",
        msgpack.packb(
            [
                [
                    dict(m.__dict__),
                    None,
                    sorted(m.model_fields_set),
                    msgpack.ExtType(64, f"{type(m).__module__}:{type(m).__qualname__}".encode()),
                ]
                for m in listed
            ],
            use_bin_type=True,
        ),
    )
    if any(serde.loads_typed(data) != listed for data in (as_maps, as_rows, as_list)):
        raise RuntimeError("the three layouts do not load the same messages")
    cases: dict[str, Callable[[], Any]] = {
        "80 messages loaded, cp1 map layout": lambda: serde.loads_typed(as_maps),
        "80 messages loaded, cp2 row layout": lambda: serde.loads_typed(as_rows),
        "80 messages loaded, cp5 list of rows": lambda: serde.loads_typed(as_list),
        "small value, packer reused (x100)": lambda: [reused.pack(small) for _ in range(100)],
        "small value, new packer per call (x100)": lambda: [
            _new_packer().pack(small) for _ in range(100)
        ],
        "200-message checkpoint, strict utf-8": lambda: strict.pack(big),
        "200-message checkpoint, surrogatepass": lambda: lenient.pack(big),
        "67 AIMessages rebuilt by setting their state": lambda: [rebuild(s) for s in states],
        "67 AIMessages rebuilt by AIMessage(**model_dump())": lambda: [
            AIMessage(**d) for d in dumped
        ],
    }
    return interleaved(cases, rounds, warmup)


def probe_fidelity() -> dict[str, dict[str, bool]]:
    """Which values each engine brings back with their types (the reason for the choice)."""
    probes = {
        "bytearray at top level": bytearray(b"x"),
        "bytearray nested": [bytearray(b"x")],
        "tuple as dict key": {(1, "a"): 1},
        "lone surrogate": ["\ud800"],
        "IntEnum": [Tier.PRO],
        "big int": [2**70],
    }
    out: dict[str, dict[str, bool]] = {}
    for name, serde in _contenders().items():
        out[name] = {}
        for probe, value in probes.items():
            try:
                back = serde.loads_typed(serde.dumps_typed(value))
                ok = back == value and repr(back) == repr(value)
            except Exception:
                ok = False
            out[name][probe] = ok
    return out


def environment() -> dict[str, Any]:
    versions = {}
    for pkg in ("msgpack", "ormsgpack", "pydantic", "langchain-core", "langgraph-checkpoint"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        # A shared machine: the load average says how much else was running.
        "load_average_1m": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "packages": versions,
        "when": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


OURS = "ours (msgpack.cp2, message lists cp5, on msgpack)"
OFFICIAL = ("JsonPlusSerializer (default)", "JsonPlusSerializer (strict allowlist)")


def verdict(checkpoints: dict[str, Any]) -> dict[str, Any]:
    """How many times faster ours is than each JsonPlusSerializer setting (dumps+loads)."""
    out: dict[str, Any] = {}
    for size, per in checkpoints.items():
        ours = per[OURS]["dumps+loads"]["median_ms"]
        out[size] = {name: per[name]["dumps+loads"]["median_ms"] / ours for name in OFFICIAL}
    out["at_least_as_fast_everywhere"] = all(r >= 1.0 for v in out.values() for r in v.values())
    return out


def _ms(st: dict[str, float]) -> str:
    return f"{st['median_ms']:.3f} / {st['p95_ms']:.3f}"


def markdown(results: dict[str, Any]) -> str:
    env, settings = results["environment"], results["settings"]
    lines = [
        "# Serializer benchmark",
        "",
        f"`python -m benchmarks.serde_bench`: {settings['rounds']} measured rounds after "
        f"{settings['warmup']} warm-up rounds, every case once per round in a shuffled order. "
        f"Python {env['python']} on {env['platform']} ({env['cpus']} CPUs, load average "
        f"{env['load_average_1m']} at the start), "
        + ", ".join(f"{k} {v}" for k, v in env["packages"].items())
        + f"; {env['when']}. Times in ms, median / p95.",
        "",
        "## Checkpoints: dumps + loads",
        "",
        "A checkpoint with N messages, a pydantic model, a dataclass and an enum. Speed-up is "
        "the median dumps+loads time of the row divided into ours.",
        "",
    ]
    for size, per in results["checkpoints"].items():
        ours = per[OURS]["dumps+loads"]["median_ms"]
        lines += [
            f"### {size} messages",
            "",
            "| serializer | dumps | loads | dumps+loads | bytes | ours is x faster |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, row in per.items():
            ratio = row["dumps+loads"]["median_ms"] / ours
            lines.append(
                f"| {name} | {_ms(row['dumps'])} | {_ms(row['loads'])} | "
                f"{_ms(row['dumps+loads'])} | {row['bytes']} | {ratio:.2f} |"
            )
        lines.append("")
    lines += [
        "## Encrypted checkpoints",
        "",
        "The same checkpoints through LangGraph's `EncryptedSerializer` (AES-EAX, pycryptodome, "
        "as `from_pycryptodome_aes` makes it) around each serializer. `+ AES costs` is the "
        "encrypted row's dumps+loads median over the same serializer's unencrypted one.",
        "",
        "| messages | serializer | dumps | loads | + AES costs |",
        "|---:|---|---:|---:|---:|",
    ]

    def both(row: dict[str, Any]) -> float:
        return float(row["dumps"]["median_ms"] + row["loads"]["median_ms"])

    for size, per in results["encrypted"].items():
        for name, row in per.items():
            plain = per.get(name.removesuffix(" + AES")) if name.endswith(" + AES") else None
            cost = f"{both(row) / both(plain):.2f}x" if plain is not None else ""
            dumps, loads = _ms(row["dumps"]), _ms(row["loads"])
            lines.append(f"| {size} | {name} | {dumps} | {loads} | {cost} |")
    lines.append("")
    lines += [
        "## Message lists (HumanMessage/AIMessage, 512-character contents)",
        "",
        "The payload of the backend issues' get_tuple/put measurements. The raw msgpack floor is "
        "msgpack-python on our bytes with no hooks (what no serializer on msgpack-python beats).",
        "",
        "| messages | serializer | dumps | loads |",
        "|---:|---|---:|---:|",
    ]
    for size, per in results["message_lists"].items():
        lines += [
            f"| {size} | {name} | {_ms(row['dumps'])} | {_ms(row['loads'])} |"
            for name, row in per.items()
        ]
    lines.append("")
    lines += ["## Engines on plain data (the 200-message checkpoint, model_dump form)", ""]
    lines += ["| case | median / p95 |", "|---|---:|"]
    lines += [f"| {k} | {_ms(v)} |" for k, v in results["engines"].items()]
    lines += ["", "## Choices inside the serializer", "", "| case | median / p95 |", "|---|---:|"]
    lines += [f"| {k} | {_ms(v)} |" for k, v in results["micro"].items()]
    lines += ["", "## Fidelity: comes back equal and with its type", ""]
    probes = list(next(iter(results["fidelity"].values())))
    lines += ["| serializer | " + " | ".join(probes) + " |", "|---|" + "---|" * len(probes)]
    for name, row in results["fidelity"].items():
        lines.append(
            f"| {name} | " + " | ".join("yes" if row[p] else "**no**" for p in probes) + " |"
        )
    v = results["verdict"]
    lines += [
        "",
        "## Verdict",
        "",
        f"Ours at least as fast as JsonPlusSerializer at every size: "
        f"**{'yes' if v['at_least_as_fast_everywhere'] else 'NO'}**.",
        "",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.serde_bench", description=__doc__)
    parser.add_argument("--rounds", type=int, default=100, help="measured rounds (default 100)")
    parser.add_argument("--warmup", type=int, default=10, help="dropped rounds (default 10)")
    parser.add_argument("--quick", action="store_true", help="5 rounds, print only")
    args = parser.parse_args(argv)
    # The permissive JsonPlusSerializer warns about every user type it rebuilds.
    logging.getLogger("langgraph.checkpoint.serde.jsonplus").setLevel(logging.ERROR)
    rounds, warmup = (5, 1) if args.quick else (args.rounds, args.warmup)
    results: dict[str, Any] = {
        "environment": environment(),
        "settings": {
            "rounds": rounds,
            "warmup": warmup,
            "sizes": list(SIZES),
            "gc": "enabled; gc.collect() between rounds",
        },
        "checkpoints": bench_checkpoints(rounds, warmup),
        "encrypted": bench_encrypted(rounds, warmup),
        "message_lists": bench_message_lists(rounds, warmup),
        "engines": bench_engines(rounds, warmup),
        "micro": bench_micro(rounds, warmup),
        "fidelity": probe_fidelity(),
    }
    results["verdict"] = verdict(results["checkpoints"])
    text = markdown(results)
    print(text)
    if not args.quick:
        RESULTS.mkdir(parents=True, exist_ok=True)
        (RESULTS / "serde.json").write_text(json.dumps(results, indent=2) + "\n")
        (RESULTS / "serde.md").write_text(text)
        print(f"wrote {RESULTS / 'serde.json'} and {RESULTS / 'serde.md'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Differential, stateful test: every backend against the memory backend, step by step.

A hypothesis state machine drives two sync savers with the same random operations (puts with
parent links and tricky metadata, re-puts of an existing id, pending writes including the
special channels, deletes of threads and runs, copies, prunes) and after every step compares
every read: `get_tuple` (latest and by id), `list` (no filter, `limit`, `before`, metadata
filters, all threads) and `list_threads`. The reference is `checkpoint_base.MemorySaver`; the
values are compared strictly (`1`, `1.0` and `True` are different answers).

Each example opens a fresh saver of the target (a fresh file, schema or key prefix), so
examples never see each other's data. Pages are shrunk to 2-3 rows (`small_pages`), so keyset
cursors and ancestor walks cross page boundaries even in short histories.

Runs are reproducible (`derandomize`). To search harder, e.g. after changing a backend:

    DIFFERENTIAL_RANDOM=1 DIFFERENTIAL_EXAMPLES=100 DIFFERENTIAL_STEPS=40 \
        python -m pytest tests/conformance/test_differential.py -k redis
"""

from __future__ import annotations

import copy
import math
import os
import reprlib
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import (
    ERROR,
    INTERRUPT,
    RESUME,
    SCHEDULED,
    Checkpoint,
    CheckpointTuple,
    create_checkpoint,
    empty_checkpoint,
)

from checkpoint_base import CheckpointSaver, MemorySaver, _backend, _operations
from checkpoint_base.testing.targets import Target

from .conftest import TARGETS

# -- targets ----------------------------------------------------------------------------------


def _redis_ttl_target() -> Target | None:
    """A Redis target whose saver is opened with `ttl=` (the registry has none)."""
    redis_targets = [t for t in TARGETS if t.name == "redis"]
    if not redis_targets:
        return None
    from checkpoint_base.testing import servers
    from checkpoint_redis import RedisSaver
    from checkpoint_redis._testing import drop_prefix, fresh_prefix

    @contextmanager
    def open_sync() -> Iterator[CheckpointSaver]:
        url, prefix = servers.redis_url(), fresh_prefix()
        saver = RedisSaver.from_url(url, ttl=3600, refresh_on_read=True, key_prefix=prefix)
        try:
            saver.setup()
            yield saver
        finally:
            saver.close()
            drop_prefix(url, prefix)

    return Target(
        name="redis-ttl",
        backend="redis",
        capabilities=redis_targets[0].capabilities,
        open_sync=open_sync,
    )


_TTL = _redis_ttl_target()
DIFF_TARGETS = [
    t for t in [*TARGETS, *([_TTL] if _TTL else [])] if t.open_sync and t.backend != "memory"
]

# -- the data ---------------------------------------------------------------------------------

NAMESPACES = ["", "child:1", "child:ü|inner:2"]
CHANNELS = ["a", "b", "messages"]
RUN_IDS = ["run-1", "run-2", "run-3"]
TASKS = ["task-1", "task-2"]
TASK_PATHS = ["", "~__pregel_pull, node", "~__pregel_push, 0"]
SOURCES = ["input", "loop", "update", "fork"]
USER_KEYS = ["user", "flag", "nested", "tags", "weird key.x"]

# Values that equal each other under Python's == but are different JSON values, or that a
# storage engine could confuse.
TRICKY = [
    0,
    1,
    -1,
    2,
    1.0,
    0.0,
    0.5,
    -2.5,
    1e20,
    2**53 + 1,
    True,
    False,
    None,
    "",
    "1",
    "true",
    "null",
    "ü中文🙂",
    "a\x00b",
    "\x00",
    "quote\"back\\slash'",
    {"a": 1},
    {"a": 1.0},
    {"a": True},
    {"a": {"b": [1, 2]}},
    {"a": 1, "b": None},
    {},
    [],
    [1, 2],
    [1.0, 2],
    [True],
    [{"a": "x\x00"}],
]

json_values = st.recursive(
    st.sampled_from(TRICKY) | st.integers(-3, 3) | st.text(alphabet='ab\x00ü🙂"\\', max_size=4),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.sampled_from(["a", "b", "ü", "a.b"]), inner, max_size=3)
    ),
    max_leaves=6,
)
tricky_values = st.sampled_from(TRICKY) | json_values


class Big:
    """A large string, drawn by size so that failing steps print short."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __repr__(self) -> str:
        return f"Big({self.size})"


def expand(value: Any) -> Any:
    """`value` with every `Big` replaced by its string (multi-byte past 9000 characters)."""
    if isinstance(value, Big):
        return ("ü" if value.size > 9000 else "x") * value.size
    if isinstance(value, dict):
        return {k: expand(v) for k, v in value.items()}
    if isinstance(value, list):
        return [expand(v) for v in value]
    if isinstance(value, tuple):
        return tuple(expand(v) for v in value)
    return value


channel_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=6)
    | st.binary(max_size=6)
    # Large values take other paths on Redis (blobs beside the rows, not inline in Lua).
    | st.sampled_from([5000, 9000, 40_000]).map(Big),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=8,
)

metadata_strategy = st.fixed_dictionaries(
    {
        "source": st.sampled_from(SOURCES),
        "step": st.integers(-1, 4) | st.sampled_from([1.0, True, 0.0, False]),
    },
    optional={
        "run_id": st.sampled_from(RUN_IDS),
        # What LangGraph writes for DeltaChannel graphs: prune(keep_latest) keeps ancestors.
        "counters_since_delta_snapshot": st.dictionaries(
            st.sampled_from(CHANNELS), st.integers(0, 3), max_size=2
        ),
        **{k: tricky_values for k in USER_KEYS},
    },
)

RARE = st.sampled_from([False, False, False, True])
"""Deletes and prunes act one time in four, else a history never grows."""

# Filters every invariant check runs on all threads: values Python's == confuses.
PROBES = [
    {"step": 1},
    {"step": 1.0},
    {"step": True},
    {"step": False},
    {"user": None},
    {"user": "1"},
    {"user": {"a": 1.0}},
    {"user": [1.0, 2]},
]

PUT_ARGS: dict[str, Any] = {
    "data": st.data(),
    "thread": st.integers(0, 2),
    "ns": st.sampled_from(NAMESPACES),
    "parent": st.sampled_from(["latest", "latest", "latest", "none", "fork", "dangling"]),
    "metadata": metadata_strategy,
    "changes": st.dictionaries(st.sampled_from(CHANNELS), channel_values, max_size=2),
    "removed": st.lists(st.sampled_from(CHANNELS), max_size=1),
}

# -- comparing --------------------------------------------------------------------------------


_repr = reprlib.Repr()  # keyword arguments only from Python 3.12
_repr.maxstring, _repr.maxother, _repr.maxlist, _repr.maxdict, _repr.maxlevel = 60, 60, 8, 8, 4
_short = _repr.repr


def strict(a: Any, b: Any, path: str = "$") -> None:
    """Assert that two values are equal with equal types all the way down."""
    if type(a) is not type(b):
        raise AssertionError(
            f"{path}: {_short(a)} ({type(a).__name__}) != {_short(b)} ({type(b).__name__})"
        )
    if isinstance(a, dict):
        if a.keys() != b.keys():
            raise AssertionError(f"{path}: keys {_short(list(a))} != {_short(list(b))}")
        for k in a:
            strict(a[k], b[k], f"{path}[{k!r}]")
    elif isinstance(a, (list, tuple)):
        if len(a) != len(b):
            raise AssertionError(f"{path}: {_short(a)} != {_short(b)}")
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            strict(x, y, f"{path}[{i}]")
    elif isinstance(a, float) and math.isnan(a):
        if not math.isnan(b):
            raise AssertionError(f"{path}: {a!r} != {b!r}")
    elif a != b:
        raise AssertionError(f"{path}: {_short(a)} != {_short(b)}")


def as_plain(t: CheckpointTuple | None) -> Any:
    if t is None:
        return None
    return {
        "config": t.config,
        "checkpoint": dict(t.checkpoint),
        "metadata": dict(t.metadata),
        "parent_config": t.parent_config,
        "pending_writes": [list(w) for w in t.pending_writes or []],
    }


def same(what: str, expected: Any, actual: Any) -> None:
    try:
        strict(expected, actual)
    except AssertionError as exc:
        raise AssertionError(
            f"{what}: {exc}\n  memory: {_short(expected)}\n  target: {_short(actual)}"
        ) from None


def cfg(thread_id: str, ns: str | None = "", checkpoint_id: str | None = None) -> RunnableConfig:
    configurable: dict[str, Any] = {"thread_id": thread_id}
    if ns is not None:
        configurable["checkpoint_ns"] = ns
    if checkpoint_id is not None:
        configurable["checkpoint_id"] = checkpoint_id
    return {"configurable": configurable}


# -- the machine ------------------------------------------------------------------------------


class Differential(RuleBasedStateMachine):
    target: Target

    def __init__(self) -> None:
        super().__init__()
        self.stack = ExitStack()
        self.ref = self.stack.enter_context(MemorySaver())
        assert self.target.open_sync is not None
        self.sut = self.stack.enter_context(self.target.open_sync())
        prefix = f"d{uuid.uuid4().hex[:8]}"
        # Thread ids that sort in different orders as text and bytes, with hostile chars.
        self.threads = [f"{prefix}-a", f"{prefix}-b{{x}}", f"{prefix}-ü\x00z"]
        self.puts = 0

    def teardown(self) -> None:
        self.stack.close()

    # -- helpers ---------------------------------------------------------------------------

    def both(self, call: str, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        expected = getattr(self.ref, call)(*args, **kwargs)
        actual = getattr(self.sut, call)(*args, **kwargs)
        if call == "list":
            expected, actual = list(expected), list(actual)
        return expected, actual

    def all_tuples(self) -> list[CheckpointTuple]:
        return list(self.ref.list(None))

    def all_configs(self) -> list[RunnableConfig]:
        return [t.config for t in self.ref.list(None)]

    def compare_list(self, what: str, config: RunnableConfig | None, **kwargs: Any) -> None:
        expected, actual = self.both("list", config, **kwargs)
        same(
            f"list({config!r}, {kwargs!r})",
            [as_plain(t) for t in expected],
            [as_plain(t) for t in actual],
        )

    def new_checkpoint(
        self, base: CheckpointTuple | None, changes: dict[str, Any], removed: list[str]
    ) -> tuple[Checkpoint, dict[str, str]]:
        previous = base.checkpoint if base is not None else empty_checkpoint()
        self.puts += 1
        checkpoint = create_checkpoint(previous, None, self.puts)
        checkpoint["channel_values"] = dict(previous["channel_values"])
        checkpoint["channel_versions"] = dict(previous["channel_versions"])
        new_versions: dict[str, str] = {}
        for channel, value in changes.items():
            new_versions[channel] = self.ref.get_next_version(
                checkpoint["channel_versions"].get(channel)  # type: ignore[arg-type]
            )
            checkpoint["channel_values"][channel] = expand(value)
        for channel in removed:
            if channel in checkpoint["channel_values"] and channel not in changes:
                new_versions[channel] = self.ref.get_next_version(
                    checkpoint["channel_versions"].get(channel)  # type: ignore[arg-type]
                )
                del checkpoint["channel_values"][channel]
        checkpoint["channel_versions"].update(new_versions)
        checkpoint["versions_seen"] = {"node": dict(checkpoint["channel_versions"])}
        return checkpoint, new_versions

    def put_both(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: dict[str, Any],
        new_versions: dict[str, str],
    ) -> None:
        expected = self.ref.put(
            config, copy.deepcopy(checkpoint), copy.deepcopy(metadata), dict(new_versions)
        )
        actual = self.sut.put(
            config, copy.deepcopy(checkpoint), copy.deepcopy(metadata), dict(new_versions)
        )
        same("put() config", expected, actual)

    # -- operations ------------------------------------------------------------------------

    @initialize(data=st.data())
    def start(self, data: st.DataObject) -> None:
        """Every example starts with one checkpoint, so the other rules have something."""
        self._put(
            data,
            thread=0,
            ns="",
            parent="latest",
            metadata={"source": "input", "step": -1, "run_id": "run-1"},
            changes={"a": 1},
            removed=[],
        )

    def _put(
        self,
        data: st.DataObject,
        thread: int,
        ns: str,
        parent: str,
        metadata: dict[str, Any],
        changes: dict[str, Any],
        removed: list[str],
    ) -> None:
        thread_id = self.threads[thread]
        base = self.ref.get_tuple(cfg(thread_id, ns))
        parent_id: str | None = base.config["configurable"]["checkpoint_id"] if base else None
        if parent == "none":
            parent_id = None
        elif parent == "fork":
            existing = list(self.ref.list(cfg(thread_id, ns)))
            if existing:
                fork = data.draw(st.sampled_from([t.config for t in existing]), label="fork")
                base = self.ref.get_tuple(fork)
                parent_id = fork["configurable"]["checkpoint_id"]
        elif parent == "dangling":
            parent_id = "1f000000-dead-6000-8000-000000000000"
        checkpoint, new_versions = self.new_checkpoint(base, changes, removed)
        self.put_both(cfg(thread_id, ns, parent_id), checkpoint, metadata, new_versions)

    # Puts are most of what a graph does: three times the chance of any other rule.
    @rule(**PUT_ARGS)
    def put(self, **args: Any) -> None:
        self._put(**args)

    @rule(**PUT_ARGS)
    def put_more(self, **args: Any) -> None:
        self._put(**args)

    @rule(**PUT_ARGS)
    def put_again(self, **args: Any) -> None:
        self._put(**args)

    @precondition(lambda self: self.all_tuples())
    @rule(
        data=st.data(),
        metadata=metadata_strategy,
        new_parent=st.booleans(),
        changes=st.dictionaries(st.sampled_from(CHANNELS), channel_values, max_size=1),
    )
    def reput(
        self,
        data: st.DataObject,
        metadata: dict[str, Any],
        new_parent: bool,
        changes: dict[str, Any],
    ) -> None:
        """Put an existing checkpoint id again, with new metadata (and maybe parent, values)."""
        chosen = data.draw(st.sampled_from(self.all_configs()), label="re-put")
        old = self.ref.get_tuple(chosen)
        assert old is not None
        configurable = old.config["configurable"]
        thread_id, ns = configurable["thread_id"], configurable["checkpoint_ns"]
        parent_id = (
            old.parent_config["configurable"]["checkpoint_id"] if old.parent_config else None
        )
        if new_parent:
            others = [
                t.config["configurable"]["checkpoint_id"]
                for t in self.ref.list(cfg(thread_id, ns))
                if t.config["configurable"]["checkpoint_id"] != configurable["checkpoint_id"]
            ]
            parent_id = data.draw(st.sampled_from([None, *others]), label="new parent")
        checkpoint = copy.deepcopy(old.checkpoint)
        new_versions: dict[str, str] = {}
        for channel, value in changes.items():
            new_versions[channel] = self.ref.get_next_version(
                checkpoint["channel_versions"].get(channel)  # type: ignore[arg-type]
            )
            checkpoint["channel_values"][channel] = expand(value)
        checkpoint["channel_versions"].update(new_versions)
        self.put_both(cfg(thread_id, ns, parent_id), checkpoint, metadata, new_versions)

    @precondition(lambda self: self.all_tuples())
    @rule(
        data=st.data(),
        writes=st.lists(
            st.tuples(
                st.sampled_from(["a", "b", "messages", ERROR, INTERRUPT, RESUME, SCHEDULED]),
                channel_values,
            ),
            min_size=1,
            max_size=3,
        ),
        task_id=st.sampled_from(TASKS),
        task_path=st.sampled_from(TASK_PATHS),
    )
    def put_writes(
        self,
        data: st.DataObject,
        writes: list[tuple[str, Any]],
        task_id: str,
        task_path: str,
    ) -> None:
        target = data.draw(st.sampled_from(self.all_configs()), label="writes for")
        self.ref.put_writes(target, expand(writes), task_id, task_path)
        self.sut.put_writes(target, expand(writes), task_id, task_path)

    @rule(act=RARE, thread=st.integers(0, 2))
    def delete_thread(self, act: bool, thread: int) -> None:
        if not act:
            return
        self.ref.delete_thread(self.threads[thread])
        self.sut.delete_thread(self.threads[thread])

    @rule(
        act=RARE,
        run_ids=st.lists(st.sampled_from([*RUN_IDS, "run-none"]), min_size=1, max_size=2),
    )
    def delete_for_runs(self, act: bool, run_ids: list[str]) -> None:
        if not act:
            return
        self.ref.delete_for_runs(run_ids)
        self.sut.delete_for_runs(run_ids)

    @rule(source=st.integers(0, 2), destination=st.integers(0, 2))
    def copy_thread(self, source: int, destination: int) -> None:
        if source == destination:
            return
        self.ref.copy_thread(self.threads[source], self.threads[destination])
        self.sut.copy_thread(self.threads[source], self.threads[destination])

    @rule(
        act=RARE,
        threads=st.lists(st.integers(0, 2), min_size=1, max_size=2, unique=True),
        strategy=st.sampled_from(["keep_latest", "keep_latest", "delete"]),
    )
    def prune(self, act: bool, threads: list[int], strategy: str) -> None:
        if not act:
            return
        ids = [self.threads[i] for i in threads]
        self.ref.prune(ids, strategy=strategy)
        self.sut.prune(ids, strategy=strategy)

    # -- reads with drawn arguments -------------------------------------------------------

    @rule(
        data=st.data(),
        scope=st.sampled_from(["all", "thread", "namespace", "id"]),
        use_filter=st.booleans(),
        use_before=st.booleans(),
        limit=st.sampled_from([None, None, 0, 1, 2, 5]),
    )
    def check_list(
        self,
        data: st.DataObject,
        scope: str,
        use_filter: bool,
        use_before: bool,
        limit: int | None,
    ) -> None:
        everything = self.all_tuples()
        thread_id = data.draw(st.sampled_from(self.threads), label="thread")
        ns = data.draw(st.sampled_from(NAMESPACES), label="ns")
        config: RunnableConfig | None = None
        if scope == "thread":
            config = cfg(thread_id, None)
        elif scope == "namespace":
            config = cfg(thread_id, ns)
        elif scope == "id":
            ids = [t.config["configurable"]["checkpoint_id"] for t in everything] or ["x"]
            any_ns = data.draw(st.booleans(), label="any namespace")
            config = cfg(
                thread_id, None if any_ns else ns, data.draw(st.sampled_from(ids), label="id")
            )
        kwargs: dict[str, Any] = {"limit": limit}
        if use_before:
            ids = [t.config["configurable"]["checkpoint_id"] for t in everything]
            before = data.draw(st.sampled_from([*ids, "0", "z"]), label="before")
            kwargs["before"] = {"configurable": {"checkpoint_id": before}}
        if use_filter:
            kwargs["filter"] = data.draw(self.filters(everything), label="filter")
        self.compare_list("list", config, **kwargs)

    def filters(self, everything: list[CheckpointTuple]) -> st.SearchStrategy[dict[str, Any]]:
        """Filters on step, source, run_id and user keys: tricky values and stored ones."""
        stored = [(k, v) for t in everything for k, v in t.metadata.items()]
        pair = st.tuples(
            st.sampled_from(["step", "source", "run_id", *USER_KEYS, "missing"]),
            st.sampled_from(TRICKY) | st.sampled_from(SOURCES) | st.sampled_from(RUN_IDS),
        )
        if stored:
            pair = st.sampled_from(stored) | pair
        return st.lists(pair, min_size=1, max_size=2).map(dict)

    # -- invariants --------------------------------------------------------------------------

    @invariant()
    def same_reads(self) -> None:
        expected, actual = self.both("list", None)
        same("list(None)", [as_plain(t) for t in expected], [as_plain(t) for t in actual])
        expected_threads, actual_threads = self.both("list_threads")
        same(
            "list_threads ids",
            [(t.thread_id, t.checkpoint_count, t.last_checkpoint_id) for t in expected_threads],
            [(t.thread_id, t.checkpoint_count, t.last_checkpoint_id) for t in actual_threads],
        )
        for thread_id in self.threads:
            self.compare_list("list thread", cfg(thread_id, None))
            for ns in NAMESPACES:
                latest = self.both("get_tuple", cfg(thread_id, ns))
                same(f"get_tuple latest {thread_id!r} {ns!r}", *map(as_plain, latest))
        for probe in PROBES:
            self.compare_list("list probe", None, filter=probe)
        if len(expected) > 2:
            middle = expected[len(expected) // 2].config
            self.compare_list("list before", None, before=middle)
            self.compare_list("list before", cfg(self.threads[0], None), before=middle, limit=2)
        some_threads = self.both("list_threads", after=self.threads[0], limit=1)
        same("list_threads(after, limit)", *([t.thread_id for t in ts] for ts in some_threads))
        for t in expected:
            by_id = self.both("get_tuple", t.config)
            same(f"get_tuple {t.config}", *map(as_plain, by_id))


@pytest.fixture
def small_pages(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pages of 2 or 3 rows, so listing, scans and ancestor walks cross page boundaries
    (keyset cursors between rows of equal checkpoint id in other threads and namespaces)."""
    monkeypatch.setattr(_operations, "_FIRST_PAGE", 2)
    monkeypatch.setattr(_operations, "_MAX_PAGE", 3)
    monkeypatch.setattr(_operations, "_HISTORY_PAGE", 2)
    monkeypatch.setattr(_backend, "_SCAN_PAGE", 2)


@pytest.mark.parametrize("target", DIFF_TARGETS, ids=lambda t: t.name)
def test_differential(target: Target, small_pages: None) -> None:
    machine = type(f"Differential_{target.name}", (Differential,), {"target": target})
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=int(os.environ.get("DIFFERENTIAL_EXAMPLES", "14")),
            stateful_step_count=int(os.environ.get("DIFFERENTIAL_STEPS", "24")),
            deadline=None,
            derandomize=not os.environ.get("DIFFERENTIAL_RANDOM"),
            database=None,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
        ),
    )

"""What is measured: each target of the shared registry, per flavor, as ours, official, floor.

Targets come from `checkpoint_base.testing.targets` (the registry the conformance suite
uses), so a backend joins the benchmarks when its target module joins `TARGET_MODULES`.
For each target and flavor there are up to three subjects, measured in one interleaved run:

- ours: the target's isolated saver (`open_sync` / `open_async`);
- official: the official LangGraph saver of the same database (`official_sync` / `_async`);
- floor: the raw driver writing and reading the same bytes in one round trip.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from checkpoint_base.testing.targets import Target

from ._handles import Handle, SaverHandle
from ._results import Results, SubjectId

__all__ = ["KINDS", "Opened", "Subject", "open_subjects", "subjects_for"]

KINDS = ("ours", "official", "floor")
FLOOR_FAMILIES = ("sqlite", "postgres", "redis")


@dataclass(frozen=True)
class Subject:
    """One target, one flavor, one kind."""

    target: Target
    flavor: str
    kind: str

    @property
    def id(self) -> SubjectId:
        """The name samples are recorded under."""
        return SubjectId(self.target.name, self.flavor, self.kind)

    @property
    def is_saver(self) -> bool:
        """True for a LangGraph checkpointer (ours or official), False for a floor."""
        return self.kind != "floor"

    async def open(self, stack: contextlib.AsyncExitStack) -> Handle:
        """Open the subject for the life of `stack`."""
        sync = self.flavor == "sync"
        if self.kind == "floor":
            return await _open_floor(self.target, sync, stack)
        opener: Any
        if self.kind == "ours":
            opener = self.target.open_sync if sync else self.target.open_async
        else:
            opener = self.target.official_sync if sync else self.target.official_async
        if opener is None:
            raise LookupError(f"{self.id.label}: the target has no opener")
        if sync:
            saver = stack.enter_context(opener())
            setup = getattr(saver, "setup", None)
            if callable(setup):
                setup()  # idempotent for ours and the official savers; the opener may have run it
        else:
            saver = await stack.enter_async_context(opener())
            asetup = getattr(saver, "asetup", None)
            setup = getattr(saver, "setup", None)
            if callable(asetup):
                await asetup()
            elif inspect.iscoroutinefunction(setup):
                await setup()  # the official async savers' setup is a coroutine
        return SaverHandle(saver, sync=sync)


def _floor_url(target: Target) -> str:
    from checkpoint_base.testing import servers

    if target.backend == "postgres":
        if "pgbouncer" in target.name:
            return servers.pgbouncer_url(durable=True)
        return servers.postgres_url(durable=True)
    if target.capabilities.cluster:
        return servers.redis_cluster_url(durable=True)
    return servers.redis_url(durable=True)


async def _open_floor(target: Target, sync: bool, stack: contextlib.AsyncExitStack) -> Handle:
    handle: Any
    if target.backend == "sqlite":
        from ._floors import SqliteFloor

        memory = target.url is not None and ":memory:" in target.url()
        synchronous = "full" if target.name.endswith("-full") else "normal"
        handle = await SqliteFloor(
            sync=sync, path=":memory:" if memory else None, synchronous=synchronous
        ).open()
    elif target.backend == "postgres":
        from ._floors import PostgresFloor

        url = _floor_url(target)
        handle = await PostgresFloor(url, sync=sync, prepare="pgbouncer" not in target.name).open()
    elif target.backend == "redis":
        from ._floor_redis import RedisFloor

        handle = await RedisFloor(_floor_url(target), sync=sync).open()
    else:
        raise LookupError(f"no raw-driver floor for the {target.backend} backend")
    stack.push_async_callback(handle.aclose)
    return handle


def subjects_for(
    targets: Sequence[Target],
    flavors: Sequence[str] = ("sync", "async"),
    kinds: Sequence[str] = KINDS,
) -> list[Subject]:
    """Every subject the targets offer, in interleaving order (target, flavor, kind)."""
    found: list[Subject] = []
    for target in targets:
        for flavor in flavors:
            ours = target.open_sync if flavor == "sync" else target.open_async
            if ours is None:
                continue
            for kind in kinds:
                if kind == "official":
                    opener = target.official_sync if flavor == "sync" else target.official_async
                    if opener is None:
                        continue
                if kind == "floor" and target.backend not in FLOOR_FAMILIES:
                    continue
                found.append(Subject(target, flavor, kind))
    return found


@dataclass(frozen=True)
class Opened:
    """A subject with its open handle."""

    subject: Subject
    handle: Handle

    @property
    def id(self) -> SubjectId:
        """The name samples are recorded under."""
        return self.subject.id


async def open_subjects(
    subjects: Sequence[Subject], stack: contextlib.AsyncExitStack, results: Results
) -> list[Opened]:
    """Open each subject; one that cannot be opened is left out with a note (never faked)."""
    opened: list[Opened] = []
    for subject in subjects:
        try:
            handle = await subject.open(stack)
        except ImportError as exc:
            note = f"{subject.id.label}: not measured, a package is missing: {exc}"
            if note not in results.notes:
                results.notes.append(note)
            continue
        except Exception as exc:  # a server that cannot be had: reported, run goes on
            results.problem(f"{subject.id.label}: could not be opened: {exc!r}")
            continue
        opened.append(Opened(subject, handle))
    return opened

"""Parametrize every conformance test over every registered target x {sync, async}.

`CHECKPOINTERS_TEST_BACKENDS=memory,sqlite` restricts the run to some backend families.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import pytest

from checkpoint_base.testing.targets import Target, all_targets

from .harness import Harness


def _selected(target: Target) -> bool:
    wanted = os.environ.get("CHECKPOINTERS_TEST_BACKENDS")
    if not wanted:
        return True
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    return target.backend in names or target.name in names


TARGETS = all_targets(_selected)
PARAMS = [
    pytest.param((target, flavor), id=f"{target.name}-{flavor}")
    for target in TARGETS
    for flavor in ("sync", "async")
    if (target.open_sync if flavor == "sync" else target.open_async) is not None
]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("h") if callspec is not None else None
        if not (isinstance(param, tuple) and param and isinstance(param[0], Target)):
            continue
        target = param[0]
        test_name = item.originalname  # type: ignore[attr-defined]
        reason = target.xfail.get(test_name)
        if reason:
            item.add_marker(pytest.mark.xfail(reason=reason, strict=True))
        for mark in item.iter_markers("capability"):
            cap = mark.args[0]
            if not getattr(target.capabilities, cap):
                item.add_marker(
                    pytest.mark.skip(reason=f"{target.name} does not declare capability {cap!r}")
                )


@pytest.fixture(params=PARAMS)
async def h(request: pytest.FixtureRequest) -> AsyncIterator[Harness]:
    target, flavor = request.param
    if flavor == "sync":
        assert target.open_sync is not None
        with target.open_sync() as saver:
            yield Harness(target, flavor, saver)
    else:
        assert target.open_async is not None
        async with target.open_async() as saver:
            yield Harness(target, flavor, saver)

"""Targets for the migration tests: every registered target, as the conformance suite uses.

`CHECKPOINTERS_TEST_BACKENDS=memory,sqlite` restricts the run to some backend families.
"""

from __future__ import annotations

import os

from checkpoint_base.testing.targets import Target, all_targets


def _selected(target: Target) -> bool:
    wanted = os.environ.get("CHECKPOINTERS_TEST_BACKENDS")
    if not wanted:
        return True
    names = {w.strip() for w in wanted.split(",") if w.strip()}
    return target.backend in names or target.name in names


TARGETS = all_targets(_selected)


def one_per_backend(targets: list[Target]) -> list[Target]:
    """The first target of each backend family (for the slower, per-family tests)."""
    first: dict[str, Target] = {}
    for target in targets:
        first.setdefault(target.backend, target)
    return list(first.values())

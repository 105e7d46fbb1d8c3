"""The lowest versions `pyproject.toml` allows of the package's own dependencies.

`scripts/test-lowest.sh` installs them over a `.venv-lowest` built with the dev extra and runs
the suite there, so that every floor in `pyproject.toml` is a version the suite passed on, not a
guess: the core's dependencies and those of the extras a user installs (`sqlite`, `postgres`,
`redis`, `encryption`, and LangGraph itself from `all`). The test-only packages of the dev extra
stay at the versions pip chose.

    python scripts/lowest_versions.py            # one `name==version` per line, for pip
    python scripts/lowest_versions.py --settle   # those whose dependencies pip must then settle
    python scripts/lowest_versions.py --check    # exit 1 unless each one is what is installed
    python scripts/lowest_versions.py --newest langgraph   # any of these, LangGraph left out

The floors go in with `--no-deps` (the dev extra's test-only packages may ask for more than a
floor). A package in `SETTLED` is then installed again with its dependencies, the floors as
constraints: LangGraph names companions of its own release line (`langgraph-prebuilt`,
`langgraph-sdk`) that must move back with it.

A package installed through an extra of another comes at the same version when that extra
pins it so (`psycopg[binary]`: `psycopg-binary`); one versioned on its own (`redis[hiredis]`:
`hiredis`) stays at pip's choice.
"""

from __future__ import annotations

import argparse
import sys
from importlib import metadata
from pathlib import Path

from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

if sys.version_info >= (3, 11):
    import tomllib
else:  # pytest needs tomli before 3.11, so the dev extra brings it
    import tomli as tomllib

EXTRAS = ("sqlite", "postgres", "redis", "encryption", "all")
"""The extras whose dependencies are the package's own (`all` adds LangGraph to the others;
`dev` adds test-only packages). A requirement of the package itself (`checkpointers[...]`)
only gathers other extras and is skipped."""

SETTLED = ("langgraph",)
"""Packages whose own dependencies pip settles after the floors went in without them."""

# What an extra of a dependency installs: a package at the dependency's own version, or None
# for one versioned on its own (left at the version pip chose).
_EXTRA_PACKAGES: dict[tuple[str, str], str | None] = {
    ("psycopg", "binary"): "psycopg-binary",
    ("redis", "hiredis"): None,
}

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"


def requirements(pyproject: Path = PYPROJECT) -> list[Requirement]:
    """The core's requirements, then those of `EXTRAS`, in the file's order."""
    project = tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]
    texts = list(project["dependencies"])
    for extra in EXTRAS:
        texts += project["optional-dependencies"][extra]
    reqs = [Requirement(t) for t in texts]
    return [r for r in reqs if canonicalize_name(r.name) != canonicalize_name(project["name"])]


def floor(req: Requirement) -> str:
    """The version of `req`'s `>=` bound.

    Raises:
        ValueError: `req` has no `>=` bound or no upper bound: every dependency is a range.
    """
    lows = [s.version for s in req.specifier if s.operator == ">="]
    highs = [s for s in req.specifier if s.operator in ("<", "<=")]
    if len(lows) != 1 or not highs:
        raise ValueError(
            f"pyproject.toml: {req} must be a range 'name>=low,<high' (a floor to test, and "
            "an upper bound)"
        )
    return lows[0]


def pins(reqs: list[Requirement]) -> list[tuple[str, str]]:
    """`(distribution name, version)` for each requirement's floor, extras' packages after
    the package that brings them."""
    out: list[tuple[str, str]] = []
    for req in reqs:
        version = floor(req)
        out.append((req.name, version))
        for extra in sorted(req.extras):
            if (req.name, extra) not in _EXTRA_PACKAGES:
                raise ValueError(
                    f"pyproject.toml: {req}: no rule for the version of what extra {extra!r} "
                    "installs; add it to _EXTRA_PACKAGES in scripts/lowest_versions.py"
                )
            same = _EXTRA_PACKAGES[req.name, extra]
            if same is not None:
                out.append((same, version))
    return out


def mismatches(wanted: list[tuple[str, str]]) -> list[str]:
    """What is not installed at its floor, one line each."""
    wrong = []
    for name, version in wanted:
        try:
            installed = metadata.version(name)
        except metadata.PackageNotFoundError:
            wrong.append(f"{name}: nothing installed, the floor is {version}")
            continue
        if Version(installed) != Version(version):
            wrong.append(f"{name}: {installed} installed, the floor is {version}")
    return wrong


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument(
        "--check", action="store_true", help="fail unless each floor is what is installed"
    )
    what.add_argument(
        "--settle",
        action="store_true",
        help="only the floors whose dependencies pip must settle (SETTLED)",
    )
    parser.add_argument(
        "--newest",
        action="append",
        default=[],
        metavar="NAME",
        help="leave NAME out (no pin, no check): it stays at the newest version pip allows",
    )
    args = parser.parse_args(argv)
    wanted = pins(requirements())
    unknown = sorted(set(args.newest) - {name for name, _ in wanted})
    if unknown:
        parser.error(f"--newest {', '.join(unknown)}: not a dependency with a floor")
    wanted = [(n, v) for n, v in wanted if n not in args.newest]
    if not args.check:
        chosen = [(n, v) for n, v in wanted if not args.settle or n in SETTLED]
        print("\n".join(f"{name}=={version}" for name, version in chosen))
        return 0
    wrong = mismatches(wanted)
    for line in wrong:
        print(f"lowest_versions: {line}", file=sys.stderr)
    if not wrong:
        print("lowest versions installed: " + ", ".join(f"{n} {v}" for n, v in wanted))
    return 1 if wrong else 0


if __name__ == "__main__":
    sys.exit(main())

"""Allowing the application's own classes by name: `--allow` of the command line and
`CHECKPOINTERS_ALLOW` of the Agent Server's checkpointer.

A value of a dataclass, pydantic model, enum or named tuple of the application is rebuilt
only once its class is allowed and its module imported (docs/serializer.md). A graph allows
its state schema's types when it is compiled; a command, or a class nested where the schema
does not name it (inside an `Any` field), needs them named. A spec is `module:Class`
(`module:Outer.Inner`), or `module` for every such class the module defines. The module is
imported here, because the user named it; stored data never makes anything import.
"""

from __future__ import annotations

import importlib
import os
import sys
from collections.abc import Iterable
from typing import Any

from ._errors import ConfigError

__all__ = ["allowed_pairs", "import_local"]


def import_local(module_name: str, named: str) -> Any:
    """Import a module the user named (`py:` URLs, `--allow`), finding one in the current
    directory as `python -m` does; `named` says where it was named, for the error."""
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        return importlib.import_module(module_name)
    except ImportError as exc:
        raise ConfigError(
            f"cannot import {module_name!r} ({named}): {exc}; run it from the directory that "
            "holds the module, or set PYTHONPATH"
        ) from exc


def allowed_pairs(specs: Iterable[str], option: str) -> list[tuple[str, str]]:
    """The `(module, qualname)` allowlist entries that `specs` name, their modules imported.

    Args:
        specs: `module:Class` or `module` each.
        option: How the user gave them (`--allow`, `CHECKPOINTERS_ALLOW`), for errors.

    Raises:
        ConfigError: a spec is malformed, its module does not import, or it names no class.
    """
    from .serde._classes import class_kind

    pairs: list[tuple[str, str]] = []
    for raw in specs:
        spec = raw.strip()
        module_name, sep, qualname = spec.partition(":")
        if not module_name or (sep and not qualname):
            raise ConfigError(f"bad {option} {spec!r}: use MODULE:CLASS or MODULE")
        module = import_local(module_name, f"from {option} {spec!r}")
        if qualname:
            found: Any = module
            for part in qualname.split("."):
                found = getattr(found, part, None)
            if not isinstance(found, type):
                raise ConfigError(f"{option} {spec!r}: {module_name} has no class {qualname!r}")
            pairs.append((module_name, qualname))
            continue
        defined = [
            (module_name, value.__qualname__)
            for value in vars(module).values()
            if isinstance(value, type)
            and value.__module__ == module_name
            and class_kind(value) is not None
        ]
        if not defined:
            raise ConfigError(
                f"{option} {spec!r}: {module_name} defines no dataclass, pydantic model, enum "
                "or named tuple; name the class as MODULE:CLASS"
            )
        pairs += defined
    return pairs

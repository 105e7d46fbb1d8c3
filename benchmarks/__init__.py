"""The benchmark harness: our savers against the official LangGraph savers and raw drivers.

Run it as `python -m benchmarks` or `checkpointers bench` (which calls `main`). See
`benchmarks/README.md` for the workloads and how to reproduce the published figures.
"""

from __future__ import annotations

from ._cli import main

__all__ = ["main"]

"""The `checkpointers` command line (also `python -m checkpoint_base`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from ._errors import CheckpointerError

__all__ = ["main"]


def _demo(args: argparse.Namespace) -> int:
    from ._demo import run_demo

    return run_demo(args.url, sys.stdout)


def _parser() -> argparse.ArgumentParser:
    from ._demo import DEFAULT_DEMO_URL

    parser = argparse.ArgumentParser(
        prog="checkpointers",
        description="Checkpoint savers for LangGraph: demo, inspect, prune, migrate, benchmark.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    demo = commands.add_parser(
        "demo",
        help="run a small agent graph that is interrupted and resumed from storage",
        description="Run a deterministic agent graph (no LLM) with persistence: it stops for a "
        "human approval, resumes from storage, and prints the thread's history.",
        epilog="example: checkpointers demo --url sqlite:///demo.db",
    )
    demo.add_argument(
        "--url", default=DEFAULT_DEMO_URL, help=f"saver URL (default {DEFAULT_DEMO_URL})"
    )
    demo.set_defaults(run=_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    try:
        parser = _parser()
    except ImportError as exc:
        print(f"checkpointers: {exc}", file=sys.stderr)
        return 2
    args = parser.parse_args(argv)
    try:
        status: int = args.run(args)
    except (CheckpointerError, ImportError) as exc:
        print(f"checkpointers {args.command}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"checkpointers {args.command}: interrupted", file=sys.stderr)
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())

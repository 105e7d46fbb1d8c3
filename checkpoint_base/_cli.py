"""The `checkpointers` command line (also `python -m checkpoint_base`).

Each sub-command lives in a `_cli_*` module; this one builds the parser and turns every
error into one line on stderr (with the fix) and an exit status, never a traceback
(`--debug` shows it).
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import sys
import traceback
from collections.abc import Sequence

from ._errors import CheckpointerError, StorageUnavailableError, UnknownBackendError
from .serde import DisallowedTypeError, SerializationError, TypeNotFoundError

__all__ = ["main"]

_FIXES = {
    UnknownBackendError: "see `checkpointers migrate --help` for the URL forms",
}


def _parser() -> argparse.ArgumentParser:
    from ._cli_admin import add_admin_commands
    from ._cli_check import add_check_command
    from ._cli_delete import add_delete_command
    from ._cli_diff import add_diff_command
    from ._cli_inspect import add_inspect_commands
    from ._cli_migrate import add_migrate_command
    from ._cli_open import URL_HELP

    parser = argparse.ArgumentParser(
        prog="checkpointers",
        description="Checkpoint savers for LangGraph: inspect, diff, check, prune, delete, "
        "compact, migrate, benchmark, demo.",
        epilog="Run `checkpointers COMMAND --help` for a command's options and examples.\n\n"
        + URL_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks of errors")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_inspect_commands(commands, URL_HELP)
    add_diff_command(commands, URL_HELP)
    add_migrate_command(commands, URL_HELP)
    add_admin_commands(commands, URL_HELP)
    add_delete_command(commands, URL_HELP)
    add_check_command(commands, URL_HELP)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    for kind, fix in _FIXES.items():
        if isinstance(exc, kind) and fix not in text:
            text = f"{text} ({fix})"
    return text


def _type_not_allowed(exc: BaseException, args: argparse.Namespace) -> str | None:
    """For a command with `--allow`, the fix of a stored class it was not told to rebuild
    (the serializer's own message names Python calls, not the command's option)."""
    if not hasattr(args, "allow"):
        return None
    cause: BaseException | None = exc
    while cause is not None and not isinstance(cause, (DisallowedTypeError, TypeNotFoundError)):
        cause = cause.__cause__
    if cause is None:
        return None
    assert isinstance(cause, (DisallowedTypeError, TypeNotFoundError))
    name = f"{cause.module}:{cause.qualname}"
    if isinstance(cause, TypeNotFoundError) and cause.module in sys.modules:
        return f"{_one_line(cause)} (--allow {name} names a class its module does not define)"
    return (
        f"stored values hold {cause.module}.{cause.qualname}, a class of the application's "
        f"own, which the command rebuilds only when told to: run it again with --allow {name} "
        f"(or --allow {cause.module} for every class of that module); it imports "
        f"{cause.module!r} from the current directory or PYTHONPATH"
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status.

    Args:
        argv: The arguments (without the program name); None reads `sys.argv`.

    Returns:
        0 on success; 1 on an error or a mismatch; 2 on a usage error; 130 when stopped;
        141 when whoever read the output stopped reading (`| head`), as for SIGPIPE.
    """
    parser = _parser()
    words = list(sys.argv[1:] if argv is None else argv)
    try:
        if "bench" in words and set(words[: words.index("bench")]) <= {"--debug"}:
            # Everything after `bench` belongs to the harness, `--help` included.
            split = words.index("bench")
            args = parser.parse_args([*words[:split], "bench"])
            args.args = words[split + 1 :]
        else:
            args = parser.parse_args(words)
    except SystemExit as exit_:  # --help, or a usage error argparse already printed
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        status: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`checkpointers history URL | head`): stop quietly, as a tool
        # killed by SIGPIPE would, and keep Python from failing again when it flushes stdout
        # at exit.
        _silence_stdout()
        return 141
    except KeyboardInterrupt:
        print(f"\ncheckpointers {args.command}: interrupted", file=sys.stderr)
        return 130
    except (
        CheckpointerError,
        ImportError,
        OSError,
        sqlite3.Error,
        ValueError,
        SerializationError,
    ) as exc:
        if args.debug:
            traceback.print_exc()
        kind = "unreachable" if isinstance(exc, StorageUnavailableError) else "error"
        text = _type_not_allowed(exc, args) or _one_line(exc)
        print(f"checkpointers {args.command}: {kind}: {text}", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug: still one line, with how to see more
        if args.debug:
            traceback.print_exc()
        print(
            f"checkpointers {args.command}: unexpected {type(exc).__name__}: {_one_line(exc)} "
            "(run with --debug for the traceback, and please report it)",
            file=sys.stderr,
        )
        return 1
    return status


def _silence_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout is not a real file (captured): nothing to flush
        pass


if __name__ == "__main__":
    sys.exit(main())
